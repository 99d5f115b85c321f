"""Settings shared by the CLI and the library, read from ``Q2GOOGLE_*`` variables or ``.env``.

The GoPro token is not ours: gopro-api reads its own ``GP_ACCESS_TOKEN``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import platformdirs
from pydantic import AfterValidator, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from q2google.errors import ConfigError
from q2google.gphotos.limits import (
    DAILY_REQUEST_QUOTA,
    MAX_BATCH_CREATE_ITEMS,
    UPLOAD_GRANULARITY_BYTES,
)

__all__ = [
    "DEFAULT_RAW_UPLOAD_MAX_BYTES",
    "ENV_PREFIX",
    "MAX_LIBRARY_BATCH_SIZE",
    "UPLOAD_GRANULARITY_BYTES",
    "Q2GoogleSettings",
    "get_settings",
]

ENV_PREFIX = "Q2GOOGLE_"
MAX_LIBRARY_BATCH_SIZE = MAX_BATCH_CREATE_ITEMS
"""``mediaItems:batchCreate`` takes at most 50 items per call."""
DEFAULT_RAW_UPLOAD_MAX_BYTES = 16 * 1024 * 1024
"""Files up to this size go by one raw upload request (see ``raw_upload_max_bytes``)."""
MAX_RAW_UPLOAD_BYTES = 256 * 1024 * 1024
"""Highest ``raw_upload_max_bytes`` accepted: a raw body is resent whole after a break."""


def default_google_token_file() -> Path:
    """Return where the Google authorized-user token lives unless configured otherwise.

    Returns:
        ``google-token.json`` in the user's configuration directory for q2google.
    """
    return platformdirs.user_config_path("q2google") / "google-token.json"


LEGACY_STATE_DIR = Path(".q2google_sessions")
"""The JSON state's default before it moved to the user's data directory (relative to the
working directory)."""


def default_state_dir() -> Path:
    """Where the JSON state lives unless ``Q2GOOGLE_STATE_DIR`` says otherwise.

    Returns:
        ``.q2google_sessions`` when that directory exists in the working directory, or else in
        the home directory (where cron jobs run: the old default, still used so that no session
        is lost), else ``sessions`` in the user's data directory for q2google
        (``~/.local/share/q2google/sessions`` on Linux), the same from every working directory.
    """
    for legacy in legacy_state_dirs():
        if legacy.is_dir():
            return legacy
    return platformdirs.user_data_path("q2google") / "sessions"


def legacy_state_dirs() -> tuple[Path, ...]:
    """Where the old default put the JSON state: the working directory, then home (cron)."""
    return (LEGACY_STATE_DIR, Path.home() / LEGACY_STATE_DIR)


def legacy_state_notice(settings: Q2GoogleSettings) -> str | None:
    """One line saying that the state is read at the old default place, or ``None``."""
    if "state_dir" in settings.model_fields_set or settings.state_uri is not None:
        return None
    if settings.state_dir not in legacy_state_dirs():
        return None
    modern = platformdirs.user_data_path("q2google") / "sessions"
    return (
        f"using the sessions in {settings.state_dir} (the old default place); move them to "
        f"{modern}, or set Q2GOOGLE_STATE_DIR, to see them from every directory"
    )


def _http_origin(value: str) -> str:
    """Validate an ``http(s)://host[:port][/path]`` base URL and drop any trailing slash."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parts.query or parts.fragment:
        raise ValueError("must not carry a query or a fragment")
    return value.rstrip("/")


HttpBaseUrl = Annotated[str, AfterValidator(_http_origin)]


class Q2GoogleSettings(BaseSettings):
    """Every tunable of q2google, one field per ``Q2GOOGLE_<FIELD>`` environment variable.

    Attributes:
        state_dir: Root of the JSON state backend (one subdirectory per session); by default
            in the user's data directory (see :func:`default_state_dir`).
        state_uri: Selects the state backend by scheme; unset means JSON files in ``state_dir``.
        gopro_api_url: Origin of the GoPro cloud API (point it at the sandbox to test).
        photos_api_url: Origin of the Google Photos Library API.
        google_token_file: google-auth authorized-user JSON with the refresh token.
        google_client_secrets_file: OAuth client secrets JSON used by ``q2google auth google``.
        sync_batch_size: How many items a new session transfers per batch.
        photos_library_batch_size: Items per ``mediaItems:batchCreate`` call (1 to 50).
        transfer_concurrency: Items streamed from the CDN to Google at the same time.
        upload_chunk_size_bytes: Bytes per resumable upload request, a multiple of 256 KiB.
        raw_upload_max_bytes: Files up to this size go by one raw upload request (one
            request against Google's daily quota instead of two); larger ones by the
            resumable protocol, which continues after a break from the offset Google
            confirmed where a raw upload sends the whole body again. 0 sends every file
            resumable. The default, 16 MiB, comes from ``benchmarks/upload_requests.py``: raw
            halves the upload requests at every size and is as fast or faster, but a break
            costs a whole resend, so the threshold stays where a resend is a few seconds on
            a modest uplink and above every GoPro photo (a few MiB); videos stay resumable.
        daily_request_limit: Google Photos requests a day (Pacific time, Google's day) that
            every session sharing this state may make together; at it, a run creates what it
            uploaded and stops (exit 75), or waits for the reset with ``--wait``. Google's
            own limit is 10,000 per project; lower it to leave room for other apps of the
            same project. 0: no limit of q2google's own (Google's 429 still stops the run).
        fail_fast: Stop the run at the first permanent item failure.
        progress_interval_seconds: Seconds between progress lines when not on a terminal.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    state_dir: Path = Field(default_factory=default_state_dir)
    state_uri: str | None = Field(default=None, repr=False)  # may hold a password
    gopro_api_url: HttpBaseUrl = "https://api.gopro.com"
    photos_api_url: HttpBaseUrl = "https://photoslibrary.googleapis.com"
    google_token_file: Path = Field(default_factory=default_google_token_file)
    google_client_secrets_file: Path | None = None
    sync_batch_size: int = Field(default=50, ge=1, le=10_000)
    photos_library_batch_size: int = Field(default=MAX_LIBRARY_BATCH_SIZE, ge=1, le=50)
    transfer_concurrency: int = Field(default=4, ge=1, le=64)
    upload_chunk_size_bytes: int = Field(default=64 * 1024 * 1024, ge=UPLOAD_GRANULARITY_BYTES)
    raw_upload_max_bytes: int = Field(
        default=DEFAULT_RAW_UPLOAD_MAX_BYTES, ge=0, le=MAX_RAW_UPLOAD_BYTES
    )
    daily_request_limit: int = Field(default=DAILY_REQUEST_QUOTA, ge=0, le=10_000_000)
    fail_fast: bool = False
    progress_interval_seconds: float = Field(default=10.0, gt=0, le=3600)

    @field_validator("state_uri")
    @classmethod
    def _blank_uri_is_unset(cls, value: str | None) -> str | None:
        """Treat ``Q2GOOGLE_STATE_URI=`` (empty) the same as leaving it unset."""
        if value is not None and not value.strip():
            return None
        return value

    @field_validator("upload_chunk_size_bytes")
    @classmethod
    def _chunk_is_granular(cls, value: int) -> int:
        """Reject chunk sizes Google would refuse: every chunk but the last is 256 KiB-aligned."""
        if value % UPLOAD_GRANULARITY_BYTES:
            raise ValueError(f"must be a multiple of {UPLOAD_GRANULARITY_BYTES} (256 KiB)")
        return value


def describe_validation_error(error: ValidationError, *, prefix: str = ENV_PREFIX) -> str:
    """Render a settings validation error as one line that names each offending variable.

    Input values are never echoed: ``Q2GOOGLE_STATE_URI`` may carry a password.

    Args:
        error: The error pydantic raised while building the settings.
        prefix: Environment prefix to put in front of field names.

    Returns:
        A line such as ``Q2GOOGLE_TRANSFER_CONCURRENCY: Input should be greater than ...``.
    """
    problems = []
    for detail in error.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in detail["loc"]) or "settings"
        problems.append(f"{prefix}{field.upper()}: {detail['msg']}")
    return "invalid configuration: " + "; ".join(problems)


def get_settings(**overrides: object) -> Q2GoogleSettings:
    """Build settings from the environment and ``.env``, with explicit overrides on top.

    Args:
        **overrides: Field values that win over the environment (CLI flags, tests).

    Returns:
        A fresh, validated :class:`Q2GoogleSettings`.

    Raises:
        ConfigError: A value is invalid; the message names the variable.
    """
    try:
        return Q2GoogleSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error)) from None

"""Are both clouds ready? The checks behind ``q2google auth status`` and every sync's start.

A sync checks its credentials before it touches any state, so a missing, rejected or revoked
token stops it with one line and leaves the session as it was.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from q2google.errors import Q2GoogleError
from q2google.gphotos.models import GoogleAuthError
from q2google.gphotos.oauth import FIX, SCOPES, GooglePhotosOAuth
from q2google.retry import RETRYABLE_STATUSES, RetryableStatusError, RetryPolicy, TryLaterError

if TYPE_CHECKING:
    from q2google.config import Q2GoogleSettings

GOPRO_FIX = "export a fresh GP_ACCESS_TOKEN (README, 'Real accounts')"
CHECK_POLICY = RetryPolicy(attempts=4, total_seconds=30)
"""A check answers within half a minute, even when a cloud is down."""


@dataclass
class CloudStatus:
    """Whether one cloud's credentials are ready, and what to do when they are not.

    Attributes:
        cloud: ``gopro`` or ``google``.
        ready: A sync can use them now.
        message: One line: what was found (never a token).
        details: Facts for ``--json`` (token source, scopes, expiry...).
    """

    cloud: str
    ready: bool
    message: str
    details: dict[str, Any] = field(default_factory=dict)


def gopro_token() -> str | None:
    """``GP_ACCESS_TOKEN`` as gopro-api reads it (environment or ``.env``), if set."""
    from gopro_api.config import Settings

    token = Settings().gp_access_token
    return str(token) if token else None


async def check_gopro(settings: Q2GoogleSettings, token: str | None) -> CloudStatus:
    """Ask the GoPro cloud whether it accepts ``token``, through gopro-api's own auth check.

    Transient answers (429, 5xx, a dropped connection) are retried with the shared policy.
    """
    from q2google.gopro import GoProCloudClient

    if not token:
        return CloudStatus("gopro", False, f"GP_ACCESS_TOKEN is not set: {GOPRO_FIX}")

    async def ask() -> Any:
        async with GoProCloudClient.from_settings(settings, access_token=token) as client:
            status = await client.check_auth()
        if status.http_status in RETRYABLE_STATUSES:
            raise RetryableStatusError("GoPro token check", status.http_status)
        if status.http_status is None and status.authenticated is False:
            raise ConnectionError("no answer")  # gopro-api caught a connection failure
        return status

    where = {"api": settings.gopro_api_url}
    try:
        status = await CHECK_POLICY.call("GoPro token check", ask)
    except (RetryableStatusError, ConnectionError) as error:
        return CloudStatus(
            "gopro",
            False,
            f"the GoPro cloud at {settings.gopro_api_url} did not answer the token check ({error})",
            where,
        )
    details = {**where, "token_source": status.token_source, "http_status": status.http_status}
    if status.authenticated:
        return CloudStatus("gopro", True, "the GoPro cloud accepts GP_ACCESS_TOKEN", details)
    if status.http_status in (401, 403):
        return CloudStatus(
            "gopro", False, f"the GoPro cloud rejected GP_ACCESS_TOKEN: {GOPRO_FIX}", details
        )
    return CloudStatus(
        "gopro", False, f"the GoPro token check failed (HTTP {status.http_status})", details
    )


def check_google(settings: Q2GoogleSettings) -> CloudStatus:
    """Read the Google token file and refresh its token once (nothing is written back).

    Blocking (google-auth is synchronous); run it in a thread from async code.
    """
    from google.auth.exceptions import RefreshError, TransportError
    from google.auth.transport.requests import Request

    oauth = GooglePhotosOAuth.from_settings(settings)
    details: dict[str, Any] = {"token_file": str(oauth.token_file)}
    try:
        credentials = oauth.load()
    except GoogleAuthError as error:
        return CloudStatus("google", False, str(error), details)
    granted = sorted(credentials.scopes or ())
    details["scopes"] = granted
    missing = [scope for scope in SCOPES if granted and scope not in granted]
    if not credentials.refresh_token:
        return CloudStatus(
            "google", False, f"the Google token has no refresh token: {FIX}", details
        )
    try:
        credentials.refresh(Request())  # type: ignore[no-untyped-call]
    except TransportError as error:
        return CloudStatus(
            "google",
            False,
            f"Google's token endpoint is unreachable ({type(error).__name__})",
            details,
        )
    except RefreshError:
        return CloudStatus(
            "google",
            False,
            f"Google refused to refresh the token (revoked or expired): {FIX}",
            details,
        )
    if credentials.expiry is not None:
        details["access_token_valid_until"] = credentials.expiry.isoformat() + "Z"
    message = "the Google token is present and refreshable"
    if missing:
        message += f" (without {', '.join(scope.rsplit('/', 1)[-1] for scope in missing)})"
    return CloudStatus("google", True, message, details)


async def require_gopro(settings: Q2GoogleSettings, token: str | None) -> str:
    """Stop unless the GoPro cloud accepts ``token``.

    Returns:
        The token.

    Raises:
        Q2GoogleError: The token is missing or rejected (exit 2).
        TryLaterError: The GoPro cloud did not answer (exit 75).
    """
    gopro = await check_gopro(settings, token)
    if not gopro.ready:
        if gopro.details.get("http_status") in (401, 403) or not token:
            raise Q2GoogleError(gopro.message)
        raise TryLaterError(f"{gopro.message}; run the same command again later")
    assert token is not None
    return token


async def require_ready(settings: Q2GoogleSettings, token: str | None) -> str:
    """Stop before a sync touches state when either cloud's credentials are not usable.

    The Google token is refreshed once, whatever its expiry says, so that a revoked refresh
    token is found now rather than an hour into the run.

    Returns:
        The GoPro token.

    Raises:
        Q2GoogleError: A token is missing, rejected or revoked (one line, exit 2).
        TryLaterError: A cloud did not answer (exit 75).
    """
    oauth = GooglePhotosOAuth.from_settings(settings)
    await asyncio.to_thread(oauth.load)  # a missing or malformed file: its own clear line
    accepted = await require_gopro(settings, token)
    await oauth.refresh()  # a revoked refresh token fails here, before any state is written
    return accepted

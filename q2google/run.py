"""One sync run as the CLI performs it: settings in, clients wired, a summary out.

Both ``q2google sync`` and ``q2google demo`` go through :func:`run_session`, so the demo
exercises exactly the code path a real sync takes.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from q2google.config import Q2GoogleSettings
from q2google.errors import Q2GoogleError
from q2google.gopro import GoProCloudClient
from q2google.gphotos.oauth import GooglePhotosOAuth
from q2google.photos import GooglePhotosClient
from q2google.retry import EXIT_TRY_LATER, RetryableStatusError, describe, is_transient
from q2google.state import SessionState, StageStatus, build_backend
from q2google.sync import GoProToPhotosSync, SyncTransferMetrics


class TryLaterError(Q2GoogleError):
    """A service kept failing past every retry; progress is saved, run the command again."""

    exit_code = EXIT_TRY_LATER


@dataclass
class RunSummary:
    """What a run left behind, for people (text) and machines (``--json``)."""

    session_id: str
    items: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    bytes_uploaded: int = 0
    seconds: float = 0.0
    failures: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def of(cls, state: SessionState, metrics: SyncTransferMetrics, seconds: float) -> RunSummary:
        """Summarize a session's state after a run."""
        statuses = Counter(item.create_status.value for item in state.items.values())
        failures = [
            {
                "item": item.item_key,
                "file": item.file_name,
                "error": next(iter(item.errors.values())).message if item.errors else "failed",
            }
            for item in state.items.values()
            if item.create_status is not StageStatus.COMPLETED
        ]
        return cls(
            state.session_id,
            len(state.items),
            dict(statuses),
            metrics.bytes_uploaded,
            round(seconds, 2),
            failures,
        )

    @property
    def ok(self) -> bool:
        """Whether every item is in Google Photos."""
        return not self.failures


def parse_day(text: str, what: str) -> datetime:
    """Read ``YYYY-MM-DD`` (or a full ISO 8601 time) as a UTC datetime.

    Raises:
        Q2GoogleError: Not a date; the message names the option.
    """
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise Q2GoogleError(f"{what} {text!r} is not a date: use YYYY-MM-DD") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def run_session(
    settings: Q2GoogleSettings,
    *,
    session_id: str,
    start: datetime | None,
    end: datetime | None,
    album: str | None = None,
    gopro_token: str | None = None,
) -> RunSummary:
    """Run (or resume) a session and summarize it.

    Raises:
        Q2GoogleError: Bad input, missing credentials, unreachable state, exhausted quota or
            retries: each one line.
    """
    backend = build_backend(settings)
    stored = await asyncio.to_thread(backend.load, session_id)
    if stored is None and (start is None or end is None):
        raise Q2GoogleError(f"no session {session_id!r} yet: give --start and --end to begin it")
    if start is not None and end is not None and end < start:
        raise Q2GoogleError(f"--end {end.date()} is before --start {start.date()}")
    token = gopro_token or _gopro_token()
    await asyncio.to_thread(GooglePhotosOAuth.from_settings(settings).load)  # fail fast, clearly
    metrics = SyncTransferMetrics()
    began = asyncio.get_running_loop().time()
    try:
        async with (
            GoProCloudClient.from_settings(settings, access_token=token) as gopro,
            GooglePhotosClient.from_settings(settings) as photos,
        ):
            sync = GoProToPhotosSync(gopro, photos, backend, settings)
            window_start = start or datetime.now(UTC)
            await sync.sync_date_range(
                window_start,
                end or window_start,
                session_id=session_id,
                album_title=album,
                transfer_metrics=metrics,
            )
    except (RetryableStatusError, httpx.TransportError, OSError) as error:
        raise TryLaterError(
            f"a service kept failing ({describe(error)}); progress is saved: run the same "
            "command again later"
        ) from None
    except Exception as error:
        if is_transient(error):  # aiohttp's, from the GoPro side
            raise TryLaterError(
                f"the GoPro cloud kept failing ({describe(error)}); progress is saved: run the "
                "same command again later"
            ) from None
        if getattr(error, "status", None) == 401:
            raise Q2GoogleError(
                "the GoPro cloud refused GP_ACCESS_TOKEN: set a fresh one"
            ) from None
        raise
    state = await asyncio.to_thread(backend.load, session_id)
    assert state is not None
    return RunSummary.of(state, metrics, asyncio.get_running_loop().time() - began)


def _gopro_token() -> str:
    from gopro_api.config import Settings

    token = Settings().gp_access_token
    if not token:
        raise Q2GoogleError(
            "GP_ACCESS_TOKEN is not set: export your GoPro cloud token "
            "(see README, 'Real accounts')"
        )
    return str(token)

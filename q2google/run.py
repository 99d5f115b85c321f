"""One run as the CLI performs it: settings in, clients wired, a summary out.

``q2google sync``, ``q2google sessions retry`` and ``q2google demo`` go through
:func:`run_session`, so the demo exercises exactly the code path a real sync takes.
``q2google sync --dry-run`` goes through :func:`q2google.dry_run.dry_run`, which never writes
state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

import httpx

from q2google import window
from q2google.auth import gopro_token as env_gopro_token
from q2google.auth import require_ready
from q2google.clock import SYSTEM_CLOCK, Clock
from q2google.config import Q2GoogleSettings
from q2google.errors import Q2GoogleError, QuotaExhaustedError
from q2google.gopro import GoProCloudClient
from q2google.photos import GooglePhotosClient
from q2google.progress import ProgressDisplay, ProgressMode
from q2google.retry import RetryableStatusError, TryLaterError, describe, is_transient
from q2google.sessions import COMPLETED, WAITING, reset_failed, summarize, to_deliver
from q2google.stages.transfer import PermanentItemError
from q2google.state import (
    SessionState,
    load_to_check,
    load_to_run,
    opened_backend,
    session_lease,
)
from q2google.state.request_counts import RequestCounts
from q2google.sync import GoProToPhotosSync, SyncTransferMetrics
from q2google.waiting import quota_stop, wait_for_quota
from q2google.window import WindowRequest


@dataclass
class RunSummary:
    """What a run left behind, for people (text) and machines (``--json``).

    Attributes:
        session_id: The session.
        status: ``completed``, ``failed`` or ``incomplete`` (see
            :class:`~q2google.sessions.SessionSummary`).
        files: Files in the session.
        by_status: Files per outcome (``completed``, ``failed``, ``pending``).
        bytes_uploaded: Bytes this run uploaded.
        seconds: Duration of this run.
        failures: ``{"item", "file", "error"}`` for each failed file.
        held_back: ``{"item", "file", "outcome", "reason"}`` for each skipped, deferred or
            gone file.
        retried: Failed files put back to work before the run (``sessions retry``).
        stopped_early: ``--fail-fast`` stopped the run at its first failed file.
        new_since_last_run: Files the last listing of the window found that the session did
            not know (all of them at a session's first run).
        listings: Complete listings of the window so far (1 after a session's first run).
        window: The capture window, ``start`` and ``end`` (``now`` when it has no end).
    """

    session_id: str
    status: str
    files: int
    by_status: dict[str, int]
    bytes_uploaded: int
    seconds: float
    failures: list[dict[str, str]] = field(default_factory=list)
    held_back: list[dict[str, str]] = field(default_factory=list)
    retried: int = 0
    stopped_early: bool = False
    new_since_last_run: int = 0
    listings: int = 0
    window: dict[str, str] = field(default_factory=dict)

    @property
    def to_deliver(self) -> int:
        """Files that belong in Google Photos: all but the skipped and the gone."""
        return to_deliver(self.files, self.by_status)

    @property
    def ok(self) -> bool:
        """Whether every file that can move is in Google Photos (the rest held back on purpose,
        or waiting for the GoPro cloud)."""
        return self.status in (COMPLETED, WAITING)


def check_request(
    session_id: str, stored: SessionState | None, asked: WindowRequest, *, widen: bool = False
) -> None:
    """Check a command's window and album against the stored session; widen it if asked.

    A new session needs ``--start`` (without ``--end`` its window has no end). A stored one
    takes the stored values for what is not given; what is given must match, unless
    ``widen`` (``--widen``) widens the stored window (``stored`` is then changed, unsaved).

    Raises:
        Q2GoogleError: Missing ``--start``, an end before the start, or a request that
            differs from the stored session (exit 2; the state is untouched).
    """
    if asked.start is not None and asked.end is not None and asked.end <= asked.start:
        raise Q2GoogleError(
            f"--end {asked.written_end} is not after --start {asked.written_start} "
            "(the end is exclusive)"
        )
    if stored is None:
        if asked.start is None:
            raise Q2GoogleError(f"no session {session_id!r} yet: give --start to begin it")
        return
    if widen:
        window.widen(stored, asked)
        return
    found = window.differences(stored, asked)
    if found:
        raise Q2GoogleError(
            f"session {session_id!r} was started with another "
            + ("window or album" if len(found) > 1 else found[0].split()[0].lstrip("-"))
            + ": "
            + "; ".join(found)
            + ". Leave them out to resume it, choose another --session, or add --widen to "
            "widen its window"
        )


@contextmanager
def service_errors() -> Iterator[None]:
    """Turn what the clouds answered after every retry into one line and an exit code."""
    try:
        yield
    except (RetryableStatusError, httpx.TransportError, OSError) as error:
        raise TryLaterError(
            f"a service kept failing ({describe(error)}); progress is saved: run the same "
            "command again later"
        ) from None
    except Q2GoogleError:
        raise
    except Exception as error:
        if is_transient(error):  # aiohttp's, from the GoPro side
            raise TryLaterError(
                f"the GoPro cloud kept failing ({describe(error)}); progress is saved: run the "
                "same command again later"
            ) from None
        raise


async def run_session(
    settings: Q2GoogleSettings,
    *,
    session_id: str,
    start: datetime | None,
    end: datetime | None,
    album: str | None = None,
    gopro_token: str | None = None,
    retry_failed: bool = False,
    progress: ProgressMode = ProgressMode.OFF,
    widen: bool = False,
    request: WindowRequest | None = None,
    wait: bool = False,
    clock: Clock = SYSTEM_CLOCK,
) -> RunSummary:
    """Run (or resume) a session and summarize it.

    Credentials are checked before any state is written; then the session's lease is taken
    (when the backend is a :class:`~q2google.state.SessionLeasing`) and held to the end.

    Args:
        settings: Settings.
        session_id: The session to start or resume.
        start: Window start, inclusive (new sessions; a stored one's must match).
        end: Window end, exclusive; ``None`` for a new session: no end (it runs to now).
        album: Album title (new sessions; a stored one's must match).
        gopro_token: GoPro token; ``GP_ACCESS_TOKEN`` when ``None``.
        retry_failed: Put the session's failed files back to pending first.
        progress: How to show progress on stderr.
        widen: Widen a stored session's window to ``start``/``end`` instead of refusing.
        request: The same as typed (for messages); built from the arguments when ``None``.
        wait: At Google's daily quota, wait for it to reset and go on instead of stopping.
        clock: The time (tests move it through a quota day).

    Raises:
        Q2GoogleError: Bad input, missing or rejected credentials, unreachable state,
            exhausted quota or retries: each one line.
        SessionBusyError: Another run holds the session (exit 75); nothing was touched.
    """
    with opened_backend(settings) as backend:
        stored = await asyncio.to_thread(load_to_check, backend, session_id)
        if retry_failed and stored is None:
            raise Q2GoogleError(
                f"no session {session_id!r} in {backend!r}: `q2google sessions list` shows them"
            )
        asked = request or WindowRequest(start, end, album, typed_moment(start), typed_moment(end))
        check_request(session_id, stored, asked, widen=widen)
        metrics = SyncTransferMetrics()
        began = asyncio.get_running_loop().time()
        retried, stopped_early = 0, False
        with service_errors():
            token = await require_ready(settings, gopro_token or env_gopro_token())
        # One run at a time: a busy session is one line and exit 75, its state untouched.
        async with session_lease(backend, session_id):
            with service_errors():
                if retry_failed or widen:  # as it is now: another run may have ended meanwhile
                    stored = await asyncio.to_thread(load_to_run, backend, session_id)
                if widen and stored is not None:
                    check_request(session_id, stored, asked, widen=True)
                    await asyncio.to_thread(backend.save, stored)
                if retry_failed and stored is not None:
                    retried = reset_failed(stored)
                    await asyncio.to_thread(backend.save, stored)
                counts = backend if isinstance(backend, RequestCounts) else None
                async with (
                    GoProCloudClient.from_settings(settings, access_token=token) as gopro,
                    GooglePhotosClient.from_settings(
                        settings, counts=counts, clock=clock
                    ) as photos,
                    ProgressDisplay(
                        metrics,
                        mode=progress,
                        label=f"session {session_id}",
                        interval=settings.progress_interval_seconds,
                        clock=clock,
                    ),
                ):
                    sync = GoProToPhotosSync(gopro, photos, backend, settings, clock=clock)
                    while True:
                        try:
                            await sync.sync_date_range(
                                start or clock.now(),
                                end,
                                session_id=session_id,
                                album_title=album,
                                transfer_metrics=metrics,
                                return_responses=False,  # the CLI reports from the session
                            )
                        except PermanentItemError:  # --fail-fast: the failure is on its item
                            stopped_early = True
                        except QuotaExhaustedError as error:
                            stop = quota_stop(error, photos.meter)
                            if not wait:
                                raise stop from None
                            await wait_for_quota(stop, clock, metrics)
                            continue
                        break
            state = sync.last_state  # as saved: no need to read it again
            if state is None or state.has_pending_changes:
                state = await asyncio.to_thread(load_to_run, backend, session_id)
    assert state is not None
    summary = summarize(state)
    return RunSummary(
        session_id=session_id,
        status=summary.status,
        files=summary.files,
        by_status=summary.by_status,
        bytes_uploaded=metrics.bytes_uploaded,
        seconds=round(asyncio.get_running_loop().time() - began, 2),
        failures=summary.failures,
        held_back=summary.held_back,
        retried=retried,
        stopped_early=stopped_early,
        new_since_last_run=state.listing_new,
        listings=state.listings,
        window=summary.window,
    )


def typed_moment(moment: datetime | None) -> str | None:
    """A command-line moment as given, for messages (``None`` when it was not)."""
    return None if moment is None else moment.isoformat()

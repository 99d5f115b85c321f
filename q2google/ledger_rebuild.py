"""``q2google ledger rebuild``: the delivery ledger made again from Google Photos itself.

Every media item q2google creates carries a marker in its description, ``[q2g:<item key>]``
(:mod:`q2google.stages.marker`). After the state was lost (or the ledger damaged), listing the
media items this app created (``mediaItems.list``: 100 a page, each page one request against
Google's daily quota) finds every file q2google delivered; recorded in the ledger, none of
them is sent again by a later sync, whichever session it runs in. Only the Google token is
needed. Entries already in the ledger are kept as they are; unreadable ledger records are set
aside first, when the backend can (:class:`~q2google.state.claims.LedgerRepair`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx

from q2google.clock import SYSTEM_CLOCK, Clock
from q2google.config import Q2GoogleSettings
from q2google.errors import QuotaExhaustedError, StateCorruptError, TryLaterError
from q2google.gphotos.models import MediaItem
from q2google.gphotos.oauth import GooglePhotosOAuth
from q2google.gphotos.quota import RequestMeter, in_words
from q2google.photos import GooglePhotoLibraryPort, GooglePhotosClient
from q2google.retry import RetryableStatusError, describe
from q2google.stages.marker import file_of, item_key_in, media_type_in
from q2google.state import DeliveryLedger, ItemState, SyncStateBackend, opened_backend
from q2google.state.claims import LedgerLookups, LedgerRepair
from q2google.state.ledger import REBUILD_FIX
from q2google.state.request_counts import RequestCounts

logger = logging.getLogger(__name__)

ITEMS_PER_REQUEST = 100
"""Media items per ``mediaItems.list`` page: one request against Google's daily quota each."""
AGAIN = "run `q2google ledger rebuild` again"

Say = Callable[[str], None]


@dataclass
class RebuildReport:
    """What a rebuild found in Google Photos and did to the ledger.

    Attributes:
        found: Files (distinct item keys) that have a marked media item in Google Photos.
        added: Ledger entries written for them.
        already_known: Found files the ledger held already (kept as they were).
        unmarked: Media items this app created without a q2google marker (ignored).
        copies: Further media items of a file already found: the file is in Google Photos
            more than once (the first listed is recorded).
        listed: Media items listed.
        requests: Google requests made (the pages, and any retries).
        set_aside: Unreadable ledger records set aside before writing.
    """

    found: int = 0
    added: int = 0
    already_known: int = 0
    unmarked: int = 0
    copies: int = 0
    listed: int = 0
    requests: int = 0
    set_aside: list[str] = field(default_factory=list)

    def line(self) -> str:
        """The one summary line."""
        text = (
            f"ledger rebuilt from Google Photos: {self.found:,} files found, {self.added:,} "
            f"added, {self.already_known:,} already known, {self.unmarked:,} media items "
            "without a q2google marker ignored"
        )
        if self.copies:
            text += f", {self.copies:,} further copies of found files ignored"
        if self.set_aside:
            text += f", {len(self.set_aside):,} unreadable ledger records set aside"
        return text + f" ({_requests(self.requests)} to Google)"


async def rebuild_ledger(
    settings: Q2GoogleSettings, *, on_progress: Say | None = None, clock: Clock = SYSTEM_CLOCK
) -> RebuildReport:
    """Rebuild the ledger of the state backend ``settings`` select from Google Photos.

    Args:
        settings: Settings: the state backend, the Google token, the daily request limit.
        on_progress: Told what the listing will cost, then how it goes (every
            ``progress_interval_seconds``): lines for stderr.
        clock: The time (the quota day, the progress interval).

    Returns:
        What was found and recorded.

    Raises:
        GoogleAuthError: No usable Google token (one line naming the fix).
        QuotaExhaustedError: Google's daily quota ran out midway; what was found is recorded.
        TryLaterError: Google kept failing; what was found is recorded.
        StateError: The state backend failed.
    """
    await asyncio.to_thread(GooglePhotosOAuth.from_settings(settings).load)
    with opened_backend(settings) as backend:
        counts = backend if isinstance(backend, RequestCounts) else None
        async with GooglePhotosClient.from_settings(settings, counts=counts, clock=clock) as photos:
            return await rebuild_from(
                photos,
                backend,
                on_progress=on_progress,
                interval=settings.progress_interval_seconds,
                clock=clock,
            )


async def rebuild_from(
    photos: GooglePhotoLibraryPort,
    backend: SyncStateBackend,
    *,
    on_progress: Say | None = None,
    interval: float = 10.0,
    clock: Clock = SYSTEM_CLOCK,
) -> RebuildReport:
    """List every media item ``photos`` says this app created and record the marked ones in
    the ledger kept by ``backend`` (see :func:`rebuild_ledger`)."""
    say = on_progress or (lambda _: None)
    meter = getattr(photos, "meter", None)
    meter = meter if isinstance(meter, RequestMeter) else None
    if meter is not None:
        await meter.flush()  # today's count so far, as shared through the backend
    say(await asyncio.to_thread(_cost, backend, meter))
    report = RebuildReport()
    found: dict[str, ItemState] = {}
    made, shown = (meter.made if meter else 0), clock.monotonic()
    try:
        with _google_errors():
            async for media_item in photos.app_created_items():
                _sort(media_item, found, report)
                if clock.monotonic() - shown >= interval:
                    shown = clock.monotonic()
                    say(
                        f"ledger rebuild: {report.listed:,} media items listed "
                        f"({_requests(meter.made - made) if meter else 'requests unknown'}), "
                        f"{len(found):,} files found"
                    )
    except QuotaExhaustedError as error:
        await asyncio.to_thread(_record, backend, found, report)
        raise _quota_stop(error, meter, report, clock) from None
    except TryLaterError:
        await asyncio.to_thread(_record, backend, found, report)
        raise
    finally:
        report.requests = meter.made - made if meter else 0
        await _flush(meter)
    await asyncio.to_thread(_record, backend, found, report)
    return report


def entry_of(media_item: MediaItem) -> ItemState | None:
    """The ledger entry a media item q2google created stands for, or ``None`` (no marker)."""
    key = item_key_in(media_item.description)
    named = file_of(key) if key is not None else None
    if named is None:
        return None
    metadata = (media_item.model_extra or {}).get("mediaMetadata")
    captured = metadata.get("creationTime") if isinstance(metadata, dict) else None
    return ItemState(
        media_id=named[0],
        file_index=named[1],
        file_name=media_item.filename or key or "",
        media_type=media_type_in(media_item.description),
        captured_at=captured if isinstance(captured, str) else None,
        media_item_id=media_item.id,
    )


def _sort(media_item: MediaItem, found: dict[str, ItemState], report: RebuildReport) -> None:
    """Count a listed media item: a file found, a further copy of one, or unmarked."""
    report.listed += 1
    entry = entry_of(media_item)
    if entry is None:
        report.unmarked += 1
    elif entry.item_key in found:
        report.copies += 1
    else:
        found[entry.item_key] = entry


def _record(backend: SyncStateBackend, found: dict[str, ItemState], report: RebuildReport) -> None:
    """Set unreadable records aside (when the backend can), then write the entries of the
    found files the ledger does not hold; fill in the report."""
    repairs = False
    if isinstance(backend, LedgerRepair):
        report.set_aside, repairs = backend.repair_ledger(), True
    ledger = DeliveryLedger(backend)
    try:
        known = ledger.delivered_many(found)
    except StateCorruptError as error:
        if repairs:
            raise
        raise StateCorruptError(
            str(error).replace(f"; {REBUILD_FIX}", "")
            + ": this state backend cannot set unreadable records aside; repair or delete "
            f"them by hand, then {AGAIN}"
        ) from None
    added = [entry for key, entry in found.items() if key not in known]
    for entry in added:
        ledger.record(entry)
    ledger.save()
    report.found, report.added = len(found), len(added)
    report.already_known = report.found - report.added


def _cost(backend: SyncStateBackend, meter: RequestMeter | None) -> str:
    """What listing will cost: requests of Google's daily quota, when the ledger tells."""
    size = backend.ledger_size() if isinstance(backend, LedgerLookups) else 0
    text = "listing the media items q2google created in Google Photos: "
    if size:
        text += (
            f"about {_requests(size // ITEMS_PER_REQUEST + 1)} of Google's daily quota (one "
            f"per {ITEMS_PER_REQUEST} media items; the ledger holds {size:,} files)"
        )
    else:
        text += (
            f"one request of Google's daily quota per {ITEMS_PER_REQUEST} media items (how "
            "many there are is not known beforehand)"
        )
    if meter is not None and meter.limit:
        text += f"; {meter.used_today:,} of {meter.limit:,} used today"
    return text


def _quota_stop(
    error: QuotaExhaustedError, meter: RequestMeter | None, report: RebuildReport, clock: Clock
) -> QuotaExhaustedError:
    """The one line to stop on when the quota ran out midway."""
    resets = (meter.exhausted_error() if meter else error).resets_at
    when = (
        f"it resets at {resets.astimezone():%Y-%m-%d %H:%M} your time (in "
        f"{in_words((resets - clock.now()).total_seconds())}): {AGAIN} then"
        if resets is not None
        else f"{AGAIN} once it has reset"
    )
    return QuotaExhaustedError(
        f"Google's daily request quota ran out after {report.listed:,} media items; the "
        f"{report.found:,} files found so far are in the ledger ({report.added:,} added). "
        f"{when[0].upper()}{when[1:]}",
        resets_at=resets,
    )


@contextmanager
def _google_errors() -> Iterator[None]:
    """Turn what Google answered after every retry into one line (exit 75)."""
    try:
        yield
    except (RetryableStatusError, httpx.TransportError, OSError) as error:
        raise TryLaterError(
            f"Google Photos kept failing ({describe(error)}); the files found so far are in the "
            f"ledger: {AGAIN} later"
        ) from None


def _requests(count: int) -> str:
    """``"1 request"``, ``"1,234 requests"``."""
    return f"{count:,} request" + ("" if count == 1 else "s")


async def _flush(meter: RequestMeter | None) -> None:
    """Write the requests made to the shared count (a failure is logged, not raised)."""
    if meter is None:
        return
    try:
        await meter.flush()
    except Exception as error:  # the rebuild's own outcome is what the user must see
        logger.warning("could not record the Google requests of the rebuild: %s", error)

"""``q2google sync --dry-run``: what a sync would move, found by discovery alone.

Only the GoPro cloud is asked (its media, their files, their sizes); the state backend is
read (the session, the ledger of delivered files), never written.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from q2google import window
from q2google.auth import gopro_token as env_gopro_token
from q2google.auth import require_gopro
from q2google.config import Q2GoogleSettings
from q2google.errors import Q2GoogleError
from q2google.gopro import GoProCloudClient, GoProLibrary, MediaGoneError
from q2google.gopro.shapes import GONE_REASON
from q2google.gphotos.limits import refusal
from q2google.retry import describe, is_transient
from q2google.run import check_request, service_errors, typed_moment
from q2google.sessions import last_error
from q2google.stages.discovery import DiscoveryStage
from q2google.stages.transfer import CdnUrlExpiredError, cdn_file_size
from q2google.state import (
    DeliveryLedger,
    ItemState,
    SessionState,
    StageStatus,
    SyncStateBackend,
    new_session,
    opened_backend,
)
from q2google.state.base import ExclusionKind
from q2google.sync import cdn_client
from q2google.window import WindowRequest, utc_text

SIZE_CHECKS_IN_FLIGHT = 8
"""CDN size checks in flight at once (files whose size the listing did not give)."""


@dataclass
class DryRunReport:
    """What a sync would move, found by discovery alone.

    Attributes:
        session_id: The session.
        files: Files that would be uploaded.
        bytes: Their total size.
        by_type: ``{media type: {"files": n, "bytes": n}}``.
        already_delivered: Files already in Google Photos (this session or an earlier one).
        failures: Media whose files cannot be described (``{"item", "file", "error"}``).
        held_back: Files that will not move now, and why (``{"item", "file", "outcome",
            "reason"}``: skipped, deferred or gone).
    """

    session_id: str
    files: int = 0
    bytes: int = 0
    by_type: dict[str, dict[str, int]] = field(default_factory=dict)
    already_delivered: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    held_back: list[dict[str, str]] = field(default_factory=list)


async def dry_run(
    settings: Q2GoogleSettings,
    *,
    session_id: str,
    start: datetime | None,
    end: datetime | None,
    gopro_token: str | None = None,
    widen: bool = False,
    request: WindowRequest | None = None,
) -> DryRunReport:
    """Discover what a sync of the session would move, without uploading or saving anything.

    Only the GoPro cloud is asked (its media, their files, their sizes); the state backend
    is read (the session, the ledger of delivered files), never written.

    Raises:
        Q2GoogleError: Bad input, a missing or rejected GoPro token, an unreachable service.
    """
    with opened_backend(settings) as backend:
        stored = await asyncio.to_thread(backend.load, session_id)
        asked = request or WindowRequest(start, end, None, typed_moment(start), typed_moment(end))
        check_request(session_id, stored, asked, widen=widen)  # widened in memory only
        state = stored
        if state is None:
            assert start is not None
            now = datetime.now(UTC)
            state = new_session(
                session_id,
                start_date_iso=utc_text(start),
                end_date_iso=utc_text(end or max(now, start)),
                batch_size=settings.sync_batch_size,
                open_end=end is None,
            )
        elif state.open_end:
            state.end_date_iso = utc_text(max(datetime.now(UTC), window.window_bounds(state)[1]))
        token = gopro_token or env_gopro_token()
        with service_errors():
            await require_gopro(settings, token)
            async with (
                GoProCloudClient.from_settings(settings, access_token=token) as gopro,
                cdn_client() as cdn,
            ):
                library = GoProLibrary(gopro)

                async def keep_in_memory(_: SessionState) -> None:
                    return None

                await DiscoveryStage(library, keep_in_memory).run(state)
                return await _report(state, backend, library, cdn)


async def _report(
    state: SessionState, backend: SyncStateBackend, library: GoProLibrary, cdn: httpx.AsyncClient
) -> DryRunReport:
    ledger = DeliveryLedger(backend)
    unfinished = [
        key for key, item in state.items.items() if item.create_status is not StageStatus.COMPLETED
    ]
    delivered = await asyncio.to_thread(ledger.delivered_many, unfinished)
    report = DryRunReport(
        state.session_id,
        failures=[
            {"item": item.item_key, "file": item.file_name, "error": last_error(item)}
            for item in state.items.values()
            if item.discovery_status is StageStatus.FAILED
        ],
    )
    todo: list[ItemState] = []
    for item in state.items.values():
        if item.create_status is StageStatus.COMPLETED or item.item_key in delivered:
            report.already_delivered += 1
        elif item.exclusion is not None:
            report.held_back.append(_held_back(item, item.exclusion.kind, item.exclusion.reason))
        elif item.discovery_status is StageStatus.COMPLETED:
            todo.append(item)
    limit = asyncio.Semaphore(SIZE_CHECKS_IN_FLIGHT)

    async def size_of(item: ItemState) -> int | str:
        """The file's size, or why it cannot be had."""
        if item.size_bytes is not None:
            return item.size_bytes
        async with limit:
            try:
                assert item.download_url is not None
                try:
                    return await cdn_file_size(cdn, item.download_url, library.policy)
                except CdnUrlExpiredError:  # a stored session's URL: resolve a fresh one
                    files = await library.files(item.media_id, item.media_type)
                    fresh = [entry.url for entry in files if entry.file_index == item.file_index]
                    if not fresh or fresh[0] is None:
                        return "no longer offered by the GoPro cloud"
                    return await cdn_file_size(cdn, fresh[0], library.policy)
            except MediaGoneError:
                return GONE_REASON
            except Exception as error:  # one file's trouble, reported with it
                if isinstance(error, Q2GoogleError) or is_transient(error):
                    raise
                return f"size check: {describe(error)}"

    sizes = await asyncio.gather(*(size_of(item) for item in todo))
    for item, size in zip(todo, sizes, strict=True):
        if size == GONE_REASON:
            report.held_back.append(_held_back(item, ExclusionKind.GONE, GONE_REASON))
            continue
        if isinstance(size, str):
            report.failures.append({"item": item.item_key, "file": item.file_name, "error": size})
            continue
        refused = refusal(item.file_name, size)
        if refused is not None:
            report.held_back.append(_held_back(item, ExclusionKind.SKIPPED, refused))
            continue
        kind = report.by_type.setdefault(item.media_type or "unknown", {"files": 0, "bytes": 0})
        kind["files"] += 1
        kind["bytes"] += size
        report.files += 1
        report.bytes += size
    return report


def _held_back(item: ItemState, kind: ExclusionKind, reason: str) -> dict[str, str]:
    return {"item": item.item_key, "file": item.file_name, "outcome": kind.value, "reason": reason}

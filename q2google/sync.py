"""The orchestrator: a session through discovery, transfer and create, checkpointed throughout.

:class:`GoProToPhotosSync` loads the session (or starts it), runs
:class:`~q2google.stages.discovery.DiscoveryStage`, then
:class:`~q2google.stages.transfer.TransferStage` and
:class:`~q2google.stages.create.CreateStage` overlapped: items are created in batches as soon as
their uploads finish. Running it again with the same session id resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from q2google.checkpoints import Checkpoints
from q2google.clock import SYSTEM_CLOCK, Clock
from q2google.config import Q2GoogleSettings, get_settings
from q2google.errors import GoProAuthError, QuotaExhaustedError, TryLaterError
from q2google.gopro import GoProLibrary, GoProSource
from q2google.gphotos.models import MediaItemBatchCreateResponse
from q2google.http_transport import http_client
from q2google.photos import GooglePhotoLibraryPort
from q2google.stages.album import add_to_session_album
from q2google.stages.create import CreateStage
from q2google.stages.discovery import DiscoveryStage
from q2google.stages.metrics import SyncTransferMetrics
from q2google.stages.quota_watch import QuotaWatch as _QuotaWatch
from q2google.stages.transfer import Claim, PermanentItemError, TransferStage
from q2google.state import (
    DeliveryLedger,
    ItemState,
    LedgerClaims,
    SessionState,
    StageName,
    StageStatus,
    SyncStateBackend,
    load_to_run,
    new_session,
)
from q2google.state.base import ExclusionKind
from q2google.state.lease import session_lease
from q2google.state.ledger import refuse_reserved
from q2google.throttle import AdaptiveLimit
from q2google.window import utc_text

logger = logging.getLogger(__name__)

StageStartCallback = Callable[[str], Awaitable[None]]
StageCompleteCallback = Callable[
    [str, SessionState, list[MediaItemBatchCreateResponse] | None], Awaitable[None]
]
RESEND_ROUNDS = 3
SETTLE_ROUNDS = 2
CDN_TIMEOUT = httpx.Timeout(connect=15.0, read=120.0, write=60.0, pool=120.0)


def cdn_client() -> httpx.AsyncClient:
    """An HTTP client for the GoPro CDN (signed URLs; redirects followed)."""
    return http_client(timeout=CDN_TIMEOUT, follow_redirects=True)


__all__ = ["GoProToPhotosSync", "SyncTransferMetrics"]


@dataclass
class GoProToPhotosSync:
    """Coordinate a staged sync from the GoPro cloud into Google Photos.

    Attributes:
        gopro: Where media come from: an entered gopro-api ``AsyncGoProClient`` (see
            :class:`q2google.gopro.GoProCloudClient`), or any
            :class:`~q2google.gopro.GoProSource`.
        photos: Google Photos (:class:`q2google.photos.GooglePhotosClient`).
        state_backend: Where checkpoints go.
        settings: Concurrency, batch sizes, ``fail_fast``.
        cdn: HTTP client for GoPro's CDN; one is made per run when ``None``.
        clock: The time: window ends, token ages, the quota day (tests move it).
        last_state: The session as the last run left it, as saved: read its counts without
            loading it again. It holds what is still to do; the files delivered are in its
            ``settled`` (a run lets them go at each checkpoint, so that its memory follows
            the work in flight, not the library).
    """

    gopro: Any
    photos: GooglePhotoLibraryPort
    state_backend: SyncStateBackend
    settings: Q2GoogleSettings = field(default_factory=get_settings)
    cdn: httpx.AsyncClient | None = None
    clock: Clock = SYSTEM_CLOCK
    last_state: SessionState | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        """Bind the GoPro side to the shared retry policy and prepare the checkpoints."""
        self._source: GoProSource = (
            self.gopro if isinstance(self.gopro, GoProSource) else GoProLibrary(self.gopro)
        )
        self._checkpoints = Checkpoints(self.state_backend.save)
        self._ledger_lock = asyncio.Lock()

    async def _persist_state(self, state: SessionState) -> None:
        """Checkpoint ``state`` (saves are serialized, and shared by the callers waiting)."""
        await self._checkpoints.save(state)

    async def _save_ledger(self, ledger: DeliveryLedger) -> None:
        """Store the ledger's new entries. A store that keeps each entry on its own
        (:class:`~q2google.state.LedgerClaims`) writes them beside the checkpoints, which
        need not wait (no item says it is created before its entry is stored: the create
        stage records first); another saves its ledger as a session, between checkpoints."""
        claims = isinstance(self.state_backend, LedgerClaims)
        async with self._ledger_lock if claims else self._checkpoints.lock:
            await asyncio.to_thread(ledger.save)

    async def _reconcile_with_ledger(self, state: SessionState, ledger: DeliveryLedger) -> None:
        """Skip the files of this session an earlier session (or a run of this one that died
        right after recording them) already delivered; the ledger is asked about the files
        still to create only. A session of an earlier version, which recorded its items after
        checkpointing them, has its created items recorded first (once)."""
        if not state.ledger_recorded:
            created = [i for i in state.items.values() if i.create_status is StageStatus.COMPLETED]
            news = [ledger.record(item) for item in created]  # every one: no short cut
            if any(news):
                await self._save_ledger(ledger)
            state.ledger_recorded = True
            await self._persist_state(state)
        to_create = [
            item
            for item in state.items.values()
            if item.create_status is not StageStatus.COMPLETED
            and item.discovery_status is StageStatus.COMPLETED
        ]
        keys = [item.item_key for item in to_create]
        delivered = await asyncio.to_thread(ledger.delivered_many, keys) if keys else {}
        skipped = 0
        for item in to_create:
            known = delivered.get(item.item_key)
            if known is None:
                continue
            item.media_item_id, item.upload_token, item.download_url = known, None, None
            item.create_status = StageStatus.COMPLETED
            if item.transfer_status is not StageStatus.COMPLETED:
                item.transfer_status = StageStatus.SKIPPED
            skipped += 1
        if skipped:
            logger.info(
                "%d files were already delivered (the ledger says so); not sent again", skipped
            )
            await self._persist_state(state)

    def _claims(self, state: SessionState, ledger: DeliveryLedger) -> Claim:
        """Ask the cross-session ledger before files are transferred: a file another session
        has delivered meanwhile is done here too; one it is sending now waits for a later run.
        """

        async def claim(items: Sequence[ItemState]) -> set[str]:
            keys = [item.item_key for item in items]
            won = set(await asyncio.to_thread(ledger.claim_many, keys, state.session_id))
            for item in items:
                if item.item_key in won:
                    continue
                known = await asyncio.to_thread(ledger.delivered, item.item_key)
                if known is not None:
                    item.media_item_id, item.upload_token, item.download_url = known, None, None
                    item.transfer_status = StageStatus.SKIPPED
                    item.create_status = StageStatus.COMPLETED
                else:
                    item.exclude(
                        ExclusionKind.DEFERRED, "another q2google session is sending it right now"
                    )
            return won

        return claim

    async def _load_or_start(self, session_id: str, **window: Any) -> SessionState:
        """The stored session (without its settled files when the backend can leave them
        out), or a new one (checkpointed at once) with ``window``."""
        state = await asyncio.to_thread(load_to_run, self.state_backend, session_id)
        if state is None:
            state = new_session(session_id, **window)
            await self._persist_state(state)
        return state

    async def sync_date_range(
        self,
        start_date: datetime,
        end_date: datetime | None,
        *,
        session_id: str,
        batch_size: int | None = None,
        fail_fast: bool | None = None,
        album_title: str | None = None,
        on_stage_start: StageStartCallback | None = None,
        on_stage_complete: StageCompleteCallback | None = None,
        transfer_metrics: SyncTransferMetrics | None = None,
        return_responses: bool = True,
    ) -> list[MediaItemBatchCreateResponse]:
        """Run discovery, transfer and create for ``session_id``, resuming a stored session.

        When the session exists, its stored window, batch size and album win over the
        arguments. A session run again lists its window again and delivers what is new; an
        open window (``end_date`` ``None``) runs to the start of each run.

        Args:
            start_date: Capture window start, inclusive (new sessions only).
            end_date: Capture window end, exclusive (new sessions only); ``None``: no end.
            session_id: Key of the session in the state backend.
            batch_size: Transfer batch size for new sessions (default from settings).
            fail_fast: Stop at the first permanent item failure (default from settings).
            album_title: Album to create items into (new sessions only).
            on_stage_start: Awaited before each stage with its name.
            on_stage_complete: Awaited after each stage (also when it failed).
            transfer_metrics: Filled with byte and time counters.
            return_responses: Keep the batchCreate responses to return them (about 1 KB a
                file: a run of a large library may do without).

        Returns:
            The batchCreate responses of this run, in order (none when not kept).

        Raises:
            SessionBusyError: Another run holds the session (a backend that can lease).
        """
        refuse_reserved(session_id)
        async with session_lease(self.state_backend, session_id):  # one owner per session
            try:
                return await self._sync(
                    start_date,
                    end_date,
                    session_id=session_id,
                    batch_size=batch_size,
                    fail_fast=fail_fast,
                    album_title=album_title,
                    on_stage_start=on_stage_start,
                    on_stage_complete=on_stage_complete,
                    transfer_metrics=transfer_metrics,
                    return_responses=return_responses,
                )
            finally:  # no save may land once the session is let go
                await self._checkpoints.drain()

    async def _sync(
        self,
        start_date: datetime,
        end_date: datetime | None,
        *,
        session_id: str,
        batch_size: int | None,
        fail_fast: bool | None,
        album_title: str | None,
        on_stage_start: StageStartCallback | None,
        on_stage_complete: StageCompleteCallback | None,
        transfer_metrics: SyncTransferMetrics | None,
        return_responses: bool,
    ) -> list[MediaItemBatchCreateResponse]:
        stop_early = self.settings.fail_fast if fail_fast is None else fail_fast
        metrics = transfer_metrics if transfer_metrics is not None else SyncTransferMetrics()
        now = self.clock.now()
        state = self.last_state = await self._load_or_start(
            session_id,
            start_date_iso=utc_text(start_date),
            end_date_iso=utc_text(end_date or max(now, start_date)),
            batch_size=batch_size or self.settings.sync_batch_size,
            album_title=album_title,
            open_end=end_date is None,
        )
        state.settle_as_saved()  # a run holds what is still to do, not the whole library
        if state.open_end and now > datetime.fromisoformat(state.end_date_iso):  # moves on
            state.end_date_iso = utc_text(now)
            await self._persist_state(state)
        discovery = DiscoveryStage(self._source, self._persist_state)
        metrics.stage = "discovery"
        await _staged("discovery", state, on_stage_start, on_stage_complete, discovery.run(state))

        if state.album_title and not state.album_id:
            state.album_id = await self.photos.find_or_create_album(state.album_title)
            await self._persist_state(state)

        ledger = DeliveryLedger(self.state_backend)
        await self._reconcile_with_ledger(state, ledger)
        metrics.count(state)

        async def record_created(items: list[ItemState]) -> None:
            news = [ledger.record(item) for item in items]  # record every one, no short cut
            metrics.files_done += len(items)
            if any(news):
                await self._save_ledger(ledger)

        create = CreateStage(
            self.photos,
            self._persist_state,
            library_batch_size=self.settings.photos_library_batch_size,
            on_created=record_created,
            clock=self.clock.now,
            keep_responses=return_responses,
        )
        cdn = self.cdn or cdn_client()
        limit = AdaptiveLimit(self.settings.transfer_concurrency, clock=self.clock)
        quota = _QuotaWatch(self.photos, self.state_backend, metrics, limit)
        try:
            quota.start(state)
            transfer = TransferStage(
                self._source,
                self.photos,
                self._persist_state,
                cdn,
                concurrency=self.settings.transfer_concurrency,
                limit=limit,
                clock=self.clock,
                persist_soon=self._checkpoints.soon,
            )
            await create.recover(state)
            for item in create.ready_items(state):  # tokens from an earlier run
                await create.add(state, item)

            async def uploaded(item: ItemState) -> None:
                await create.add(state, item)

            metrics.stage = "transfer"
            work = _transfer_and_create(
                state,
                transfer,
                create,
                metrics,
                fail_fast=stop_early,
                on_uploaded=uploaded,
                claim=self._claims(state, ledger),
            )
            await _staged("transfer", state, on_stage_start, on_stage_complete, work)
        finally:
            if self.cdn is None:
                await cdn.aclose()
            await _release_claims(ledger, state)
            await quota.stop()
        await add_to_session_album(self.photos, state, self._persist_state)
        created = all(
            item.create_status in (StageStatus.COMPLETED, StageStatus.SKIPPED)
            or item.exclusion is not None  # held back on purpose: not the create stage's doing
            for item in state.items.values()
        )
        state.set_stage(StageName.CREATE, StageStatus.COMPLETED if created else StageStatus.FAILED)
        await self._persist_state(state)
        metrics.count(state)
        metrics.stage = "done"
        if on_stage_complete is not None:
            await on_stage_complete("create", state, list(create.responses))
        return list(create.responses)


async def _transfer_and_create(
    state: SessionState,
    transfer: TransferStage,
    create: CreateStage,
    metrics: SyncTransferMetrics,
    *,
    fail_fast: bool,
    on_uploaded: Callable[[ItemState], Awaitable[None]],
    claim: Claim,
) -> None:
    """Transfer, create as batches fill, settle lost answers; upload again what Google
    refused the token of, a few rounds at most."""
    for round_number in range(RESEND_ROUNDS + 1):
        try:
            await transfer.run(
                state, fail_fast=fail_fast, on_uploaded=on_uploaded, metrics=metrics, claim=claim
            )
            await create.drain()
        except (GoProAuthError, QuotaExhaustedError, TryLaterError, PermanentItemError):
            await _create_before_stopping(create, state)
            raise
        except BaseException:  # any other way out: the batch being sent ends first
            await _drained(create)
            raise
        for _ in range(SETTLE_ROUNDS):  # lost answers: find what they did, send what misses
            await create.flush(state)
            await create.settle(state)
        await create.flush(state)  # what the last settle queued again (a lost answer here is
        metrics.count(state)  # settled by the next run: its files are still to do, exit 75)
        if not create.resend or round_number == RESEND_ROUNDS:
            break
        logger.info("uploading %d items again whose tokens Google refused", len(create.resend))
        create.resend.clear()


async def _release_claims(ledger: DeliveryLedger, state: SessionState) -> None:
    """Let go of the claims on files not delivered, except those whose create may have
    happened or is still to come from a token (the next run of this session settles them)."""
    unsettled = [
        item.item_key
        for item in state.items.values()
        if item.create_status is StageStatus.RUNNING
        or (item.upload_token and item.create_status is not StageStatus.COMPLETED)
    ]
    try:
        await asyncio.to_thread(ledger.release_all, state.session_id, keep=unsettled)
    except Exception as error:  # the run's own outcome is what the user must see
        logger.warning("could not release this session's claims: %s", error)


async def _create_before_stopping(create: CreateStage, state: SessionState) -> None:
    """Create the tokens waiting in a partial batch before a planned stop (a quota, an
    expired token): they are checkpointed anyway, but a day from now they are worthless."""
    try:
        await _drained(create)
        create.queue_ready(state)
        await create.flush(state)
    except Exception as error:  # the stop's own cause is what the user must see
        logger.info("could not create the waiting files before stopping: %s", error)


async def _drained(create: CreateStage) -> None:
    """Let the batch being sent end as the run stops; what it raised is logged (the stop's
    own cause is what the user must see)."""
    try:
        await create.drain()
    except Exception as error:
        logger.warning("a batch sent as the run stopped failed: %s", error)


async def _staged(
    name: str,
    state: SessionState,
    on_start: StageStartCallback | None,
    on_complete: StageCompleteCallback | None,
    work: Awaitable[None],
) -> None:
    if on_start is not None:
        await on_start(name)
    try:
        await work
    finally:
        if on_complete is not None:
            await on_complete(name, state, None)

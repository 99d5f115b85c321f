"""A run's view of Google's daily quota: the meter's counts in the metrics, its 429s in the
adaptive limit, and an estimate of what the session still needs."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from q2google.clock import SYSTEM_CLOCK, Clock
from q2google.gphotos.limits import MAX_BATCH_CREATE_ITEMS
from q2google.gphotos.oauth import GooglePhotosOAuth
from q2google.gphotos.quota import (
    RequestMeter,
    project_counter,
    quota_day,
    quota_resets_at,
    requests_needed,
)
from q2google.stages.metrics import SyncTransferMetrics
from q2google.state import ItemState, SessionState, StageStatus
from q2google.state.request_counts import RequestCounts
from q2google.throttle import AdaptiveLimit

if TYPE_CHECKING:
    from q2google.config import Q2GoogleSettings

logger = logging.getLogger(__name__)


def session_requests_needed(state: SessionState, *, raw_max_bytes: int, chunk_size: int) -> int:
    """About how many Google requests the session needs to deliver what is left to do."""
    uploads = [item.size_bytes for item in state.items.values() if _to_upload(item)]
    creates_only = sum(_to_create_only(item) for item in state.items.values())
    needed = requests_needed(uploads, raw_max_bytes=raw_max_bytes, chunk_size=chunk_size)
    return needed + math.ceil(creates_only / MAX_BATCH_CREATE_ITEMS)


def _open(item: ItemState) -> bool:
    return item.exclusion is None and item.create_status not in (
        StageStatus.COMPLETED,
        StageStatus.SKIPPED,
    )


def _to_upload(item: ItemState) -> bool:
    return _open(item) and item.transfer_status not in (StageStatus.COMPLETED, StageStatus.SKIPPED)


def _to_create_only(item: ItemState) -> bool:
    return _open(item) and item.transfer_status is StageStatus.COMPLETED


class QuotaWatch:
    """Wire a Google client's :class:`~q2google.gphotos.quota.RequestMeter` to one run.

    Args:
        photos: The Google side; metered when it has a ``meter``
            (:class:`~q2google.photos.GooglePhotosClient` does).
        backend: The state backend; the count is shared through it when it can.
        metrics: The run's counters, kept up to date.
        limit: Lowered on Google's per-minute 429s, raised on clean uploads.
    """

    def __init__(
        self,
        photos: Any,
        backend: object,
        metrics: SyncTransferMetrics,
        limit: AdaptiveLimit,
    ) -> None:
        meter = getattr(photos, "meter", None)
        self.meter = meter if isinstance(meter, RequestMeter) else None
        self.backend = backend
        self.metrics = metrics
        self.limit = limit
        self._raw_max = int(getattr(photos, "raw_max_bytes", 0))
        self._chunk = int(getattr(photos, "chunk_size", 64 * 1024**2))
        self._needed = 0
        self._made_at_start = 0
        self._state: SessionState | None = None

    def start(self, state: SessionState) -> None:
        """Start watching: share the count, listen to the meter, estimate the work left."""
        self.metrics.uploads_allowed = self.limit.current
        meter = self.meter
        if meter is None:
            return
        if isinstance(self.backend, RequestCounts):
            meter.share(self.backend)
        meter.on_rate_limited.append(self.limit.slow_down)
        meter.on_clean_upload.append(self.limit.succeeded)
        meter.on_change.append(self._show)
        self._state = state
        self._needed = session_requests_needed(
            state, raw_max_bytes=self._raw_max, chunk_size=self._chunk
        )
        self._made_at_start = meter.made
        self.metrics.google_request_limit = meter.limit
        self._show(meter)

    async def stop(self) -> None:
        """Stop watching and write the count (a failure is logged: the run's own outcome is
        what the user must see)."""
        meter = self.meter
        if meter is None:
            return
        for listeners, listener in (
            (meter.on_rate_limited, self.limit.slow_down),
            (meter.on_clean_upload, self.limit.succeeded),
            (meter.on_change, self._show),
        ):
            if listener in listeners:
                listeners.remove(listener)  # type: ignore[arg-type]
        try:
            await meter.flush()
        except Exception as error:
            logger.warning("could not record the Google requests of this run: %s", error)
        if self._state is not None:  # what is left now, not the start's guess minus the spent
            self._needed = session_requests_needed(
                self._state, raw_max_bytes=self._raw_max, chunk_size=self._chunk
            )
            self._made_at_start = meter.made
        self._show(meter)

    def _show(self, meter: RequestMeter) -> None:
        self.metrics.google_requests_today = meter.used_today
        self.metrics.google_quota_resets_at = meter.resets_at()
        made = meter.made - self._made_at_start
        self.metrics.google_requests_needed = max(0, self._needed - made)
        self.metrics.uploads_allowed = self.limit.current


def quota_report(
    settings: Q2GoogleSettings, backend: object, state: SessionState, clock: Clock = SYSTEM_CLOCK
) -> dict[str, Any]:
    """Google's daily quota as ``sessions show`` tells it: requests used today by every
    session sharing ``backend``, the limit, the next reset, and what ``state`` still needs.

    Returns:
        ``used_today`` (``None`` when the backend does not count), ``limit`` (``None``: none
        of q2google's own), ``resets_at`` (ISO 8601), ``needed``.
    """
    counter = project_counter(GooglePhotosOAuth.from_settings(settings).client_id())
    now = clock.now()
    used = (
        backend.add_requests(counter, quota_day(now), 0)
        if isinstance(backend, RequestCounts)
        else None
    )
    return {
        "used_today": used,
        "limit": settings.daily_request_limit or None,
        "resets_at": quota_resets_at(now).isoformat(),
        "needed": session_requests_needed(
            state,
            raw_max_bytes=settings.raw_upload_max_bytes,
            chunk_size=settings.upload_chunk_size_bytes,
        ),
    }

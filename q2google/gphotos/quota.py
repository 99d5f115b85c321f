"""Google's daily request quota, metered: requests counted per project and Pacific day.

Google Photos allows a project 10,000 Library API requests a day, uploads included, and resets
the count at midnight Pacific time. :class:`RequestMeter` sees every request
:class:`~q2google.gphotos.api.GooglePhotosAPI` sends: it counts it (in a
:class:`~q2google.state.RequestCounts` shared by every session using the same state), refuses
it once the day's limit is reached, and reads Google's 429s: a daily-quota one ends the day, a
per-minute one tells its listeners to slow down (:class:`~q2google.throttle.AdaptiveLimit`).

Uploads stop a few requests short of the limit (:data:`CREATE_RESERVE`), so a stopped run can
still create the files it uploaded: an upload token is worthless a day later.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

import httpx

from q2google.clock import SYSTEM_CLOCK, Clock
from q2google.errors import QuotaExhaustedError
from q2google.gphotos.answers import error_body, is_daily_quota
from q2google.gphotos.limits import DAILY_REQUEST_QUOTA, MAX_BATCH_CREATE_ITEMS, UPLOADS_PATH
from q2google.retry import parse_retry_after
from q2google.state.request_counts import MemoryRequestCounts, RequestCounts

logger = logging.getLogger(__name__)

PACIFIC = ZoneInfo("America/Los_Angeles")
"""Google's quota day runs from midnight to midnight in this zone."""
COUNTER_PREFIX = "google-photos"
CREATE_RESERVE = 3
"""Requests of the day left to batchCreate when uploads stop (two batches and an album)."""
FLUSH_EVERY_REQUESTS = 20
FLUSH_EVERY_SECONDS = 5.0
"""The shared count is brought up to date this often (and when the run ends or stops)."""


class RequestKind(StrEnum):
    """Which requests stop first at the daily limit."""

    UPLOAD = "upload"
    API = "api"


def request_kind(url: str) -> RequestKind:
    """An upload (raw, or any step of a resumable one) or another API call."""
    return RequestKind.UPLOAD if UPLOADS_PATH in httpx.URL(url).path else RequestKind.API


def quota_day(moment: datetime) -> str:
    """Google's quota day of ``moment``: its date in Pacific time, ``YYYY-MM-DD``."""
    return moment.astimezone(PACIFIC).date().isoformat()


def quota_resets_at(moment: datetime) -> datetime:
    """The next reset after ``moment``: the coming midnight, Pacific time."""
    local = moment.astimezone(PACIFIC)
    tomorrow = local.date() + timedelta(days=1)
    return datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=PACIFIC)


def project_counter(client_id: str | None) -> str:
    """The counter of a Google Cloud project, from its OAuth client id.

    A client id starts with the project's number (``123456789012-abc...``); the quota is the
    project's, shared by every client of it.
    """
    number = (client_id or "").split("-", 1)[0]
    return f"{COUNTER_PREFIX}-{number}" if number.isdigit() else COUNTER_PREFIX


def requests_needed(sizes: Iterable[int | None], *, raw_max_bytes: int, chunk_size: int) -> int:
    """About how many Google requests delivering files of ``sizes`` takes.

    One per raw upload, a start plus one per chunk for a resumable one, one batchCreate per
    50 files. Unknown sizes count as resumable.
    """
    uploads = files = 0
    for size in sizes:
        files += 1
        if size is not None and 0 < size <= raw_max_bytes:
            uploads += 1
        else:
            uploads += 1 + max(1, math.ceil((size or 1) / max(1, chunk_size)))
    return uploads + math.ceil(files / MAX_BATCH_CREATE_ITEMS)


def in_words(seconds: float) -> str:
    """``7h58m``, ``12m``, ``40s``."""
    whole = max(0, int(seconds))
    if whole >= 3600:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 60}m" if whole >= 60 else f"{whole}s"


class RequestMeter:
    """Count Google requests per project and Pacific day; refuse them past the daily limit.

    Args:
        limit: Requests a day this project may make (``None``: only Google's 429 stops).
        counts: Where the count is shared (a state backend); this process only by default.
        counter: The project's counter (:func:`project_counter`).
        clock: Tells the day.
        reserve: Requests of the limit that uploads leave to batchCreate.

    Attributes:
        made: Requests made through this meter.
        on_rate_limited: Called with ``Retry-After`` (or ``None``) on a per-minute 429.
        on_clean_upload: Called after every upload request Google accepted.
        on_change: Called after every counted request and change of state.
    """

    def __init__(
        self,
        *,
        limit: int | None = DAILY_REQUEST_QUOTA,
        counts: RequestCounts | None = None,
        counter: str = COUNTER_PREFIX,
        clock: Clock = SYSTEM_CLOCK,
        reserve: int = CREATE_RESERVE,
    ) -> None:
        self.limit = limit
        self.counts: RequestCounts = counts or MemoryRequestCounts()
        self.shared = counts is not None
        self.counter = counter
        self.clock = clock
        self.reserve = max(0, reserve)
        self.made = 0
        self.learned = False
        """Whether :attr:`limit` was lowered to where Google ended a day."""
        self.on_rate_limited: list[Callable[[float | None], None]] = []
        self.on_clean_upload: list[Callable[[], None]] = []
        self.on_change: list[Callable[[RequestMeter], None]] = []
        self._day = ""
        self._stored = 0
        self._unflushed = 0
        self._flushed_at = clock.monotonic()
        self._exhausted_on: str | None = None
        self._lock = asyncio.Lock()
        self._admitting = asyncio.Lock()

    def share(self, counts: RequestCounts, counter: str | None = None) -> None:
        """Count in ``counts`` from now on (what was counted so far is carried over)."""
        if self.shared:
            return
        self.counts, self.shared = counts, True
        self.counter = counter or self.counter
        self._day, self._stored = "", 0  # read again from the shared store

    @property
    def used_today(self) -> int:
        """Requests counted today, by every process sharing the count (as last read)."""
        used = self._stored + self._unflushed
        if self._exhausted_on == self._day and self.limit is not None:
            return max(used, self.limit)
        return used

    @property
    def exhausted(self) -> bool:
        """Whether today's quota is known to be used up (Google said so, or the limit)."""
        if self._day and self._day != quota_day(self.clock.now()):
            return False
        return self._exhausted_on == self._day or (
            self.limit is not None and self.used_today >= self.limit
        )

    def resets_at(self) -> datetime:
        """When the quota resets next (aware, Pacific time)."""
        return quota_resets_at(self.clock.now())

    async def admit(self, kind: RequestKind) -> None:
        """Count one request about to be sent, or refuse it.

        Raises:
            QuotaExhaustedError: Today's limit is reached (uploads stop ``reserve`` short).
        """
        async with self._admitting:  # one at a time: a check and its count go together
            await self._follow_day()
            if self._refused(kind, margin=FLUSH_EVERY_REQUESTS):
                await self.flush()  # near the limit: the latest shared count, every time
                if self._refused(kind):
                    raise self.exhausted_error()
            self._unflushed += 1
            self.made += 1
        self._changed()
        if (
            self._unflushed >= FLUSH_EVERY_REQUESTS
            or self.clock.monotonic() - self._flushed_at >= FLUSH_EVERY_SECONDS
        ):
            await self.flush()

    def answered(self, kind: RequestKind, response: httpx.Response) -> None:
        """Read an answer: a daily 429 ends the day, a per-minute one asks to slow down."""
        if response.status_code == 429:
            if is_daily_quota(error_body(response)):
                self._exhausted_on = self._day or quota_day(self.clock.now())
                self._learn_limit()
                self._changed()
                return
            asked = parse_retry_after(response.headers.get("Retry-After"))
            for listener in self.on_rate_limited:
                listener(asked)
        elif response.status_code < 400 and kind is RequestKind.UPLOAD:
            for clean in self.on_clean_upload:
                clean()

    async def flush(self) -> None:
        """Add the requests counted since the last flush to the shared count, and read it."""
        async with self._lock:
            delta, self._unflushed = self._unflushed, 0
            day = self._day or quota_day(self.clock.now())
            try:
                total = await asyncio.to_thread(self.counts.add_requests, self.counter, day, delta)
            except BaseException:
                self._unflushed += delta  # counted at the next flush
                raise
            if day == self._day or not self._day:
                self._day, self._stored = day, max(self._stored, total)
            self._flushed_at = self.clock.monotonic()
        self._changed()

    def exhausted_error(self) -> QuotaExhaustedError:
        """The one line that stops a run at the quota: what was used, when it resets."""
        now, resets = self.clock.now(), self.resets_at()
        if self._exhausted_on == self._day:
            what = (
                "Google Photos answered that the project's daily request quota is used up "
                f"({self.used_today:,} requests counted today)"
            )
        else:
            source = (
                "where Google ended an earlier day"
                if self.learned
                else "Q2GOOGLE_DAILY_REQUEST_LIMIT sets it"
            )
            what = (
                f"the daily limit of Google Photos requests is reached ({self.used_today:,} of "
                f"{self.limit or 0:,} used today; {source})"
            )
        return QuotaExhaustedError(
            f"{what}; progress is saved. The quota resets at "
            f"{resets.astimezone():%Y-%m-%d %H:%M} your time (in "
            f"{in_words((resets - now).total_seconds())}): run the same command again then, or "
            "add --wait to let it wait",
            resets_at=resets,
        )

    def _learn_limit(self) -> None:
        """Google ended the day below the limit (another app shares the project, or its
        quota is lower): take the count it allowed as the limit from now on, so that later
        days stop uploads short of it and what they upload can still be created."""
        allowed = self._stored + self._unflushed
        if allowed > self.reserve and (self.limit is None or allowed < self.limit):
            logger.info(
                "Google's daily quota ended at %d requests: stopping uploads short of that "
                "from now on",
                allowed,
            )
            self.limit, self.learned = allowed, True

    def _refused(self, kind: RequestKind, *, margin: int = 0) -> bool:
        """Whether ``kind`` may not be sent (or, with ``margin``, is that close to it)."""
        if self._exhausted_on == self._day:
            return True
        if self.limit is None:
            return False
        room = self.limit - (self.reserve if kind is RequestKind.UPLOAD else 0)
        return self.used_today + margin >= room

    async def _follow_day(self) -> None:
        """On the first request, and after midnight Pacific, read the day's shared count."""
        today = quota_day(self.clock.now())
        if today == self._day:
            return
        if self._day and self._unflushed:
            await self.flush()  # the old day's requests go to the old day
        async with self._lock:
            self._day, self._stored, self._exhausted_on = today, 0, None
        await self.flush()

    def _changed(self) -> None:
        for listener in self.on_change:
            listener(self)

    def __repr__(self) -> str:
        return f"RequestMeter({self.counter}, {self.used_today}/{self.limit} on {self._day})"

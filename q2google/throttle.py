"""Adaptive concurrency: fewer uploads in flight when Google says "too many per minute".

Google Photos answers 429 for per-minute limits ("write requests per minute per user",
"concurrent write requests") as well as for the daily quota. The daily one stops the run; a
per-minute one asks for patience: :class:`AdaptiveLimit` halves the files in flight, and
raises them again one by one while answers stay clean (additive increase, multiplicative
decrease, as TCP does).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from q2google.clock import SYSTEM_CLOCK, Clock

logger = logging.getLogger(__name__)

CLEAN_ANSWERS_TO_RAISE = 8
"""Clean answers in a row before one more file may be in flight."""
SLOW_DOWN_SPACING_SECONDS = 2.0
"""429s closer than this after a decrease are the same burst: they lower only once."""


class AdaptiveLimit:
    """A concurrency limit lowered on congestion and raised again when answers are clean.

    Args:
        maximum: The most files in flight (the configured concurrency).
        minimum: The fewest (never below one).
        clean_to_raise: Clean answers in a row before the limit goes up by one.
        clock: Times the bursts of 429s.
    """

    def __init__(
        self,
        maximum: int,
        *,
        minimum: int = 1,
        clean_to_raise: int = CLEAN_ANSWERS_TO_RAISE,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.maximum = max(1, maximum)
        self.minimum = max(1, min(minimum, self.maximum))
        self.clean_to_raise = max(1, clean_to_raise)
        self.clock = clock
        self.current = self.maximum
        self.lowered = 0
        """Times the limit went down in this run."""
        self.raised = 0
        """Times the limit went up in this run."""
        self._in_use = 0
        self._clean = 0
        self._last_decrease: float | None = None
        self._changed = asyncio.Condition()
        self._wakers: set[asyncio.Task[None]] = set()

    @property
    def in_use(self) -> int:
        """Slots held now."""
        return self._in_use

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the ``current`` slots while the body runs."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._in_use < self.current)
            self._in_use += 1
        try:
            yield
        finally:
            async with self._changed:
                self._in_use -= 1
                self._changed.notify_all()

    def slow_down(self, retry_after: float | None = None) -> None:
        """Google asked to slow down: halve the limit (once per burst of 429s)."""
        self._clean = 0
        now = self.clock.monotonic()
        spacing = max(SLOW_DOWN_SPACING_SECONDS, retry_after or 0.0)
        if self._last_decrease is not None and now - self._last_decrease < spacing:
            return
        self._last_decrease = now
        if self.current <= self.minimum:
            return
        before, self.current = self.current, max(self.minimum, self.current // 2)
        self.lowered += 1
        logger.info(
            "Google asks to slow down (a per-minute limit): %d uploads in flight, was %d",
            self.current,
            before,
        )

    def succeeded(self) -> None:
        """A clean answer: after enough in a row, allow one more file in flight."""
        self._clean += 1
        if self._clean < self.clean_to_raise or self.current >= self.maximum:
            return
        self._clean = 0
        self.current += 1
        self.raised += 1
        logger.info("Google's answers are clean again: %d uploads in flight", self.current)
        self._wake()

    def _wake(self) -> None:
        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        try:
            task = asyncio.get_running_loop().create_task(notify())
        except RuntimeError:  # no loop: nobody waits
            return
        self._wakers.add(task)
        task.add_done_callback(self._wakers.discard)

    def __repr__(self) -> str:
        return f"AdaptiveLimit({self.current}/{self.maximum}, {self._in_use} in use)"

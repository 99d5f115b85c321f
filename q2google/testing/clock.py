"""A clock tests move by hand: sleeping advances it at once instead of waiting."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class ManualClock:
    """A :class:`~q2google.clock.Clock` whose time moves only when told (or when slept on).

    ``sleep(s)`` moves the clock ``s`` seconds forward and returns at once (after yielding to
    the event loop), so a run that waits hours for a quota finishes in milliseconds.

    Args:
        start: The time it shows first (aware; default 2026-01-15 12:00 UTC).
        on_advance: Called with the new time after every move (a test may start a new
            sandbox "day" there).
    """

    def __init__(
        self,
        start: datetime | None = None,
        *,
        on_advance: Callable[[datetime], None] | None = None,
    ) -> None:
        self._start = start or datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
        self._elapsed = 0.0
        self.on_advance = on_advance
        self.slept: list[float] = []
        """Every sleep asked for, in order."""

    def now(self) -> datetime:
        """The time shown now."""
        return self._start + timedelta(seconds=self._elapsed)

    def monotonic(self) -> float:
        """Seconds moved since the start."""
        return self._elapsed

    async def sleep(self, seconds: float) -> None:
        """Move forward ``seconds`` and let other tasks run."""
        self.slept.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self._elapsed += max(0.0, seconds)
        if self.on_advance is not None:
            self.on_advance(self.now())

    def __repr__(self) -> str:
        return f"ManualClock({self.now().isoformat()})"

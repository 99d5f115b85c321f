"""What a run shows while it works: a Rich display on a terminal, plain lines elsewhere.

Both read a :class:`~q2google.sync.SyncTransferMetrics` the pipeline keeps up to date, and both
write to stderr, so stdout carries only the final summary (``--json`` stays parseable). Ticks,
throughput, the ETA and countdowns all read one :class:`~q2google.clock.Clock`, so a test
drives the display with a :class:`~q2google.testing.ManualClock` instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import sys
from collections import deque
from collections.abc import Iterable
from datetime import datetime, tzinfo
from enum import StrEnum
from typing import IO, TYPE_CHECKING

from q2google.clock import SYSTEM_CLOCK, Clock
from q2google.stages.metrics import SyncTransferMetrics
from q2google.units import MIB, human_bytes

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "MIB",
    "ProgressDisplay",
    "ProgressMode",
    "choose_mode",
    "human_bytes",
    "human_seconds",
]

RATE_WINDOW_SECONDS = 10.0
"""Throughput (and so the ETA) is measured over the last this many seconds."""
TICK_SECONDS = 0.25
"""How often the display looks at the metrics."""
WAIT_LINE_SECONDS = 300.0
"""While a run waits hours for Google's quota, plain countdown lines come this far apart."""


class ProgressMode(StrEnum):
    """How progress is shown."""

    RICH = "rich"
    PLAIN = "plain"
    OFF = "off"


def choose_mode(stream: IO[str] | None = None) -> ProgressMode:
    """Rich on a terminal, plain lines when not a terminal or when ``NO_COLOR`` is set."""
    stream = stream or sys.stderr
    if os.environ.get("NO_COLOR") or not stream.isatty():
        return ProgressMode.PLAIN
    return ProgressMode.RICH


def human_seconds(seconds: float) -> str:
    """``1h02m``, ``3m10s``, ``42s`` (never negative)."""
    whole = max(0, int(seconds))
    if whole >= 3600:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    if whole >= 60:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole}s"


class _Rate:
    """Throughput over the last few seconds, from samples of a growing byte counter."""

    def __init__(self, window: float = RATE_WINDOW_SECONDS) -> None:
        self.window = window
        self._samples: deque[tuple[float, int]] = deque()

    def update(self, now: float, total: int) -> float:
        """Add a sample taken at ``now`` (monotonic seconds); return bytes per second."""
        self._samples.append((now, total))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window:
            self._samples.popleft()
        first_time, first_total = self._samples[0]
        return max(0, total - first_total) / (now - first_time) if now > first_time else 0.0


class ProgressDisplay:
    """Show a run's progress while it runs: ``async with ProgressDisplay(metrics, ...):``.

    Plain mode prints a line for every stage the run enters (none is missed, however short),
    then every ``interval`` seconds during the transfer a line of files, bytes, throughput,
    ETA, Google's quota and the files in flight; while the run waits for Google's daily quota,
    a countdown instead (at once, then every :data:`WAIT_LINE_SECONDS`, or ``interval`` if
    longer). The last line, once the run is done, sums it up.

    Args:
        metrics: The counters the pipeline updates.
        mode: Rich display, plain lines, or nothing.
        label: Names the run in plain lines (``session trips-2024``).
        interval: Seconds between periodic plain lines.
        stream: Where to write (stderr by default).
        clock: Ticks, throughput, ETA and countdowns read it.
        tz: Zone of the clock times shown (``goes on at 09:00``); the machine's by default.
    """

    def __init__(
        self,
        metrics: SyncTransferMetrics,
        *,
        mode: ProgressMode,
        label: str,
        interval: float = 10.0,
        stream: IO[str] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        tz: tzinfo | None = None,
    ) -> None:
        self.metrics = metrics
        self.mode = mode
        self.label = label
        self.interval = interval
        self.stream = stream or sys.stderr
        self.clock = clock
        self.tz = tz
        self.rate = 0.0
        """Bytes per second over the last :data:`RATE_WINDOW_SECONDS`, as of the last tick."""
        self._rate = _Rate()
        self._announced = len(metrics.stages_entered)  # stages entered before are not news
        self._last_line = clock.monotonic()
        self._waiting_shown: datetime | None = None
        self._most_allowed = 0
        self._task: asyncio.Task[None] | None = None
        self._rich: _RichView | None = None

    async def __aenter__(self) -> ProgressDisplay:
        if self.mode is ProgressMode.PLAIN:
            if self.metrics.stage:  # started midway: say where the run is
                self._announced = max(0, self._announced - 1)
        elif self.mode is ProgressMode.RICH:
            self._rich = _RichView(self.stream)
            self._rich.start()
        if self.mode is not ProgressMode.OFF:
            self._task = asyncio.create_task(self._loop())
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.mode is ProgressMode.OFF:
            return
        self._sample()
        if self._rich is not None:
            self._rich.show(self)
            self._rich.stop()
            return
        self._announce_stages()
        if error is None and self.metrics.stage == "done":
            self._print(self.line())

    async def _loop(self) -> None:
        while True:
            self.refresh()
            await self.clock.sleep(min(TICK_SECONDS, self.interval))

    def refresh(self) -> None:
        """One tick: sample the throughput, then update the view or print what is due."""
        self._sample()
        if self._rich is not None:
            self._rich.show(self)
            return
        self._announce_stages()
        now = self.clock.monotonic()
        waiting = self.metrics.waiting_until
        since = now - self._last_line
        if waiting is not None:
            if since >= max(self.interval, WAIT_LINE_SECONDS) or waiting != self._waiting_shown:
                self._waiting_shown, self._last_line = waiting, now
                self._print(self.waiting_text() or "")
        elif self.metrics.stage == "transfer" and since >= self.interval:
            self._last_line = now
            self._print(self.line())
        if waiting is None:
            self._waiting_shown = None

    def _sample(self) -> None:
        self.rate = self._rate.update(self.clock.monotonic(), self.metrics.bytes_downloaded)
        self._most_allowed = max(self._most_allowed, self.metrics.uploads_allowed or 0)

    def _announce_stages(self) -> None:
        entered = self.metrics.stages_entered
        while self._announced < len(entered):
            stage = entered[self._announced]
            self._announced += 1
            if stage != "done":  # "done" is announced by the last line
                self._last_line = self.clock.monotonic()
                self._print(f"{stage}…")

    def line(self) -> str:
        """One plain progress line: files, bytes, throughput, ETA, quota, files in flight."""
        metrics = self.metrics
        if metrics.stage == "done" or metrics.files_done == metrics.files_total:
            parts = [f"{metrics.files_done}/{metrics.files_total} files in Google Photos"]
        else:
            parts = [
                f"{metrics.files_sent}/{metrics.files_total} files uploaded",
                f"{metrics.files_done} in Google Photos",
            ]
        if metrics.files_failed:
            parts.append(f"{metrics.files_failed} failed")
        parts.append(f"{self.bytes_text()} ({human_bytes(self.rate)}/s)")
        eta = self.eta()
        if eta is not None:
            parts.append(f"ETA {human_seconds(eta)}")
        parts.extend(filter(None, (self.allowed_text(), self.quota_text())))
        names = _names(metrics.in_flight.values())
        if names:
            parts.append(f"now: {names}")
        return ", ".join(parts)

    def bytes_text(self) -> str:
        """``1.2 GiB sent of 4.0 GiB``, or ``1.2 GiB sent`` while the total is unknown."""
        sent = f"{human_bytes(self.metrics.bytes_downloaded)} sent"
        to_send = self.metrics.bytes_to_send
        return f"{sent} of {human_bytes(to_send)}" if to_send > 0 else sent

    def eta(self) -> float | None:
        """Whole seconds left: the bytes still to send over the recent throughput.

        Returns:
            ``None`` while the bytes to send are unknown, all sent, or nothing moves.
        """
        remaining = self.metrics.bytes_to_send - self.metrics.bytes_downloaded
        if self.metrics.bytes_to_send <= 0 or remaining <= 0 or self.rate <= 0:
            return None
        return math.ceil(remaining / self.rate)

    def allowed_text(self) -> str | None:
        """``2 uploads in flight allowed (down from 4)`` once Google asked to slow down."""
        allowed = self.metrics.uploads_allowed
        if allowed is None or allowed >= self._most_allowed:
            return None
        return f"{allowed} uploads in flight allowed (down from {self._most_allowed})"

    def quota_text(self) -> str | None:
        """``Google requests today 1,234/10,000 (resets in 5h12m), about 2,100 needed``.

        Returns:
            ``None`` when the requests are not counted (no meter).
        """
        metrics = self.metrics
        if metrics.google_requests_today is None:
            return None
        text = f"Google requests today {metrics.google_requests_today:,}"
        if metrics.google_request_limit is not None:
            text += f"/{metrics.google_request_limit:,}"
        if metrics.google_quota_resets_at is not None:
            left = (metrics.google_quota_resets_at - self.clock.now()).total_seconds()
            text += f" (resets in {human_seconds(left)})"
        all_done = metrics.stage == "done" and metrics.files_done >= metrics.files_total
        if metrics.google_requests_needed and not all_done:
            text += f", about {metrics.google_requests_needed:,} needed"
        return text

    def waiting_text(self) -> str | None:
        """``waiting for Google's daily quota: goes on at 09:00 (in 5h12m)`` while waiting."""
        until = self.metrics.waiting_until
        if until is None:
            return None
        now = self.clock.now()
        local = until.astimezone(self.tz)
        same_day = local.date() == now.astimezone(self.tz).date()
        at = local.strftime("%H:%M" if same_day else "%Y-%m-%d %H:%M")
        left = human_seconds((until - now).total_seconds())
        return f"waiting for Google's daily quota: goes on at {at} (in {left})"

    def _print(self, text: str) -> None:
        print(f"q2google: {self.label}: {text}", file=self.stream, flush=True)


def _names(names: Iterable[str], limit: int = 3) -> str:
    listed = sorted(names)
    shown = ", ".join(listed[:limit])
    return shown + (f" (+{len(listed) - limit})" if len(listed) > limit else "")


class _RichView:
    """The terminal display: a bar of bytes (files while their size is unknown), files,
    throughput and ETA, then the files in flight, Google's quota and any wait."""

    def __init__(self, stream: IO[str]) -> None:
        from rich.console import Console, Group, RenderableType
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn
        from rich.text import Text

        view = self

        class FilesProgress(Progress):
            def get_renderables(self) -> Iterable[RenderableType]:
                table = self.make_tasks_table(self.tasks)
                notes = [Text(f"  {note}", style="dim", no_wrap=True) for note in view.notes]
                yield Group(table, *notes) if notes else table

        self.notes: list[str] = []
        self.progress = FilesProgress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[files]}"),
            TextColumn("{task.fields[sent]}"),
            TextColumn("{task.fields[rate]}"),
            TextColumn("ETA {task.fields[eta]}"),
            console=Console(file=stream),
            refresh_per_second=4,
        )
        self.task = self.progress.add_task(
            "starting", total=None, files="", sent="", rate="", eta="-"
        )

    def start(self) -> None:
        self.progress.start()

    def stop(self) -> None:
        self.notes = [note for note in self.notes if not note.startswith("now: ")]
        self.progress.stop()

    def show(self, display: ProgressDisplay) -> None:
        metrics = display.metrics
        waiting = display.waiting_text()
        names = _names(metrics.in_flight.values())
        self.notes = [
            note
            for note in (
                waiting,
                f"now: {names}" if names and waiting is None else None,
                display.allowed_text(),
                display.quota_text(),
            )
            if note
        ]
        finished = metrics.files_sent + metrics.files_failed
        by_bytes = metrics.bytes_to_send > 0
        eta = display.eta()
        self.progress.update(
            self.task,
            description="waiting" if waiting else metrics.stage or "starting",
            total=(metrics.bytes_to_send if by_bytes else metrics.files_total) or None,
            completed=min(metrics.bytes_downloaded, metrics.bytes_to_send)
            if by_bytes
            else finished,
            files=f"{finished}/{metrics.files_total} files uploaded",
            sent=display.bytes_text(),
            rate=f"{human_bytes(display.rate)}/s",
            eta=human_seconds(eta) if eta is not None else "-",
        )

"""What a run shows while it works: a Rich display on a terminal, plain lines elsewhere.

Both read a :class:`~q2google.sync.SyncTransferMetrics` the pipeline keeps up to date, and both
write to stderr, so stdout carries only the final summary (``--json`` stays parseable).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections import deque
from collections.abc import Iterable
from enum import StrEnum
from typing import IO, TYPE_CHECKING, Any

from q2google.stages.metrics import SyncTransferMetrics

if TYPE_CHECKING:
    from types import TracebackType

MIB = 1024**2
RATE_WINDOW_SECONDS = 10.0


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


def human_bytes(count: float) -> str:
    """``1.5 GiB``, ``12.0 MiB``, ``512 B``."""
    for unit, size in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", MIB), ("KiB", 1024)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{int(count)} B"


def human_seconds(seconds: float) -> str:
    """``1h02m``, ``3m10s``, ``42s``."""
    whole = int(seconds)
    if whole >= 3600:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    if whole >= 60:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole}s"


class _Rate:
    """Throughput over the last few seconds, from samples of a growing byte counter."""

    def __init__(self) -> None:
        self._samples: deque[tuple[float, int]] = deque()

    def update(self, total: int) -> float:
        now = time.monotonic()
        self._samples.append((now, total))
        while len(self._samples) > 2 and now - self._samples[0][0] > RATE_WINDOW_SECONDS:
            self._samples.popleft()
        first_time, first_total = self._samples[0]
        return (total - first_total) / (now - first_time) if now > first_time else 0.0


class ProgressDisplay:
    """Show a run's progress while it runs: ``async with ProgressDisplay(metrics, ...):``.

    Args:
        metrics: The counters the pipeline updates.
        mode: Rich display, plain lines, or nothing.
        label: Names the run in plain lines (``session trips-2024``).
        interval: Seconds between plain lines.
        stream: Where to write (stderr by default).
    """

    def __init__(
        self,
        metrics: SyncTransferMetrics,
        *,
        mode: ProgressMode,
        label: str,
        interval: float = 10.0,
        stream: IO[str] | None = None,
    ) -> None:
        self.metrics = metrics
        self.mode = mode
        self.label = label
        self.interval = interval
        self.stream = stream or sys.stderr
        self._rate = _Rate()
        self._task: asyncio.Task[None] | None = None
        self._rich: Any = None
        self._started = time.monotonic()
        self._done_at_start: int | None = None

    async def __aenter__(self) -> ProgressDisplay:
        if self.mode is ProgressMode.RICH:
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
        rate = self._rate.update(self.metrics.bytes_downloaded)
        if self._rich is not None:
            self._rich.show(self.metrics, rate)
            self._rich.stop()
        elif self.mode is ProgressMode.PLAIN and error is None and self.metrics.stage == "done":
            self._print(self.line(rate))

    async def _loop(self) -> None:
        shown_stage, last_line = "", 0.0
        while True:
            rate = self._rate.update(self.metrics.bytes_downloaded)
            if self._rich is not None:
                self._rich.show(self.metrics, rate)
            else:
                now = time.monotonic()
                stage = self.metrics.stage
                if stage != shown_stage and stage:
                    shown_stage = stage
                    self._print(f"{stage}…" if stage != "done" else "finishing")
                elif stage == "transfer" and now - last_line >= self.interval:
                    last_line = now
                    self._print(self.line(rate))
            await asyncio.sleep(0.25 if self._rich is not None else min(0.25, self.interval))

    def line(self, rate: float) -> str:
        """One plain progress line: files, failures, bytes, throughput, ETA, files in flight."""
        metrics = self.metrics
        finished = metrics.files_sent + metrics.files_failed
        if self._done_at_start is None:
            self._done_at_start = finished
        if metrics.stage == "done" or metrics.files_done == metrics.files_total:
            parts = [f"{metrics.files_done}/{metrics.files_total} files in Google Photos"]
        else:
            parts = [
                f"{metrics.files_sent}/{metrics.files_total} files uploaded",
                f"{metrics.files_done} in Google Photos",
            ]
        if metrics.files_failed:
            parts.append(f"{metrics.files_failed} failed")
        parts.append(f"{human_bytes(metrics.bytes_downloaded)} sent ({human_bytes(rate)}/s)")
        eta = self._eta(finished)
        if eta is not None:
            parts.append(f"ETA {human_seconds(eta)}")
        names = _names(metrics.in_flight.values())
        if names:
            parts.append(f"now: {names}")
        return ", ".join(parts)

    def _eta(self, finished: int) -> float | None:
        done_now = finished - (self._done_at_start or 0)
        remaining = self.metrics.files_total - finished
        if done_now <= 0 or remaining <= 0:
            return None
        return remaining * (time.monotonic() - self._started) / done_now

    def _print(self, text: str) -> None:
        print(f"q2google: {self.label}: {text}", file=self.stream, flush=True)


def _names(names: Iterable[str], limit: int = 3) -> str:
    listed = sorted(names)
    shown = ", ".join(listed[:limit])
    return shown + (f" (+{len(listed) - limit})" if len(listed) > limit else "")


class _RichView:
    """The terminal display: a bar of files, bytes, throughput, ETA, and the files in flight."""

    def __init__(self, stream: IO[str]) -> None:
        from rich.console import Console, Group, RenderableType
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        view = self

        class FilesProgress(Progress):
            def get_renderables(self) -> Iterable[RenderableType]:
                table = self.make_tasks_table(self.tasks)
                if view.current:
                    yield Group(table, Text(f"  now: {view.current}", style="dim", no_wrap=True))
                else:
                    yield table

        self.current = ""
        self.progress = FilesProgress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("files uploaded"),
            TextColumn("{task.fields[sent]}"),
            TextColumn("{task.fields[rate]}"),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(file=stream),
            refresh_per_second=4,
        )
        self.task = self.progress.add_task("starting", total=None, sent="", rate="")

    def start(self) -> None:
        self.progress.start()

    def stop(self) -> None:
        self.current = ""
        self.progress.stop()

    def show(self, metrics: SyncTransferMetrics, rate: float) -> None:
        self.current = _names(metrics.in_flight.values())
        self.progress.update(
            self.task,
            description=metrics.stage or "starting",
            total=metrics.files_total or None,
            completed=metrics.files_sent + metrics.files_failed,
            sent=f"{human_bytes(metrics.bytes_downloaded)} sent",
            rate=f"{human_bytes(rate)}/s",
        )

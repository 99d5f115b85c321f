"""The JSON backend's request counts: one small file per counter, changed under a file lock.

Layout, beside the sessions under the state directory::

    {state_dir}/.counts/{counter}.json    {"days": {"2026-12-01": 1234, ...}}
    {state_dir}/.counts/{counter}.lock    held for an instant around each change

Each change reads, adds and replaces the file atomically while the lock is held, so two
processes counting at once lose nothing. Only the last few days are kept.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from filelock import FileLock, Timeout

from q2google.errors import StateUnavailableError, StateWriteError
from q2google.state.request_counts import DAYS_KEPT
from q2google.state.retrying import on_disk

COUNTS_DIR = ".counts"
COUNTS_LOCK_WAIT_SECONDS = 30.0


class JsonRequestCounts:
    """:class:`~q2google.state.request_counts.RequestCounts` for
    :class:`~q2google.state.JsonFileBackend`."""

    if TYPE_CHECKING:  # provided by JsonFileBackend
        state_dir: Path
        retry_seconds: float

        def _write_file(self, path: Path, data: dict[str, Any]) -> None: ...

    def add_requests(self, counter: str, day: str, count: int) -> int:
        """Add ``count`` to ``counter`` on ``day``; return the day's total across processes.

        Raises:
            StateUnavailableError: The disk stayed full (or failing) past the retries.
            StateWriteError: The disk refused.
        """
        return on_disk(
            lambda: self._add_once(counter, day, max(0, count)),
            verb="write",
            session_id=f"{COUNTS_DIR}/{counter}",
            where=self.state_dir,
            seconds=self.retry_seconds,
            kind=StateWriteError,
        )

    def _add_once(self, counter: str, day: str, count: int) -> int:
        directory = self.state_dir / COUNTS_DIR
        path = directory / f"{quote(counter, safe='')}.json"
        if not count:
            return _days(path).get(day, 0)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = FileLock(path.with_suffix(".lock"), mode=0o600, thread_local=False)
        try:
            lock.acquire(timeout=COUNTS_LOCK_WAIT_SECONDS)
        except Timeout:
            raise StateUnavailableError(
                f"the state store {self.state_dir} did not let q2google count its requests "
                f"for {COUNTS_LOCK_WAIT_SECONDS:.0f} s: run the same command again"
            ) from None
        try:
            days = _days(path)
            days[day] = days.get(day, 0) + count
            kept = dict(sorted(days.items())[-DAYS_KEPT:])
            self._write_file(path, {"days": kept})
            return days[day]
        finally:
            lock.release()


def _days(path: Path) -> dict[str, int]:
    """The counts of a counter file by day; empty when missing or unreadable (a torn file
    costs a count, never a run)."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    days = data.get("days") if isinstance(data, dict) else None
    if not isinstance(days, dict):
        return {}
    return {str(day): value for day, value in days.items() if isinstance(value, int)}

"""A session's summary: its counts, kept up to date change by change, and its stored form.

``q2google sessions list`` reads one small summary per session instead of every file of it.
:class:`SummaryTracker` holds the counts of a whole session and moves them by replacing one
file's :data:`~q2google.state.outcomes.ItemMark` with its new one (no pass over the other
files); :class:`StoredSummary` is the summary as a backend stores it, and gives the session's
status. :func:`q2google.sessions.summarize` uses the same tracker, so both always agree.
"""

from __future__ import annotations

import functools
import heapq
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from q2google.state.base import SessionState, StageName
from q2google.state.outcomes import (
    COMPLETED,
    CREATE,
    DISCOVERY,
    FAILED,
    LISTING,
    OUTCOME,
    OUTCOMES,
    POSITION,
    SIZE,
    TRANSFER,
    ItemMark,
    mark_item,
    mark_line,
    session_status,
)

STAGES = tuple(stage.value for stage in StageName)
SUMMARY_VERSION: Literal[1] = 1


class SummaryMeta(NamedTuple):
    """What a summary takes from the session's metadata."""

    session_id: str
    updated_at: str
    window: dict[str, str]
    album: str | None
    discovery: str
    new_since_last_run: int
    listings: int

    @classmethod
    def of_state(cls, state: SessionState) -> SummaryMeta:
        """The metadata part of a session in memory."""
        return cls.of_meta(state.meta_dict())

    @classmethod
    def of_meta(cls, meta: Mapping[str, Any]) -> SummaryMeta:
        """The metadata part of a session's stored metadata (:meth:`SessionState.meta_dict`)."""
        return cls(
            session_id=meta["session_id"],
            updated_at=meta["updated_at"],
            window=_window(
                meta["start_date_iso"],
                meta["end_date_iso"],
                bool(meta.get("window_exact")),
                bool(meta.get("open_end")),
            ),
            album=meta.get("album_title"),
            discovery=str(meta["stages"][StageName.DISCOVERY.value]),
            new_since_last_run=int(meta.get("listing_new", 0)),
            listings=int(meta.get("listings", 0)),
        )


@functools.lru_cache(maxsize=64)
def _window(start: str, end: str, exact: bool, open_end: bool) -> dict[str, str]:
    """The window for people (shared between calls: not to be changed)."""
    from q2google.window import WindowText, describe_window

    return describe_window(WindowText(start, end, exact, open_end))


class StoredSummary(BaseModel):
    """A session's summary as a backend stores it (``summary.json``, a MongoDB document).

    Attributes:
        summary_version: Version of this form; another one is ignored and rebuilt.
        session_id: The session.
        updated_at: The session metadata's ``updated_at`` it was made with: a summary whose
            session was saved since without it is outdated.
        window: The capture window for people (``start``, ``end``; ``now`` when open).
        album: Album title, if any.
        discovery: Session-wide status of discovery (an input of :attr:`status`).
        files: Files in the session.
        by_status: Files per outcome (every one of :data:`OUTCOMES`).
        by_stage: Per stage, files per stage status (statuses without files left out).
        bytes_total: Bytes of the files whose size is known.
        bytes_completed: Bytes of the files in Google Photos.
        failures: The first failed files in discovery order (at most the backend's limit):
            ``{"item", "file", "error"}``.
        held_back: The first skipped, deferred or gone files, likewise:
            ``{"item", "file", "outcome", "reason"}``.
        new_since_last_run: Files the last listing found that the session did not know.
        listings: Complete listings of the window so far.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    summary_version: Literal[1] = SUMMARY_VERSION
    session_id: str
    updated_at: str
    window: dict[str, str]
    album: str | None
    discovery: str
    files: int = Field(ge=0)
    by_status: dict[str, int]
    by_stage: dict[str, dict[str, int]]
    bytes_total: int = Field(ge=0)
    bytes_completed: int = Field(ge=0)
    failures: list[dict[str, str]]
    held_back: list[dict[str, str]]
    new_since_last_run: int = Field(ge=0)
    listings: int = Field(ge=0)

    @property
    def status(self) -> str:
        """The session's status (see :func:`session_status`)."""
        return session_status(self.files, self.by_status, self.discovery)

    def to_dict(self) -> dict[str, Any]:
        """The summary as plain JSON-compatible data."""
        return self.model_dump(mode="json")

    @classmethod
    def parse(cls, data: object) -> StoredSummary | None:
        """Read a stored summary.

        Args:
            data: What was stored.

        Returns:
            The summary, or ``None`` when it is not one of this version (torn, foreign or
            written by another q2google): it is to be rebuilt from the session.
        """
        if not isinstance(data, Mapping):
            return None
        try:
            return cls.model_validate(data)
        except ValidationError:
            return None


class _Listed:
    """Failed (or held-back) files by discovery position, and the lines of the first of them,
    cached: a change past the last file listed leaves the listing as it is."""

    def __init__(self) -> None:
        self.positions: dict[str, int] = {}
        self._first: tuple[int | None, list[tuple[int, str]], list[dict[str, str]]] | None = None

    def add(self, key: str, position: int) -> None:
        self.positions[key] = position
        self._changed((position, key))

    def remove(self, key: str, position: int) -> None:
        del self.positions[key]
        self._changed((position, key))

    def _changed(self, entry: tuple[int, str]) -> None:
        if self._first is None:
            return
        limit, first, _ = self._first
        if limit is None or len(first) < limit or entry <= first[-1]:
            self._first = None

    def first(
        self, limit: int | None, line: Callable[[str], dict[str, str]]
    ) -> list[dict[str, str]]:
        """The lines of the first ``limit`` files (all when ``None``) in discovery order, each
        made by ``line(key)``."""
        if self._first is None or self._first[0] != limit:
            order = [(position, key) for key, position in self.positions.items()]
            if limit is None or len(order) <= limit:
                chosen = sorted(order)
            else:
                chosen = heapq.nsmallest(limit, order)
            self._first = (limit, chosen, [line(key) for _, key in chosen])
        return self._first[2]


class SummaryTracker:
    """The summary of one session, kept up to date one file at a time.

    Each file's :data:`ItemMark` is kept, so replacing it with the file's new mark moves the
    counts in constant time: a checkpoint costs what it changed, not what the session holds.
    """

    def __init__(self) -> None:
        self._marks: dict[str, ItemMark] = {}
        self._outcomes: Counter[str] = Counter()
        self._stages: tuple[Counter[str], ...] = tuple(Counter() for _ in STAGES)
        self._bytes_total = 0
        self._bytes_completed = 0
        self._failed = _Listed()
        self._held = _Listed()
        self.meta: SummaryMeta | None = None

    @classmethod
    def of_state(cls, state: SessionState) -> SummaryTracker:
        """Count a whole session in memory.

        Args:
            state: The session.

        Returns:
            Its tracker.
        """
        tracker = cls()
        tracker._put_new({key: entry.mark for key, entry in state.settled.items()})
        for key, item in state.items.items():
            tracker.put(key, mark_item(item))
        tracker.meta = SummaryMeta.of_state(state)
        return tracker

    def __len__(self) -> int:
        """Files counted."""
        return len(self._marks)

    def mark(self, key: str) -> ItemMark:
        """The mark counted for a file.

        Raises:
            KeyError: The file is not counted.
        """
        return self._marks[key]

    def put(self, key: str, mark: ItemMark) -> bool:
        """Count a file's new mark in place of its previous one.

        Args:
            key: The file's item key.
            mark: Its mark now.

        Returns:
            Whether the summary changed.
        """
        previous = self._marks.get(key)
        if previous == mark:
            return False
        if previous is not None:
            self._count(key, previous, -1)
        self._marks[key] = mark
        self._count(key, mark, 1)
        return True

    def _put_new(self, marks: Mapping[str, ItemMark]) -> None:
        """Count files not counted yet, in bulk (a large session's settled files, at load)."""
        self._marks.update(marks)
        counts = Counter((m[OUTCOME], m[DISCOVERY], m[TRANSFER], m[CREATE]) for m in marks.values())
        discovery, transfer, create = self._stages
        for (outcome, at_discovery, at_transfer, at_create), number in counts.items():
            self._outcomes[outcome] += number
            discovery[at_discovery] += number
            transfer[at_transfer] += number
            create[at_create] += number
        self._bytes_total += sum(mark[SIZE] for mark in marks.values())
        self._bytes_completed += sum(m[SIZE] for m in marks.values() if m[OUTCOME] == COMPLETED)
        for key, mark in marks.items():
            if mark[LISTING] is not None:
                listed = self._failed if mark[OUTCOME] == FAILED else self._held
                listed.add(key, mark[POSITION])

    def set_meta(self, meta: SummaryMeta) -> bool:
        """Take the session's metadata part; return whether the summary changed."""
        if meta == self.meta:
            return False
        self.meta = meta
        return True

    def _count(self, key: str, mark: ItemMark, sign: int) -> None:
        outcome, size = mark[OUTCOME], mark[SIZE]
        self._outcomes[outcome] += sign
        discovery, transfer, create = self._stages
        discovery[mark[DISCOVERY]] += sign
        transfer[mark[TRANSFER]] += sign
        create[mark[CREATE]] += sign
        self._bytes_total += sign * size
        if outcome == COMPLETED:
            self._bytes_completed += sign * size
        if mark[LISTING] is not None:
            listed = self._failed if outcome == FAILED else self._held
            if sign > 0:
                listed.add(key, mark[POSITION])
            else:
                listed.remove(key, mark[POSITION])

    def summary(self, limit: int | None = None) -> StoredSummary:
        """The summary as it stands.

        Args:
            limit: At most this many failed and this many held-back files are listed (the
                first in discovery order); ``None``: every one.

        Returns:
            The summary.

        Raises:
            ValueError: No metadata was given (:meth:`set_meta`).
        """
        return StoredSummary.model_validate(self.summary_data(limit))

    def summary_data(self, limit: int | None = None) -> dict[str, Any]:
        """The summary as it stands, as the plain data :meth:`StoredSummary.to_dict` gives
        (built without validation, for a checkpoint to write).

        Args:
            limit: As for :meth:`summary`.

        Returns:
            The summary's data; its lists of files may be shared with later results.

        Raises:
            ValueError: No metadata was given (:meth:`set_meta`).
        """
        meta = self.meta
        if meta is None:
            raise ValueError("a summary needs the session's metadata")
        return {
            "summary_version": SUMMARY_VERSION,
            "session_id": meta.session_id,
            "updated_at": meta.updated_at,
            "window": meta.window,
            "album": meta.album,
            "discovery": meta.discovery,
            "files": len(self._marks),
            "by_status": {name: self._outcomes[name] for name in OUTCOMES},
            "by_stage": {
                stage: {status: count for status, count in counter.items() if count}
                for stage, counter in zip(STAGES, self._stages, strict=True)
            },
            "bytes_total": self._bytes_total,
            "bytes_completed": self._bytes_completed,
            "failures": self._failed.first(limit, self._line),
            "held_back": self._held.first(limit, self._line),
            "new_since_last_run": meta.new_since_last_run,
            "listings": meta.listings,
        }

    def _line(self, key: str) -> dict[str, str]:
        return mark_line(key, self._marks[key])

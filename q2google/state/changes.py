"""What a session's next save must write: the records changed since the last one.

:class:`ChangeTracking` is the part of :class:`~q2google.state.SessionState` that keeps it:
records tell their session when a field is assigned, and a backend takes the changes with
:meth:`ChangeTracking.pending_changes`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from q2google.state.outcomes import ItemMark
from q2google.state.records import BatchState, ItemState, _Record, utc_now_iso
from q2google.state.settled import SettledItem, finished_batch, settled_item


@dataclass(frozen=True, slots=True)
class StateChanges:
    """What a backend must write to bring stored state up to date.

    Attributes:
        session_id: The session the changes belong to.
        meta: The session metadata to write, or ``None`` when it has not changed.
        items: Changed items as ``(item_key, data)`` pairs.
        batches: Changed batches as ``(batch_index, data)`` pairs.
        full: The changes are the whole session (a new session, a copy, a migration): the
            backend must store exactly these records and drop any others it holds for it.
        marks: The changed items' summary marks, by key, as the save counted them (its
            summary keeper fills it in): an item that settles keeps the same mark object,
            not one more of its own.
    """

    session_id: str
    meta: dict[str, Any] | None
    items: tuple[tuple[str, dict[str, Any]], ...]
    batches: tuple[tuple[int, dict[str, Any]], ...]
    full: bool = False
    marks: dict[str, ItemMark] = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_empty(self) -> bool:
        """Whether there is nothing to write."""
        return self.meta is None and not self.items and not self.batches


class ChangeTracking:
    """Change tracking for :class:`~q2google.state.SessionState` (a mixin: the session holds
    the records and the private attributes named below)."""

    if TYPE_CHECKING:
        session_id: str
        updated_at: str
        _items: dict[str, ItemState]
        _settled: dict[str, SettledItem]
        _batches: dict[int, BatchState]
        _batches_out: set[int]
        _saved_settled: dict[str, SettledItem] | None
        _saved_final: set[int]
        album_title: str | None
        ledger_recorded: bool
        _dirty_items: set[str]
        _dirty_batches: set[int]
        _saved_meta: dict[str, Any] | None
        _lock: threading.Lock
        __pydantic_private__: dict[str, Any] | None
        _meta_only: bool

        def meta_dict(self) -> dict[str, Any]: ...

        def _refuse_partial(self, doing: str) -> None: ...

    def record_changed(self, record: _Record) -> None:
        """Mark an item or batch of this session as changed since the last save (one that
        had left memory as settled comes back: see :meth:`settle_saved`).

        It runs at every assignment of a record's field: the private attributes are read
        where pydantic keeps them, not through its ``__getattr__`` (a slow path)."""
        private = cast("dict[str, Any]", self.__pydantic_private__)
        with private["_lock"]:
            if isinstance(record, ItemState):
                key, items = record.item_key, private["_items"]
                if key not in items and private["_settled"].pop(key, None) is not None:
                    items[key] = record
                private["_dirty_items"].add(key)
            elif isinstance(record, BatchState):
                index, batches = record.batch_index, private["_batches"]
                out = private["_batches_out"]
                if index in out and index not in batches:
                    out.discard(index)
                    batches[index] = record
                private["_dirty_batches"].add(index)

    def settle_as_saved(self) -> None:
        """From now on, let what a save stores as settled leave memory at the next
        :meth:`settle_saved`: a long run then holds only the files still to do.

        Only a session that settles files (:func:`~q2google.state.settled.settles`) does. Its
        :attr:`items` and :attr:`batches` then lose what is done, and it can no longer be
        written whole, as when it is loaded without its settled files.
        """
        if self.ledger_recorded and self._saved_settled is None:
            self._saved_settled = {}

    def settle_saved(self) -> int:
        """Let the files that the saves since the last call stored as settled (delivered,
        nothing left to do) leave memory, with their finished batches; call it from the
        thread that reads the session (a save may run in another).

        A file or batch changed since its save stays; one changed after it left comes back
        (its session is told, as of any change). Nothing happens unless
        :meth:`settle_as_saved` was called.

        Returns:
            How many files left memory.
        """
        with self._lock:
            if not self._saved_settled and not self._saved_final:
                return 0
            settled, self._saved_settled = self._saved_settled or {}, {}
            final, self._saved_final = self._saved_final, set()
            left = 0
            for key, entry in settled.items():
                if key not in self._dirty_items and self._items.pop(key, None) is not None:
                    self._settled[key] = entry
                    left += 1
            for index in final:
                if index not in self._dirty_batches and self._batches.pop(index, None) is not None:
                    self._batches_out.add(index)
            return left

    def _note_saved(self, changes: StateChanges) -> None:
        """Remember what a save stored as settled, for :meth:`settle_saved`."""
        if self._saved_settled is None:
            return
        album = self.album_title
        with self._lock:
            for key, data in changes.items:
                entry = settled_item(data, album_title=album, mark=changes.marks.get(key))
                if entry is None:
                    self._saved_settled.pop(key, None)
                else:
                    self._saved_settled[key] = entry
            for index, data in changes.batches:
                if finished_batch(data):
                    self._saved_final.add(index)
                else:
                    self._saved_final.discard(index)

    def mark_item_dirty(self, item_key: str) -> None:
        """Mark an item changed, after mutating one of its fields in place (a record's own
        ``errors``; an item without errors shares one read-only mapping: use
        :meth:`~q2google.state.ItemState.record_error`)."""
        self.record_changed(self._items[item_key])

    def mark_batch_dirty(self, batch_index: int) -> None:
        """Mark a batch changed, after mutating one of its fields in place."""
        self.record_changed(self._batches[batch_index])

    def mark_all_dirty(self) -> None:
        """Mark everything changed, so the next save writes the whole session.

        Use it to copy a session into another backend, or after migrating an old form.

        Raises:
            StateError: The session was loaded without its settled files.
        """
        self._refuse_partial("saved whole")
        with self._lock:
            self._dirty_items.update(self._items)
            self._dirty_batches.update(self._batches)
            self._saved_meta = None

    def mark_clean(self) -> None:
        """Forget all pending changes: the state is exactly what its backend stores."""
        with self._lock:
            self._dirty_items.clear()
            self._dirty_batches.clear()
            self._saved_meta = self.meta_dict()

    @property
    def has_pending_changes(self) -> bool:
        """Whether a save would write anything."""
        return bool(self._dirty_items or self._dirty_batches or self._meta_changed())

    def _meta_changed(self) -> bool:
        if self._saved_meta is None:
            return True
        current = self.meta_dict()
        return _without_timestamp(current) != _without_timestamp(self._saved_meta)

    @contextmanager
    def pending_changes(self) -> Iterator[StateChanges]:
        """Hand the changes since the last save to a backend, for it to write.

        If the ``with`` block raises (or the process is stopped inside it), the changes stay
        pending and the next save writes them again. Each changed record is serialized when the
        block is entered, so mutations made meanwhile are kept for the following save.

        Yields:
            The changes to write; :attr:`StateChanges.is_empty` when there are none.

        Raises:
            StateError: The session was loaded for its metadata only.
        """
        if self._meta_only:
            self._refuse_partial("saved")
        with self._lock:
            item_keys, self._dirty_items = self._dirty_items, set()
            batch_indices, self._dirty_batches = self._dirty_batches, set()
        full = self._saved_meta is None
        try:
            meta: dict[str, Any] | None = None
            if self._meta_changed():
                self.updated_at = utc_now_iso()
                meta = self.meta_dict()
            changes = StateChanges(
                session_id=self.session_id,
                meta=meta,
                items=tuple((key, self._items[key].to_dict()) for key in sorted(item_keys)),
                batches=tuple(
                    (index, self._batches[index].to_dict()) for index in sorted(batch_indices)
                ),
                full=full,
            )
            yield changes
        except BaseException:
            with self._lock:
                self._dirty_items |= item_keys
                self._dirty_batches |= batch_indices
            raise
        if meta is not None:
            self._saved_meta = meta
        self._note_saved(changes)


def _without_timestamp(meta: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in meta.items() if key != "updated_at"}

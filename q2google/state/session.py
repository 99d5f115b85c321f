"""A session's state: its metadata and its records, and what changed since the last save.

A :class:`SessionState` holds the session's metadata (window, batch size, stage statuses,
discovery cursor) and two collections: one :class:`~q2google.state.ItemState` per GoPro file,
keyed by :func:`~q2google.state.make_item_key`, and one :class:`~q2google.state.BatchState` per
``mediaItems:batchCreate`` call.

The state tracks what changed since it was last saved, so a backend can write only that:
assigning an attribute of an item marks the item dirty, adding an item or a batch marks it
dirty, and the metadata is compared with its last saved form. Backends consume the changes
through :meth:`SessionState.pending_changes`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from q2google.errors import StateCorruptError, StateError
from q2google.state.changes import ChangeTracking
from q2google.state.encoding import SCHEMA_VERSION, _refuse_newer, migrate_legacy
from q2google.state.records import (
    BatchState,
    DiscoveryCursor,
    ItemState,
    StageName,
    StageStatus,
    _as_utc,
    _describe,
    utc_now_iso,
    validate_session_id,
)
from q2google.state.settled import SettledItem


def _default_stages() -> dict[StageName, StageStatus]:
    return dict.fromkeys(StageName, StageStatus.PENDING)


class SessionState(ChangeTracking, BaseModel):
    """Everything a session has done so far, as its backend persists it.

    Build a new one with :func:`new_session`; backends rebuild stored ones with
    :meth:`from_dict` or :meth:`from_parts`. Items and batches are read through the read-only
    :attr:`items` and :attr:`batches` views and added with :meth:`add_item` and
    :meth:`add_batch`, so that every change is tracked for the next save.

    A session loaded to run may leave its settled files out (delivered, nothing left to do:
    see :mod:`q2google.state.settled`): they are in :attr:`settled`, not in :attr:`items`, and
    such a state saves its changes but cannot be written whole (:meth:`to_dict`).

    Attributes:
        schema_version: Version of the stored form.
        session_id: Key of the session in its backend (see :func:`validate_session_id`).
        created_at: When the session was created (ISO 8601, UTC).
        updated_at: When its metadata was last saved.
        start_date_iso: Start of the capture window.
        end_date_iso: End of the capture window.
        batch_size: Transfer batch size chosen when the session was created.
        stages: Status of each stage for the whole session.
        discovery_next_page: Unused: sessions written before the discovery cursor kept the
            next search page here (read and ignored, so that they still load).
        discovery_cursor: How far the current walk of the window has come (``None``: it
            starts at the window's newest media); checkpointed per page.
        window_exact: The window is exactly ``[start, end)``. ``False`` for sessions made
            before windows were exact: theirs runs from the start's day to the end of the
            end's day (UTC), as it was searched then.
        open_end: The window has no end: each run moves ``end_date_iso`` to the time it starts.
        listings: Complete listings of the window so far (the first run makes one).
        listing_new: Files the current (or last) listing found that the session did not
            know: "new since last run".
        album_title: Google Photos album the session creates its items into, if any.
        album_id: Id of that album once found or created.
        album_part: Which of the session's albums is filling: 1 is "Title", 2 "Title (2)"...
            (an album holds at most 20,000 items).
        ledger_recorded: Every item the session created is in the delivery ledger (a run
            records them there before its checkpoint says created). ``False`` for sessions of
            earlier versions, which recorded after it, until a run has checked them all.
    """

    model_config = ConfigDict(validate_assignment=True, extra="forbid")

    schema_version: int = SCHEMA_VERSION
    session_id: str = Field(frozen=True)
    created_at: str = Field(default_factory=utc_now_iso)
    updated_at: str = Field(default_factory=utc_now_iso)
    start_date_iso: str
    end_date_iso: str
    batch_size: int = Field(ge=1)
    stages: dict[StageName, StageStatus] = Field(default_factory=_default_stages)
    discovery_next_page: int = Field(default=1, ge=1)
    discovery_cursor: DiscoveryCursor | None = None
    window_exact: bool = False
    open_end: bool = False
    listings: int = Field(default=0, ge=0)
    listing_new: int = Field(default=0, ge=0)
    album_title: str | None = None
    album_id: str | None = None
    album_part: int = Field(default=1, ge=1)
    ledger_recorded: bool = False

    _items: dict[str, ItemState] = PrivateAttr(default_factory=dict)
    _settled: dict[str, SettledItem] = PrivateAttr(default_factory=dict)
    _meta_only: bool = PrivateAttr(default=False)
    _batches: dict[int, BatchState] = PrivateAttr(default_factory=dict)
    _batches_out: set[int] = PrivateAttr(default_factory=set)
    _saved_settled: dict[str, SettledItem] | None = PrivateAttr(default=None)
    _saved_final: set[int] = PrivateAttr(default_factory=set)
    _next_position: int = PrivateAttr(default=0)
    _dirty_items: set[str] = PrivateAttr(default_factory=set)
    _dirty_batches: set[int] = PrivateAttr(default_factory=set)
    _saved_meta: dict[str, Any] | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @field_validator("session_id")
    @classmethod
    def _safe_session_id(cls, value: str) -> str:
        return validate_session_id(value)

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value != SCHEMA_VERSION:
            raise ValueError(f"schema version {value} is not {SCHEMA_VERSION}")
        return value

    def __eq__(self, other: object) -> bool:
        """Sessions are equal when everything they would store is."""
        if not isinstance(other, SessionState):
            return NotImplemented
        return (
            self.__dict__ == other.__dict__
            and self._items == other._items
            and self._settled == other._settled
            and self._batches == other._batches
            and self._batches_out == other._batches_out
        )

    __hash__ = None  # type: ignore[assignment]

    # -- items and batches -------------------------------------------------------------------

    @property
    def items(self) -> Mapping[str, ItemState]:
        """Items by key, read-only; add with :meth:`add_item`."""
        return MappingProxyType(self._items)

    @property
    def settled(self) -> Mapping[str, SettledItem]:
        """Settled files left out of :attr:`items` by the load, by key, read-only."""
        return MappingProxyType(self._settled)

    def knows(self, item_key: str) -> bool:
        """Whether the session holds the file, in :attr:`items` or :attr:`settled`."""
        return item_key in self._items or item_key in self._settled

    def known_media_ids(self) -> set[str]:
        """The ids of the media the session holds files of (settled ones too)."""
        known = {item.media_id for item in self._items.values()}
        known.update(key.rpartition("-")[0] for key in self._settled)
        return known

    @property
    def batches(self) -> Mapping[int, BatchState]:
        """Create batches by index, read-only; add with :meth:`add_batch`."""
        return MappingProxyType(self._batches)

    def add_item(self, item: ItemState, *, replace: bool = False) -> ItemState:
        """Add an item to the session and mark it for the next save.

        Args:
            item: The item; from now on its assignments are tracked by this session.
            replace: Allow replacing an item with the same key.

        Returns:
            The item added.

        Raises:
            KeyError: An item with that key exists and ``replace`` is false.
        """
        if (not replace and item.item_key in self._items) or item.item_key in self._settled:
            raise KeyError(f"item {item.item_key!r} is already in session {self.session_id!r}")
        previous = self._items.get(item.item_key)
        if item.position < 0:
            item.position = previous.position if previous is not None else self._next_position
        self._next_position = max(self._next_position, item.position + 1)
        item._owner = self
        self._items[item.item_key] = item
        self.record_changed(item)
        return item

    def add_batch(self, batch: BatchState, *, replace: bool = False) -> BatchState:
        """Add a create batch to the session and mark it for the next save.

        Raises:
            KeyError: A batch with that index exists and ``replace`` is false.
        """
        if not replace and batch.batch_index in self._batches:
            raise KeyError(f"batch {batch.batch_index} is already in session {self.session_id!r}")
        batch._owner = self
        self._batches[batch.batch_index] = batch
        self.record_changed(batch)
        return batch

    def next_batch_index(self) -> int:
        """Return the index the next create batch should take."""
        return max((*self._batches, *self._batches_out), default=-1) + 1

    def items_with(self, stage: StageName, status: StageStatus) -> list[ItemState]:
        """Return the items whose ``stage`` is at ``status``, in discovery order."""
        attribute = f"{stage.value}_status"
        return [item for item in self._items.values() if getattr(item, attribute) == status]

    def set_stage(self, stage: StageName, status: StageStatus) -> None:
        """Set the session-wide status of ``stage``."""
        self.stages = {**self.stages, stage: status}

    # -- serialization -----------------------------------------------------------------------

    def meta_dict(self) -> dict[str, Any]:
        """Return the session's metadata (everything but items and batches) as plain data."""
        return self.model_dump(mode="json")

    def to_dict(self) -> dict[str, Any]:
        """Return the whole session as plain JSON-compatible data.

        Returns:
            The metadata, plus ``items`` (a list in discovery order) and ``batches`` (a list
            in index order).

        Raises:
            StateError: The session was loaded without its settled files.
        """
        self._refuse_partial("written whole")
        data = self.meta_dict()
        data["items"] = [item.to_dict() for item in self._items.values()]
        data["batches"] = [self._batches[index].to_dict() for index in sorted(self._batches)]
        return data

    def _refuse_partial(self, doing: str) -> None:
        if self._meta_only:
            raise StateError(
                f"session {self.session_id!r} was loaded for its metadata only: it cannot be "
                f"{doing}; load it to run it"
            )
        if self._settled or self._batches_out:
            raise StateError(
                f"session {self.session_id!r} is held without its {len(self._settled)} "
                f"settled files and {len(self._batches_out)} finished batches: it cannot be "
                f"{doing}; load it in full"
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SessionState:
        """Rebuild a session from :meth:`to_dict` output, migrating older stored forms.

        The result has no pending changes (it is what the store holds); call
        :meth:`mark_all_dirty` to save it in full somewhere else.

        Raises:
            StateCorruptError: The data is not a valid session; the message names the field.
        """
        if not isinstance(data, Mapping):
            raise StateCorruptError("session state is not a JSON object")
        version = data.get("schema_version", 1)
        _refuse_newer(version)
        if not isinstance(version, int) or version < SCHEMA_VERSION:
            data = migrate_legacy(data)
        meta = {key: value for key, value in data.items() if key not in ("items", "batches")}
        items = data.get("items", [])
        batches = data.get("batches", [])
        if not isinstance(items, list) or not isinstance(batches, list):
            raise StateCorruptError("session state: 'items' and 'batches' must be lists")
        return cls.from_parts(
            meta,
            (ItemState.from_dict(item) for item in items),
            (BatchState.from_dict(batch) for batch in batches),
        )

    @classmethod
    def meta_only(cls, meta: Mapping[str, Any]) -> SessionState:
        """A stored session's metadata alone, without its files: to check a command against
        it before its run. It cannot be saved (nor written whole).

        Raises:
            StateCorruptError: The metadata is invalid.
        """
        state = cls.from_parts(meta, (), ())
        state._meta_only = True
        return state

    @classmethod
    def from_parts(
        cls,
        meta: Mapping[str, Any],
        items: Iterable[ItemState],
        batches: Iterable[BatchState],
        settled: Mapping[str, SettledItem] | None = None,
        finished_batches: Iterable[int] = (),
    ) -> SessionState:
        """Rebuild a session from separately stored metadata, items and batches.

        Args:
            meta: Output of :meth:`meta_dict`.
            items: The stored items, any order (they are put back in :attr:`ItemState.position`
                order).
            batches: The stored batches, any order.
            settled: The settled files left out of ``items`` (see
                :mod:`q2google.state.settled`), by key.
            finished_batches: The indexes of the finished batches left out of ``batches``.

        Returns:
            The session, with no pending changes.

        Raises:
            StateCorruptError: Something stored is invalid, or two records share a key.
        """
        _refuse_newer(meta.get("schema_version"))
        try:
            state = cls.model_validate(meta)
        except ValidationError as error:
            raise StateCorruptError(_describe(error, "session")) from None
        state._adopt(sorted(items, key=_position), batches)
        if settled:
            both = settled.keys() & state._items.keys()
            if both:
                raise StateCorruptError(f"session state: duplicate item {min(both)!r}")
            state._settled = dict(settled)
            last = max(entry.mark[0] for entry in settled.values())
            state._next_position = max(state._next_position, last + 1)
        state._batches_out = set(finished_batches).difference(state._batches)
        state.mark_clean()
        return state

    def _adopt(self, items: Iterable[ItemState], batches: Iterable[BatchState]) -> None:
        """Take stored records in (what :meth:`add_item` and :meth:`add_batch` do, without
        marking them changed: loading a large session costs its reading only).

        Raises:
            StateCorruptError: Two records share a key.
        """
        for item in items:
            if item.item_key in self._items:
                raise StateCorruptError(f"session state: duplicate item {item.item_key!r}")
            if item.position < 0:  # written before positions were stored
                item.position = self._next_position
            self._next_position = max(self._next_position, item.position + 1)
            _set_owner(item, self)
            self._items[item.item_key] = item
        for batch in batches:
            if batch.batch_index in self._batches:
                raise StateCorruptError(f"session state: duplicate batch {batch.batch_index}")
            _set_owner(batch, self)
            self._batches[batch.batch_index] = batch


def new_session(
    session_id: str,
    *,
    start_date_iso: str,
    end_date_iso: str,
    batch_size: int,
    album_title: str | None = None,
    open_end: bool = False,
) -> SessionState:
    """Create the state of a session that has not run yet (everything pending, unsaved).

    Args:
        session_id: Key of the session, validated by :func:`validate_session_id`.
        start_date_iso: Start of the capture window (ISO 8601), inclusive.
        end_date_iso: End of the capture window (ISO 8601), exclusive, not before the start.
        batch_size: Transfer batch size for the session.
        album_title: Album to create items into, if any.
        open_end: The window runs to the start of each run (``end_date_iso`` moves forward).

    Returns:
        A state whose metadata is pending for the first save.

    Raises:
        InvalidSessionIdError: The session id is not allowed.
        ValueError: The window is not two ISO dates in order, or the batch size is below 1.
    """
    validate_session_id(session_id)
    try:
        start, end = datetime.fromisoformat(start_date_iso), datetime.fromisoformat(end_date_iso)
    except ValueError:
        raise ValueError(
            f"the capture window must be ISO 8601 dates, not {start_date_iso!r} and "
            f"{end_date_iso!r}"
        ) from None
    if _as_utc(end) < _as_utc(start):
        raise ValueError(f"the window ends ({end_date_iso}) before it starts ({start_date_iso})")
    try:
        return SessionState(
            session_id=session_id,
            start_date_iso=start_date_iso,
            end_date_iso=end_date_iso,
            batch_size=batch_size,
            album_title=album_title,
            window_exact=True,
            open_end=open_end,
            ledger_recorded=True,
        )
    except ValidationError as error:
        raise ValueError(_describe(error, "session")) from None


def _set_owner(record: ItemState | BatchState, owner: SessionState) -> None:
    """Make ``owner`` the session told of ``record``'s changes."""
    object.__setattr__(record, "_owner", owner)


def _position(item: ItemState) -> int:
    return item.position

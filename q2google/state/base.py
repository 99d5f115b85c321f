"""Session state: what a sync run has done so far, and the protocol that persists it.

A :class:`SessionState` holds the session's metadata (window, batch size, stage statuses,
discovery cursor) and two collections: one :class:`ItemState` per GoPro file, keyed by
:func:`make_item_key`, and one :class:`BatchState` per ``mediaItems:batchCreate`` call.

The state tracks what changed since it was last saved, so a backend can write only that:
assigning an attribute of an item marks the item dirty, adding an item or a batch marks it
dirty, and the metadata is compared with its last saved form. Backends consume the changes
through :meth:`SessionState.pending_changes`.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Protocol, Self, runtime_checkable

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from q2google.errors import InvalidSessionIdError, StateCorruptError, StateError

SCHEMA_VERSION = 2
"""Version of the stored form written by this q2google; older forms are migrated on load.

Version 1 is the original q2google's form (items keyed by file name); it is read and migrated.
"""

MAX_SESSION_ID_LENGTH = 128
_SESSION_ID_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
MAX_ERROR_MESSAGE_LENGTH = 2000


class StageStatus(StrEnum):
    """Where a stage stands, for the whole session or for one item."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"


class StageName(StrEnum):
    """The pipeline's steps, in the order a session runs them."""

    DISCOVERY = "discovery"
    TRANSFER = "transfer"
    CREATE = "create"


def utc_now_iso() -> str:
    """Return the current UTC time as an ISO 8601 string with an explicit offset."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def validate_session_id(session_id: object) -> str:
    """Check that a session id is a safe, portable name before any path or key is built.

    Allowed: ASCII letters, digits, ``.``, ``_`` and ``-``; 1 to 128 characters; not starting
    with a dot (so ``.``, ``..`` and hidden names are impossible).

    Args:
        session_id: The candidate id.

    Returns:
        The id, unchanged.

    Raises:
        InvalidSessionIdError: The id is not allowed; the message says why.
    """
    if not isinstance(session_id, str) or not session_id:
        raise InvalidSessionIdError("invalid session id: it must be a non-empty string")
    if len(session_id) > MAX_SESSION_ID_LENGTH:
        raise InvalidSessionIdError(
            f"invalid session id: {len(session_id)} characters, at most "
            f"{MAX_SESSION_ID_LENGTH} are allowed"
        )
    if not _SESSION_ID_RE.fullmatch(session_id):
        raise InvalidSessionIdError(
            f"invalid session id {session_id!r}: use letters, digits, '.', '_' and '-', "
            "not starting with '.'"
        )
    return session_id


def make_item_key(media_id: str, file_index: int) -> str:
    """Build the key that names one file of one GoPro media in a session.

    File names are not unique (two cameras both write ``GOPR0001.JPG``, a burst holds many
    files under one media id), so items are keyed by media id and file index instead.

    Args:
        media_id: The GoPro media id.
        file_index: Position of the file within the media (0 for single-file media).

    Returns:
        ``"{media_id}-{file_index}"``; unambiguous since the index is the last ``-`` part.
    """
    if not media_id:
        raise ValueError("media_id must not be empty")
    if file_index < 0:
        raise ValueError("file_index must not be negative")
    return f"{media_id}-{file_index}"


class _Record(BaseModel):
    """A persisted record that tells its owning session when one of its fields is assigned."""

    model_config = ConfigDict(validate_assignment=True, extra="forbid")

    _owner: _ChangeSink | None = PrivateAttr(default=None)

    def __setattr__(self, name: str, value: Any) -> None:
        """Assign (validated) and mark this record dirty in its session."""
        super().__setattr__(name, value)
        owner = self._owner
        if owner is not None and not name.startswith("_"):
            owner.record_changed(self)

    def __eq__(self, other: object) -> bool:
        """Records are equal when their fields are (the owning session does not count)."""
        if type(other) is not type(self):
            return NotImplemented
        return self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """Return the record as plain JSON-compatible data."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Validate stored data into a record.

        Raises:
            StateCorruptError: The data does not describe a valid record.
        """
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            raise StateCorruptError(_describe(error, cls.__name__)) from None


class _ChangeSink(Protocol):
    """What a record notifies when it changes (its session)."""

    def record_changed(self, record: _Record) -> None: ...


class ErrorRecord(BaseModel):
    """What went wrong with an item or a batch, kept so that failures stay visible.

    Attributes:
        stage: The stage that failed.
        message: One-line description, without secrets.
        code: Machine-readable code when there is one (HTTP status, Google status name).
        retryable: Whether trying again later can succeed.
        occurred_at: When it happened (ISO 8601, UTC).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    stage: StageName
    message: str
    code: str | None = None
    retryable: bool = False
    occurred_at: str = Field(default_factory=utc_now_iso)

    @field_validator("message")
    @classmethod
    def _one_bounded_line(cls, value: str) -> str:
        """Keep messages on one line and bounded, whatever a server answered."""
        value = " ".join(value.split())
        if len(value) > MAX_ERROR_MESSAGE_LENGTH:
            value = value[: MAX_ERROR_MESSAGE_LENGTH - 1] + "…"
        return value


class ExclusionKind(StrEnum):
    """Why a file is held back from Google Photos on purpose (not a failure)."""

    SKIPPED = "skipped"
    """Never delivered: not a camera original, or a file Google Photos does not accept."""
    DEFERRED = "deferred"
    """Not ready in the GoPro cloud yet: a later run of the session looks again."""
    GONE = "gone"
    """Deleted from the GoPro cloud after it was discovered."""


class Exclusion(BaseModel):
    """A file held back on purpose, and why, kept so that it stays visible.

    Attributes:
        kind: Skipped, deferred or gone.
        reason: One line for a person ("an edit made in the GoPro app...").
        occurred_at: When it was decided (ISO 8601, UTC).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ExclusionKind
    reason: str
    occurred_at: str = Field(default_factory=utc_now_iso)


class ItemState(_Record):
    """Progress of one GoPro file through discovery, transfer and create.

    Attributes:
        item_key: Unique key in the session, see :func:`make_item_key`; computed when omitted.
        position: Discovery order within the session, assigned by :meth:`SessionState.add_item`.
        media_id: GoPro media id the file belongs to.
        file_index: Position of the file within its media.
        file_name: GoPro's file name (not unique, for display and for Google's ``fileName``).
        media_type: GoPro's type (``Photo``, ``Video``, ``Burst``, ``TimeLapse``...).
        captured_at: Capture time as GoPro reports it.
        size_bytes: Size of the file to transfer, when known: the search row's for a media of
            one file, the CDN's once its download starts.
        media_size_bytes: Bytes of the file's whole media as the GoPro search gives them
            (every chapter or frame together), when given: a file of unknown size is
            estimated as its share of them.
        download_url: Last resolved CDN URL (signed, expires); ``None`` until the transfer
            asks for it, for a photo described by its search row alone.
        discovery_status: Whether the file is fully described (what it is, whether and
            under which name to deliver it).
        transfer_status: Whether its bytes reached Google (an upload token exists).
        create_status: Whether it is registered as a media item in the library.
        upload_url: Google resumable upload session URL, to continue an interrupted upload.
        upload_offset: Bytes Google has confirmed for ``upload_url``.
        upload_token: Token returned by the finished upload, until batchCreate uses it.
        upload_token_created_at: When ``upload_token`` was issued (tokens live one day).
        media_item_id: Google media item id once created.
        batch_index: The create batch the item was put in.
        attempts: How many times the item's current stage was tried.
        errors: Last error per stage.
        exclusion: Why the file is skipped, deferred or gone, when it is.
        added_to_album: The album a file another session delivered was added to (with
            ``albums.batchAddMediaItems``), so that a later run does not add it again.
    """

    item_key: str = Field(default="", min_length=1, frozen=True)
    position: int = Field(default=-1, ge=-1)
    media_id: str = Field(min_length=1)
    file_index: int = Field(default=0, ge=0)
    file_name: str
    media_type: str | None = None
    captured_at: str | None = None
    size_bytes: int | None = Field(default=None, ge=0)
    media_size_bytes: int | None = Field(default=None, ge=0)
    download_url: str | None = Field(default=None, repr=False)
    discovery_status: StageStatus = StageStatus.PENDING
    transfer_status: StageStatus = StageStatus.PENDING
    create_status: StageStatus = StageStatus.PENDING
    upload_url: str | None = Field(default=None, repr=False)
    upload_offset: int = Field(default=0, ge=0)
    upload_token: str | None = Field(default=None, repr=False)
    upload_token_created_at: str | None = None
    media_item_id: str | None = None
    batch_index: int | None = Field(default=None, ge=0)
    attempts: int = Field(default=0, ge=0)
    errors: dict[StageName, ErrorRecord] = Field(default_factory=dict)
    exclusion: Exclusion | None = None
    added_to_album: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_key(cls, data: Any) -> Any:
        """Derive ``item_key`` from media id and file index when it is not given."""
        if isinstance(data, Mapping) and "item_key" not in data:
            media_id, index = data.get("media_id"), data.get("file_index", 0)
            if isinstance(media_id, str) and media_id and isinstance(index, int) and index >= 0:
                data = {**data, "item_key": make_item_key(media_id, index)}
        return data

    def record_error(self, error: ErrorRecord) -> None:
        """Remember ``error`` as the last error of its stage (and mark the item dirty)."""
        self.errors = {**self.errors, error.stage: error}

    def clear_error(self, stage: StageName) -> None:
        """Forget the last error of ``stage``, if any."""
        if stage in self.errors:
            self.errors = {name: err for name, err in self.errors.items() if name != stage}

    def exclude(self, kind: ExclusionKind, reason: str) -> None:
        """Hold the file back on purpose, and set its stages to match.

        Skipped and gone files have nothing left to transfer or create; a deferred file goes
        back to discovery, which describes it again on a later run.
        """
        self.exclusion = Exclusion(kind=kind, reason=reason)
        if kind is ExclusionKind.DEFERRED:
            self.discovery_status = StageStatus.PENDING
            self.transfer_status = self.create_status = StageStatus.PENDING
        else:
            self.transfer_status = self.create_status = StageStatus.SKIPPED
        self.upload_url, self.upload_offset = None, 0


class BatchState(_Record):
    """One ``mediaItems:batchCreate`` call: which items it carries and what came back.

    Attributes:
        batch_index: Zero-based position among the session's create batches.
        item_keys: Keys of the items in the batch (at most 50); a tuple, so assign a new one.
        status: Where the call stands.
        responses: Google's per-item results once answered (``newMediaItemResults``).
        error: Why the batch failed as a whole, if it did.
        attempts: How many times the call was sent.
    """

    batch_index: int = Field(ge=0, frozen=True)
    item_keys: tuple[str, ...] = ()
    status: StageStatus = StageStatus.PENDING
    responses: tuple[dict[str, Any], ...] | None = None
    error: ErrorRecord | None = None
    attempts: int = Field(default=0, ge=0)


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
    """

    session_id: str
    meta: dict[str, Any] | None
    items: tuple[tuple[str, dict[str, Any]], ...]
    batches: tuple[tuple[int, dict[str, Any]], ...]
    full: bool = False

    @property
    def is_empty(self) -> bool:
        """Whether there is nothing to write."""
        return self.meta is None and not self.items and not self.batches


class DiscoveryCursor(BaseModel):
    """Where a walk of the capture window stands: it goes from the newest media down.

    Every media of the window captured after :attr:`captured_at` is recorded, and so are
    those captured at that very instant whose ids are in :attr:`media_ids` (the next page
    may hold more at the same instant). Added or deleted media do not move it, unlike a page
    number.

    Attributes:
        captured_at: Capture time of the oldest media fully recorded (ISO 8601, UTC).
        media_ids: The media recorded at exactly that instant.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    captured_at: str
    media_ids: tuple[str, ...] = ()


def _default_stages() -> dict[StageName, StageStatus]:
    return dict.fromkeys(StageName, StageStatus.PENDING)


class SessionState(BaseModel):
    """Everything a session has done so far, as its backend persists it.

    Build a new one with :func:`new_session`; backends rebuild stored ones with
    :meth:`from_dict` or :meth:`from_parts`. Items and batches are read through the read-only
    :attr:`items` and :attr:`batches` views and added with :meth:`add_item` and
    :meth:`add_batch`, so that every change is tracked for the next save.

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

    _items: dict[str, ItemState] = PrivateAttr(default_factory=dict)
    _batches: dict[int, BatchState] = PrivateAttr(default_factory=dict)
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
            and self._batches == other._batches
        )

    __hash__ = None  # type: ignore[assignment]

    # -- items and batches -------------------------------------------------------------------

    @property
    def items(self) -> Mapping[str, ItemState]:
        """Items by key, read-only; add with :meth:`add_item`."""
        return MappingProxyType(self._items)

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
        if not replace and item.item_key in self._items:
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
        return max(self._batches, default=-1) + 1

    def items_with(self, stage: StageName, status: StageStatus) -> list[ItemState]:
        """Return the items whose ``stage`` is at ``status``, in discovery order."""
        attribute = f"{stage.value}_status"
        return [item for item in self._items.values() if getattr(item, attribute) == status]

    def set_stage(self, stage: StageName, status: StageStatus) -> None:
        """Set the session-wide status of ``stage``."""
        self.stages = {**self.stages, stage: status}

    # -- change tracking ---------------------------------------------------------------------

    def record_changed(self, record: _Record) -> None:
        """Mark an item or batch of this session as changed since the last save."""
        with self._lock:
            if isinstance(record, ItemState):
                self._dirty_items.add(record.item_key)
            elif isinstance(record, BatchState):
                self._dirty_batches.add(record.batch_index)

    def mark_item_dirty(self, item_key: str) -> None:
        """Mark an item changed, after mutating one of its fields in place (``errors``...)."""
        self.record_changed(self._items[item_key])

    def mark_batch_dirty(self, batch_index: int) -> None:
        """Mark a batch changed, after mutating one of its fields in place."""
        self.record_changed(self._batches[batch_index])

    def mark_all_dirty(self) -> None:
        """Mark everything changed, so the next save writes the whole session.

        Use it to copy a session into another backend, or after migrating an old form.
        """
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
        """
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

    # -- serialization -----------------------------------------------------------------------

    def meta_dict(self) -> dict[str, Any]:
        """Return the session's metadata (everything but items and batches) as plain data."""
        return self.model_dump(mode="json")

    def to_dict(self) -> dict[str, Any]:
        """Return the whole session as plain JSON-compatible data.

        Returns:
            The metadata, plus ``items`` (a list in discovery order) and ``batches`` (a list
            in index order).
        """
        data = self.meta_dict()
        data["items"] = [item.to_dict() for item in self._items.values()]
        data["batches"] = [self._batches[index].to_dict() for index in sorted(self._batches)]
        return data

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
    def from_parts(
        cls,
        meta: Mapping[str, Any],
        items: Iterable[ItemState],
        batches: Iterable[BatchState],
    ) -> SessionState:
        """Rebuild a session from separately stored metadata, items and batches.

        Args:
            meta: Output of :meth:`meta_dict`.
            items: The stored items, any order (they are put back in :attr:`ItemState.position`
                order).
            batches: The stored batches, any order.

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
        try:
            for item in sorted(items, key=_position):
                state.add_item(item)
            for batch in batches:
                state.add_batch(batch)
        except KeyError as error:
            raise StateCorruptError(f"session state: duplicate {error.args[0]}") from None
        state.mark_clean()
        return state


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
        )
    except ValidationError as error:
        raise ValueError(_describe(error, "session")) from None


@runtime_checkable
class SyncStateBackend(Protocol):
    """Where sessions are checkpointed. Two methods; see the backends guide for the contract.

    ``save`` must be atomic per record (the metadata, each item, each batch: each is stored
    either as before or as after, never torn) and durable once it returns. Backends that
    write incrementally take the changes from :meth:`SessionState.pending_changes`; others
    may store :meth:`SessionState.to_dict` whole.
    """

    def load(self, session_id: str) -> SessionState | None:
        """Return the stored session, or ``None`` when there is none with that id."""
        ...

    def save(self, state: SessionState) -> None:
        """Persist what changed in ``state`` since it was loaded or last saved."""
        ...


@runtime_checkable
class SessionCatalog(SyncStateBackend, Protocol):
    """A :class:`SyncStateBackend` that can also list and delete stored sessions (optional).

    ``q2google sessions`` needs it; a sync never does. Both built-in backends implement it.
    The delivery ledger (:data:`~q2google.state.LEDGER_SESSION_ID`) is listed like any other
    stored session; callers hide it.
    """

    def session_ids(self) -> list[str]:
        """Return the ids of the stored sessions, sorted."""
        ...

    def delete(self, session_id: str) -> bool:
        """Delete a session whole; return whether one was stored under ``session_id``.

        After a crash midway the session is either still whole or gone from ``load``.
        """
        ...


def refuse_other_session(stored: Mapping[str, Any], state: SessionState, where: str) -> None:
    """Refuse a whole-session save of ``state`` over a different session stored under its id.

    A stored session of an older schema is being migrated and is not refused.

    Args:
        stored: The stored session metadata.
        state: The session about to be written in full.
        where: Where it is stored, for the message.

    Raises:
        StateError: The stored session was created at another time: it is another session.
    """
    version = stored.get("schema_version", 1)
    if isinstance(version, int) and version < SCHEMA_VERSION:
        return
    if stored.get("created_at") != state.created_at:
        raise StateError(
            f"session {state.session_id!r} already exists in {where} (created "
            f"{stored.get('created_at')}); resume it or choose another session id"
        )


def migrate_legacy(data: Mapping[str, Any], *, default_batch_size: int = 50) -> dict[str, Any]:
    """Convert the original q2google's session form (schema 1: items keyed by file name).

    Items get keys from their media id and their file name's rank among that media's files
    (discovery matches them to GoPro's files again by media id and file name); ``file_names``
    of batches become ``item_keys`` and ``responses_json`` strings objects. Items and batches may be
    dicts (keyed by name or index) or lists; batches already in the current form are kept.

    Args:
        data: A stored session of schema version 1 or none.
        default_batch_size: Batch size to record when the old form has none.

    Returns:
        The same session in the current form.

    Raises:
        StateCorruptError: The data cannot be read as the old form either.
    """
    try:
        raw_items = data.get("items") or {}
        entries = list(raw_items.values()) if isinstance(raw_items, Mapping) else list(raw_items)
        # Deterministic whatever the storage order: indexes follow file names within a media.
        entries.sort(key=lambda entry: (str(entry.get("media_id") or ""), entry["file_name"]))
        per_media: dict[str, int] = {}
        key_by_name: dict[str, str] = {}
        items = []
        for entry in entries:
            media_id = entry.get("media_id") or "legacy"
            index = per_media.get(media_id, 0)
            per_media[media_id] = index + 1
            key = make_item_key(media_id, index)
            key_by_name[entry["file_name"]] = key
            errors = {}
            for stage, error in (entry.get("errors") or {}).items():
                message = error.get("message", str(error)) if isinstance(error, Mapping) else error
                errors[stage] = {"stage": stage, "message": str(message)}
            item = {
                "item_key": key,
                "media_id": media_id,
                "file_index": index,
                "file_name": entry["file_name"],
                "download_url": entry.get("download_url"),
                "upload_token": entry.get("upload_token"),
                "errors": errors,
            }
            for stage in StageName:
                status = entry.get(f"{stage.value}_status")
                if status is not None:
                    item[f"{stage.value}_status"] = status
            items.append(item)
        raw_batches = data.get("batches") or []
        if isinstance(raw_batches, Mapping):
            raw_batches = list(raw_batches.values())
        batches = []
        for batch in raw_batches:
            responses = batch.get("responses_json")
            error = batch.get("error")
            if "item_keys" in batch:  # written by an unfinished migration: current form
                batches.append(dict(batch))
                continue
            item_keys = [key_by_name[name] for name in batch.get("file_names") or []]
            batches.append(
                {
                    "batch_index": int(batch["batch_index"]),
                    "item_keys": item_keys,
                    "status": batch.get("status", StageStatus.PENDING),
                    "responses": None
                    if responses is None
                    else [
                        json.loads(text) if isinstance(text, str) else text for text in responses
                    ],
                    "error": None
                    if not error
                    else {"stage": StageName.CREATE, "message": str(error.get("message", error))},
                }
            )
    except (AttributeError, KeyError, TypeError, ValueError) as error:
        raise StateCorruptError(f"legacy session state is not readable: {error!r}") from None
    meta = {
        key: value
        for key, value in data.items()
        if key in ("session_id", "created_at", "updated_at", "start_date_iso", "end_date_iso")
        or key in ("batch_size", "stages", "album_title", "album_id")
    }
    meta.setdefault("batch_size", default_batch_size)
    for stamp in ("created_at", "updated_at"):
        if not meta.get(stamp):
            meta[stamp] = utc_now_iso()
    return {**meta, "schema_version": SCHEMA_VERSION, "items": items, "batches": batches}


def _refuse_newer(version: object) -> None:
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise StateCorruptError(
            f"schema version {version} was written by a newer q2google "
            f"(this one reads up to {SCHEMA_VERSION}); upgrade q2google"
        )


def _position(item: ItemState) -> int:
    return item.position


def _without_timestamp(meta: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in meta.items() if key != "updated_at"}


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _describe(error: ValidationError, what: str) -> str:
    """Render a validation error as one line naming the first bad field."""
    first = error.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or what
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"invalid {what}: {where}: {first['msg']}{more}"

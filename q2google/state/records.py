"""The records a session is made of: its items (one per GoPro file), its batches, the errors
and exclusions they carry, and the discovery cursor.

Each record tells its owning session when one of its fields is assigned, so that a backend
writes only what changed (see :mod:`q2google.state.session`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from pydantic.dataclasses import dataclass

from q2google.errors import InvalidSessionIdError, StateCorruptError

if TYPE_CHECKING:
    from pydantic_core import SchemaSerializer, SchemaValidator

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


_RECORD_CONFIG = ConfigDict(extra="forbid")
"""Records are pydantic dataclasses with slots: a session holds one item per file (100,000 for
a large library), and a slotted record costs a quarter of a model's memory."""


class _Record:
    """A persisted record that tells its owning session when one of its fields is assigned.

    Subclasses are pydantic dataclasses (``slots=True, kw_only=True``, :data:`_RECORD_CONFIG`):
    an assignment is validated against the field's type and constraints, as a model's is.
    """

    __slots__ = ("__weakref__", "_owner")  # weak references: tests see a run let files go

    if TYPE_CHECKING:
        _owner: _ChangeSink | None
        __pydantic_validator__: ClassVar[SchemaValidator]
        __pydantic_serializer__: ClassVar[SchemaSerializer]

    def __setattr__(self, name: str, value: Any) -> None:
        """Assign (validated) and mark this record dirty in its session."""
        if name == "_owner":
            object.__setattr__(self, name, value)
            return
        type(self).__pydantic_validator__.validate_assignment(self, name, value)
        try:
            owner = self._owner
        except AttributeError:  # never owned
            return
        if owner is not None:
            owner.record_changed(self)

    def to_dict(self) -> dict[str, Any]:
        """Return the record as plain JSON-compatible data."""
        data: dict[str, Any] = type(self).__pydantic_serializer__.to_python(self, mode="json")
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Validate stored data into a record.

        Raises:
            StateCorruptError: The data does not describe a valid record.
        """
        try:
            record: Self = cls.__pydantic_validator__.validate_python(data)
        except ValidationError as error:
            raise StateCorruptError(_describe(error, cls.__name__)) from None
        return record


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


class _NoErrors(dict["StageName", ErrorRecord]):
    """The errors of an item that has none: one read-only mapping shared by every such item
    (100,000 files waiting their turn need no empty dict each: 6 MiB)."""

    def _refuse(self, *args: object, **kwargs: object) -> None:
        raise TypeError("an item's errors are replaced, not changed in place: see record_error")

    __setitem__ = __delitem__ = __ior__ = _refuse  # type: ignore[assignment]
    clear = pop = popitem = setdefault = update = _refuse  # type: ignore[assignment]


NO_ERRORS: dict[StageName, ErrorRecord] = _NoErrors()


def _no_errors() -> dict[StageName, ErrorRecord]:
    return NO_ERRORS


@dataclass(slots=True, kw_only=True, config=_RECORD_CONFIG)
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
            asks for it, for a photo described by its search row alone, and once the file is
            created in Google Photos.
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
    errors: dict[StageName, ErrorRecord] = Field(default_factory=_no_errors)
    exclusion: Exclusion | None = None
    added_to_album: str | None = None

    @field_validator("errors")
    @classmethod
    def _shared_when_empty(
        cls, value: dict[StageName, ErrorRecord]
    ) -> dict[StageName, ErrorRecord]:
        """No errors: the one shared empty mapping (see :data:`NO_ERRORS`)."""
        return value or NO_ERRORS

    def __post_init__(self) -> None:
        """Derive ``item_key`` from media id and file index when it is not given."""
        if not self.item_key:
            object.__setattr__(self, "item_key", make_item_key(self.media_id, self.file_index))

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


@dataclass(slots=True, kw_only=True, config=_RECORD_CONFIG)
class BatchState(_Record):
    """One ``mediaItems:batchCreate`` call: which items it carries and what came back.

    Attributes:
        batch_index: Zero-based position among the session's create batches.
        item_keys: Keys of the items in the batch (at most 50); a tuple, so assign a new one.
        status: Where the call stands.
        responses: Google's per-item results once answered (``newMediaItemResults``), as much
            of them as a run keeps: each status, and the id of the media item made.
        error: Why the batch failed as a whole, if it did.
        attempts: How many times the call was sent.
    """

    batch_index: int = Field(ge=0, frozen=True)
    item_keys: tuple[str, ...] = ()
    status: StageStatus = StageStatus.PENDING
    responses: tuple[dict[str, Any], ...] | None = None
    error: ErrorRecord | None = None
    attempts: int = Field(default=0, ge=0)


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


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _describe(error: ValidationError, what: str) -> str:
    """Render a validation error as one line naming the first bad field."""
    first = error.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or what
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"invalid {what}: {where}: {first['msg']}{more}"

"""Pydantic models of the Photos Library API's requests, responses and errors."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from q2google.errors import Q2GoogleError, TryLaterError

TRANSIENT_ITEM_CODES = frozenset({4, 8, 10, 13, 14})
"""google.rpc codes of a batchCreate item worth retrying: DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED,
ABORTED, INTERNAL, UNAVAILABLE."""


class _ApiModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields kept."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    def to_api(self) -> dict[str, Any]:
        """Serialize as the API expects it."""
        return self.model_dump(by_alias=True, exclude_none=True)


class Status(_ApiModel):
    """A ``google.rpc.Status``: ``code`` 0 (or absent) means success."""

    code: int = 0
    message: str = ""


class MediaItem(_ApiModel):
    """A media item of the library."""

    id: str
    description: str = ""
    product_url: str = ""
    mime_type: str = ""
    filename: str = ""


class NewMediaItemResult(_ApiModel):
    """The outcome of one item of a batchCreate call."""

    upload_token: str = ""
    status: Status = Field(default_factory=Status)
    media_item: MediaItem | None = None

    @property
    def ok(self) -> bool:
        """Whether the item is in the library."""
        return self.media_item is not None and self.status.code == 0

    @property
    def transient(self) -> bool:
        """Whether the failure may pass if the same token is sent again."""
        return not self.ok and self.status.code in TRANSIENT_ITEM_CODES


class MediaItemBatchCreateResponse(_ApiModel):
    """The body of a ``mediaItems:batchCreate`` answer."""

    new_media_item_results: list[NewMediaItemResult] = Field(default_factory=list)


class SimpleMediaItem(_ApiModel):
    """An upload token with the file name to show."""

    upload_token: str
    file_name: str | None = None


class NewMediaItem(_ApiModel):
    """One item to create."""

    description: str | None = None
    simple_media_item: SimpleMediaItem


class BatchCreateRequest(_ApiModel):
    """The body of a ``mediaItems:batchCreate`` call (1 to 50 items)."""

    album_id: str | None = None
    new_media_items: list[NewMediaItem] = Field(min_length=1, max_length=50)


class Album(_ApiModel):
    """An album."""

    id: str
    title: str = ""
    product_url: str = ""
    is_writeable: bool | None = None
    media_items_count: str | None = None


class GoogleErrorBody(_ApiModel):
    """The ``error`` object of Google's error responses."""

    code: int = 0
    message: str = ""
    status: str = ""
    details: list[dict[str, Any]] = Field(default_factory=list)


class GoogleAPIError(Q2GoogleError):
    """The Library API refused a request for good (a 4xx that retrying cannot fix).

    Attributes:
        operation: What was being done.
        error: Google's error object.
    """

    def __init__(self, operation: str, error: GoogleErrorBody) -> None:
        message = " ".join(error.message.split())[:300]
        super().__init__(
            f"Google Photos {operation} failed: HTTP {error.code} {error.status}: {message}"
        )
        self.operation, self.error = operation, error


class CreateOutcomeUnknownError(TryLaterError):
    """A ``mediaItems:batchCreate`` was sent and its answer was lost (a 5xx, a timeout, a
    dropped connection): some or all of its items may exist. Never resend it blindly; the
    pipeline finds out what it did (should one escape, it is exit 75: run again later)."""


class GoogleAuthError(Q2GoogleError):
    """The Google token is missing, unreadable, revoked, or lacks the needed scopes."""

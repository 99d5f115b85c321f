"""The GoPro side as the pipeline sees it: a small protocol and the values it trades in.

The sync pipeline asks a :class:`GoProSource` for pages of a capture window and for the
deliverable files of a media. :class:`~q2google.gopro.library.GoProLibrary` implements it over
gopro-api; tests and users may pass their own. A source raises only the errors named here or
q2google's own (:class:`~q2google.errors.GoProAuthError`, :class:`~q2google.errors.TryLaterError`):
never an exception of the HTTP library underneath.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable


class Verdict(StrEnum):
    """What the pipeline does with a file (or a whole media)."""

    DELIVER = "deliver"
    """An original, ready: transfer it."""
    SKIP = "skip"
    """Never delivered, on purpose (an edit project, a type Google refuses...)."""
    DEFER = "defer"
    """Not ready in the GoPro cloud yet: a later run looks again."""
    FAIL = "fail"
    """Cannot be delivered (no original, processing failed in the cloud)."""
    GONE = "gone"
    """Deleted from the GoPro cloud after it was listed."""


@dataclass(frozen=True)
class MediaRow:
    """One media of a search page, as the pipeline needs it.

    Attributes:
        media_id: GoPro media id.
        type: GoPro media type (``Photo``, ``Video``, ``Burst``, ``MultiClipEdit``...).
        filename: The media's name in the GoPro library (the user may have renamed it).
        captured_at: Capture time, when the cloud gives it.
        file_size: Bytes of the media's original, when the cloud gives it.
        item_count: Files in the media (frames of a burst), when given.
        ready_to_view: GoPro's processing state (``ready``, ``uploading``, ``transcoding``,
            ``failure``...), when given.
        file_extension: Extension of the media's original (``jpg``, ``mp4``), when given.
    """

    media_id: str
    type: str
    filename: str
    captured_at: datetime | None = None
    file_size: int | None = None
    item_count: int | None = None
    ready_to_view: str | None = None
    file_extension: str | None = None


@dataclass(frozen=True)
class SearchPage:
    """One page of a capture window's media.

    Attributes:
        rows: The media of the page.
        total_pages: Pages in the window, as the cloud counts them now.
        total_items: Media in the window, as the cloud counts them now.
    """

    rows: tuple[MediaRow, ...]
    total_pages: int
    total_items: int


@dataclass(frozen=True)
class GoProFile:
    """One file of a media, with what the pipeline must do with it.

    Attributes:
        media_id: GoPro media id.
        file_index: Position among the media's files (chapter or frame order), from 0.
        file_name: The name the camera gave the file (or the user, for a renamed media).
        url: Signed CDN URL (it expires), ``None`` when there is nothing to download.
        width: Pixel width, when known.
        height: Pixel height, when known.
        verdict: Deliver, skip, defer or fail.
        reason: Why, for anything but :attr:`Verdict.DELIVER`.
    """

    media_id: str
    file_index: int
    file_name: str
    url: str | None = None
    width: int | None = None
    height: int | None = None
    verdict: Verdict = Verdict.DELIVER
    reason: str | None = None


class MediaGoneError(Exception):
    """The media is no longer in the GoPro cloud (deleted by its owner)."""


class GoProAnswerError(Exception):
    """The GoPro cloud answered in a shape q2google does not understand (for one media)."""


@runtime_checkable
class GoProSource(Protocol):
    """Where media come from: the GoPro cloud, or anything that answers like it."""

    async def search(self, start: datetime, end: datetime, page: int) -> SearchPage:
        """Return page ``page`` (1-based) of the media captured in ``[start, end)``, newest first.

        Raises:
            GoProAuthError: The token was refused.
            TryLaterError: The cloud kept failing.
        """
        ...

    async def files(self, media_id: str, media_type: str | None) -> list[GoProFile]:
        """Return every file of a media, each with its verdict, in file order.

        Raises:
            MediaGoneError: The media is gone from the cloud.
            GoProAnswerError: The answer could not be read.
            GoProAuthError: The token was refused.
            TryLaterError: The cloud kept failing.
        """
        ...

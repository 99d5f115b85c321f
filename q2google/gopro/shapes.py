"""Everything q2google knows about the GoPro cloud's answers, in one module.

What the search asks for, which media kinds hold camera originals, where a media's originals
are in a ``/media/{id}/download`` answer, and what each file is called. The answers carry far
more than originals: a video's ``_embedded.files`` entry is a playable *proxy*, its
``variations`` hold proxies and transcodes (``high_res_proxy_mp4``, ``mp4_low``,
``timelapse_video``...) beside one ``source`` per chapter; ``sidecar_files`` and ``sprites``
are by-products. Only originals are ever delivered; when a video offers no ``source``, it is
not delivered at all (never a proxy in its place).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from q2google.file_names import extension as file_extension
from q2google.gopro.source import GoProAnswerError, GoProFile, MediaRow, SearchPage, Verdict


class Originals(StrEnum):
    """Where a media kind's originals are in the download answer."""

    FILES = "files"
    """``_embedded.files``: the photo, or every frame of a burst or time-lapse."""
    SOURCE = "source"
    """``_embedded.variations`` labelled ``source``: one per chapter of a video."""
    NONE = "none"
    """Nothing to deliver: the kind is not a camera original."""


@dataclass(frozen=True)
class MediaKind:
    """What q2google does with one GoPro media type.

    Attributes:
        type: GoPro's ``type`` value.
        originals: Where its originals are.
        skip_reason: Why it is skipped, for kinds that are not delivered.
    """

    type: str
    originals: Originals
    skip_reason: str | None = None


EDIT_REASON = "an edit made in the GoPro app, not a camera original"
AUDIO_REASON = "an audio recording: Google Photos does not accept audio"

MEDIA_KINDS: dict[str, MediaKind] = {
    kind.type: kind
    for kind in (
        MediaKind("Photo", Originals.FILES),
        MediaKind("Burst", Originals.FILES),
        MediaKind("TimeLapse", Originals.FILES),
        MediaKind("Continuous", Originals.FILES),
        MediaKind("Video", Originals.SOURCE),
        MediaKind("Chaptered", Originals.SOURCE),
        MediaKind("TimeLapseVideo", Originals.SOURCE),
        MediaKind("BurstVideo", Originals.SOURCE),
        MediaKind("LoopedVideo", Originals.SOURCE),
        MediaKind("Looped", Originals.SOURCE),
        MediaKind("ExternalVideo", Originals.SOURCE),
        MediaKind("Livestream", Originals.SOURCE),
        MediaKind("Session", Originals.SOURCE),
        MediaKind("Audio", Originals.NONE, AUDIO_REASON),
        MediaKind("MultiClipEdit", Originals.NONE, EDIT_REASON),
        MediaKind("Edit", Originals.NONE, EDIT_REASON),
    )
}
"""Every media type the search asks for, and what becomes of it (docs/gopro.md has the table)."""

SEARCH_TYPES: tuple[str, ...] = tuple(MEDIA_KINDS)
"""The ``type`` filter of every search: explicit, so that no kind is left out by a default."""
SEARCH_FIELDS: tuple[str, ...] = (
    "id",
    "type",
    "filename",
    "file_extension",
    "captured_at",
    "file_size",
    "item_count",
    "width",
    "height",
    "ready_to_view",
)
"""Columns asked of each search row (``ready_to_view`` tells what is still processing)."""
SEARCH_PROCESSING_STATES: tuple[str, ...] = (
    "registered",
    "uploading",
    "rendering",
    "pretranscoding",
    "transcoding",
    "stabilizing",
    "ready",
    "failure",
)
"""Processing states listed: media not ready yet are listed too, so they can be deferred."""

READY = "ready"
FAILED_STATES = frozenset({"failure", "failed", "error"})
SOURCE_LABEL = "source"
NO_ORIGINAL = "no original available in the GoPro cloud"
_VIDEO_EXTENSIONS = frozenset({"mp4", "mov", "360"})
PROCESSING_FAILED = "processing failed in the GoPro cloud"
GONE_REASON = "gone from the GoPro cloud (deleted by its owner)"

# GoPro's file naming: GH/GX/GL + 2-digit chapter + 4-digit number (HERO5 and later), or
# GOPRnnnn for the first chapter and GPccnnnn for the next ones (older cameras); looping
# recordings (GXAAnnnn) and photo series (Gsssnnnn) count up the last four digits.
_CHAPTERED_NAME = re.compile(r"^(G[HXL])(\d{2})(\d{4})(\.[^.]+)$", re.IGNORECASE)
_OLD_FIRST_CHAPTER = re.compile(r"^(GOPR)(\d{4})(\.[^.]+)$", re.IGNORECASE)
_LOOPED_NAME = re.compile(r"^(G[A-Z]{3})(\d{4})(\.[^.]+)$", re.IGNORECASE)
_SERIES_NAME = re.compile(r"^(G\d{3})(\d{4})(\.[^.]+)$", re.IGNORECASE)
_EXTENSION = re.compile(r"[A-Za-z0-9]{2,5}")
SINGLE_FILE_TYPES = frozenset({"Photo"})
"""Media types of exactly one file: their search row names it and sizes it, so discovery
needs no download metadata for them (the transfer asks for the URL, its one call)."""


def kind_of(media_type: str | None) -> MediaKind | None:
    """The known kind of a GoPro media type, or ``None`` for a type q2google has not seen."""
    return MEDIA_KINDS.get(media_type or "")


_NUMBERS = (int, float)


def _is_mapping(value: object) -> bool:
    """``isinstance(value, Mapping)``, a plain dict first: a walk of a large library reads
    100,000 rows, and the ABC check is the slow part."""
    return type(value) is dict or isinstance(value, Mapping)


def media_row(raw: Any) -> MediaRow:
    """Read a search row (gopro-api's model or a plain mapping) into a :class:`MediaRow`."""
    get: Callable[[str], Any] = (
        raw.get if _is_mapping(raw) else functools.partial(getattr_or_none, raw)
    )
    captured = get("captured_at")
    if isinstance(captured, str):
        captured = datetime.fromisoformat(captured)  # the cloud's "…Z" included
    if isinstance(captured, datetime):
        if captured.tzinfo is None:
            captured = captured.replace(tzinfo=UTC)  # the cloud's times are UTC
    else:
        captured = None
    size, count, extension = get("file_size"), get("item_count"), get("file_extension")
    media_id = str(get("id"))
    return MediaRow(
        media_id=media_id,
        type=str(get("type") or ""),
        filename=str(get("filename") or media_id),
        captured_at=captured,
        file_size=int(size) if isinstance(size, _NUMBERS) else None,
        item_count=int(count) if isinstance(count, _NUMBERS) else None,
        ready_to_view=get("ready_to_view"),
        file_extension=extension if isinstance(extension, str) and extension else None,
    )


def getattr_or_none(model: Any, name: str) -> Any:
    """``model.name``, or ``None`` when it has no such attribute."""
    return getattr(model, name, None)


def search_page(answer: Any) -> SearchPage:
    """Read a search answer (plain JSON) into a :class:`SearchPage`.

    Raises:
        GoProAnswerError: The answer lacks its pages or its media list, or a row is not an
            object with an ``id``, or a capture time does not parse.
    """
    embedded = answer.get("_embedded") if isinstance(answer, Mapping) else None
    pages = answer.get("_pages") if isinstance(answer, Mapping) else None
    media = embedded.get("media") if isinstance(embedded, Mapping) else None
    if not isinstance(media, list) or not isinstance(pages, Mapping):
        raise GoProAnswerError("media search: no _embedded.media or _pages in the answer")
    total_pages, total_items = pages.get("total_pages"), pages.get("total_items")
    if not isinstance(total_pages, int) or not isinstance(total_items, int):
        raise GoProAnswerError("media search: _pages without total_pages and total_items")
    if not all(_is_mapping(row) and row.get("id") for row in media):
        raise GoProAnswerError("media search: a row without an id")
    try:
        rows = tuple(media_row(row) for row in media)
    except ValueError as error:
        raise GoProAnswerError(f"media search: a row does not parse ({error})") from None
    return SearchPage(rows=rows, total_pages=total_pages, total_items=total_items)


def row_verdict(row: MediaRow) -> tuple[Verdict, str | None]:
    """What to do with a media from its search row alone (before asking for its files).

    Returns:
        ``(SKIP, reason)`` for kinds that are not originals, ``(FAIL, reason)`` when the cloud
        failed to process it, ``(DEFER, reason)`` while it is still uploading or processing,
        and ``(DELIVER, None)`` otherwise.
    """
    kind = kind_of(row.type)
    if kind is not None and kind.originals is Originals.NONE:
        return Verdict.SKIP, kind.skip_reason
    state = (row.ready_to_view or READY).lower()
    if state in FAILED_STATES:
        return Verdict.FAIL, PROCESSING_FAILED
    if state != READY:
        return Verdict.DEFER, f"still {state} in the GoPro cloud"
    return Verdict.DELIVER, None


def row_file(row: MediaRow) -> GoProFile | None:
    """The one file of a single-file media (a photo) from its search row alone, without a URL.

    Named as :func:`deliverable_files` names it from the download answer: the media's name,
    with its original's extension appended when it lacks it. The pipeline asks for the URL
    right before the transfer (:mod:`q2google.stages.transfer`), which reads the answer and
    corrects anything the row got wrong.

    Returns:
        The file to deliver, or ``None`` when the row does not tell enough: another kind,
        several files, no size or no extension.
    """
    if row.type not in SINGLE_FILE_TYPES or (row.item_count or 1) != 1:
        return None
    extension = (row.file_extension or "").lower().removeprefix(".")
    if row.file_size is None or not _EXTENSION.fullmatch(extension):
        return None
    return GoProFile(row.media_id, 0, _with_extension(row.filename or row.media_id, extension))


def deliverable_files(
    media_id: str, media_type: str | None, answer: Mapping[str, Any]
) -> list[GoProFile]:
    """The files of a media from its ``/media/{id}/download`` answer, each with a verdict.

    Originals are the ``source`` variations when there are several (one per chapter of a
    video, or one per frame of a time-lapse series), else, for photo kinds, the ``files``
    entries (a photo's is its ``source``; a burst's lone ``source`` is only a cover), else
    the single ``source``. Order is
    ``item_number``. A file the cloud marks ``available: false`` is deferred. A video without
    any ``source`` yields one failed entry: a proxy is never delivered in its place.

    Args:
        media_id: The media's id.
        media_type: GoPro's type of the media (from its search row).
        answer: The download answer as JSON.

    Returns:
        At least one entry; entries without a URL carry the reason nothing can be fetched.

    Raises:
        GoProAnswerError: The answer lacks what every answer has (``_embedded``, URLs).
    """
    embedded = answer.get("_embedded")
    if not isinstance(embedded, Mapping):
        raise GoProAnswerError("download metadata: no _embedded in the answer")
    name = str(answer.get("filename") or "")
    kind = kind_of(media_type)
    if kind is not None and kind.originals is Originals.NONE:
        return [
            GoProFile(media_id, 0, name or media_id, verdict=Verdict.SKIP, reason=kind.skip_reason)
        ]
    variations = _entries(embedded, "variations")
    files = _entries(embedded, "files")
    sources = [entry for entry in variations if entry.get("label") == SOURCE_LABEL]
    chosen: list[Mapping[str, Any]]
    if len(sources) > 1:
        chosen = sources
    elif files and kind is not None and kind.originals is Originals.FILES:
        chosen = files  # a photo's file is its source; a series' lone source is a cover
    elif len(files) > 1 and kind is None:
        chosen = files
    elif sources:
        chosen = sources
    else:
        return [GoProFile(media_id, 0, name or media_id, verdict=Verdict.FAIL, reason=NO_ORIGINAL)]
    ordered = [entry for _, entry in sorted(enumerate(chosen), key=_item_order)]
    extension = _real_extension(ordered[0])
    if kind is not None:
        video = kind.originals is Originals.SOURCE
    else:
        video = extension in _VIDEO_EXTENSIONS
    names = _file_names(_with_extension(name or media_id, extension), len(ordered), video=video)
    result = []
    for index, (entry, file_name) in enumerate(zip(ordered, names, strict=True)):
        url = entry.get("url")
        if not isinstance(url, str) or not url:
            raise GoProAnswerError("download metadata: a file without a URL")
        available = entry.get("available") is not False
        result.append(
            GoProFile(
                media_id=media_id,
                file_index=index,
                file_name=file_name,
                url=url,
                width=_int(entry.get("width")),
                height=_int(entry.get("height")),
                verdict=Verdict.DELIVER if available else Verdict.DEFER,
                reason=None if available else "not available in the GoPro cloud yet",
            )
        )
    return result


def _entries(embedded: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = embedded.get(key) or []
    if not isinstance(value, list):
        raise GoProAnswerError(f"download metadata: _embedded.{key} is not a list")
    return [entry for entry in value if isinstance(entry, Mapping)]


def _item_order(pair: tuple[int, Mapping[str, Any]]) -> tuple[int, int]:
    listed_at, entry = pair
    number = entry.get("item_number")
    return (number if isinstance(number, int) else listed_at, listed_at)


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) else None


def _file_names(first: str, count: int, *, video: bool) -> list[str]:
    """Name each file as the camera did: one file keeps the media's name (which its owner may
    have changed); chapters and frames follow GoPro's numbering from the first one's name."""
    numbering = chapter_name if video else frame_name
    return [numbering(first, number) for number in range(1, count + 1)]


def _real_extension(entry: Mapping[str, Any]) -> str | None:
    """The extension of the file behind an entry: its ``type`` (variations), else its URL."""
    declared = entry.get("type")
    if isinstance(declared, str) and _EXTENSION.fullmatch(declared):
        return declared.lower()
    return file_extension(urlsplit(str(entry.get("url") or "")).path) or None


def _with_extension(name: str, extension: str | None) -> str:
    if extension is None or file_extension(name) == extension:
        return name
    return f"{name}.{extension}"


def chapter_name(first: str, chapter: int) -> str:
    """The camera's name for chapter ``chapter`` (from 1) of the recording named ``first``.

    ``GX010042.MP4`` → ``GX020042.MP4``; ``GOPR0042.MP4`` → ``GP010042.MP4`` (older cameras);
    a name its owner chose gets a suffix (``Ride.MP4`` → ``Ride-02.MP4``).
    """
    if chapter == 1:
        return first
    if match := _CHAPTERED_NAME.match(first):
        prefix, _, number, suffix = match.groups()
        return f"{prefix}{chapter:02d}{number}{suffix}"
    if match := _OLD_FIRST_CHAPTER.match(first):
        _, number, suffix = match.groups()
        return f"GP{chapter - 1:02d}{number}{suffix}"
    if match := _LOOPED_NAME.match(first):
        return _count_up(match, chapter)
    return _numbered(first, chapter, width=2)


def frame_name(first: str, frame: int) -> str:
    """The camera's name for frame ``frame`` (from 1) of a series whose first is ``first``.

    ``G0010001.JPG`` → ``G0010002.JPG`` (the last four digits count frames); a name its owner
    chose gets a suffix (``Jump.JPG`` → ``Jump-002.JPG``).
    """
    if frame == 1:
        return first
    if match := _SERIES_NAME.match(first):
        return _count_up(match, frame)
    return _numbered(first, frame, width=3)


def _count_up(match: re.Match[str], position: int) -> str:
    prefix, number, suffix = match.groups()
    return f"{prefix}{(int(number) + position - 1) % 10_000:04d}{suffix}"


def _numbered(name: str, number: int, *, width: int) -> str:
    stem, dot, extension = name.rpartition(".")
    if not dot:
        return f"{name}-{number:0{width}d}"
    return f"{stem}-{number:0{width}d}.{extension}"

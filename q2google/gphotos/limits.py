"""What Google Photos accepts, in one place: file types, sizes, the API's own bounds and quota.

From the Library API's upload guide ("Accepted file types and sizes") and its reference.
A file outside these is never downloaded nor uploaded: it is skipped with the limit named.
"""

from __future__ import annotations

import mimetypes

from q2google.file_names import extension

MAX_PHOTO_BYTES = 200 * 1024**2
"""Largest photo Google Photos accepts ("200 MB")."""
MAX_VIDEO_BYTES = 20 * 1024**3
"""Largest video Google Photos accepts ("20 GB")."""
MAX_BATCH_CREATE_ITEMS = 50
"""Items per ``mediaItems:batchCreate`` call."""
MAX_DESCRIPTION_CHARS = 1000
"""Longest media item description."""
MAX_ALBUM_ITEMS = 20_000
"""Items an album can hold."""

UPLOADS_PATH = "/v1/uploads"
"""The upload endpoint, for raw uploads and to start resumable sessions."""
UPLOAD_GRANULARITY_BYTES = 256 * 1024
"""Resumable chunks but the last are multiples of this (unless the session says more, in its
``X-Goog-Upload-Chunk-Granularity``)."""
DAILY_REQUEST_QUOTA = 10_000
"""Library API requests per project per day, uploads included ("Usage limits"): every upload
request counts, so a raw upload (one request) costs half a resumable one (start + upload)."""

PHOTO_TYPES: dict[str, str] = {
    "avif": "image/avif",
    "bmp": "image/bmp",
    "gif": "image/gif",
    "heic": "image/heic",
    "heif": "image/heif",
    "ico": "image/x-icon",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "tif": "image/tiff",
    "tiff": "image/tiff",
    "webp": "image/webp",
    "dng": "image/x-adobe-dng",  # "some RAW files": the DNG family
}
"""Photo extensions Google Photos accepts, with their MIME types."""
VIDEO_TYPES: dict[str, str] = {
    "3gp": "video/3gpp",
    "3g2": "video/3gpp2",
    "asf": "video/x-ms-asf",
    "avi": "video/x-msvideo",
    "divx": "video/divx",
    "m2t": "video/mp2t",
    "m2ts": "video/mp2t",
    "m4v": "video/x-m4v",
    "mkv": "video/x-matroska",
    "mmv": "video/x-mmv",
    "mod": "video/mpeg",
    "mov": "video/quicktime",
    "mp4": "video/mp4",
    "mpg": "video/mpeg",
    "mpeg": "video/mpeg",
    "mts": "video/mp2t",
    "tod": "video/mpeg",
    "wmv": "video/x-ms-wmv",
}
"""Video extensions Google Photos accepts, with their MIME types."""


def mime_type(file_name: str) -> str:
    """The MIME type of a file, from its real extension.

    Returns:
        Google's type for accepted extensions, the platform's guess otherwise, and
        ``application/octet-stream`` when nothing is known.
    """
    ext = extension(file_name)
    known = PHOTO_TYPES.get(ext) or VIDEO_TYPES.get(ext)
    return known or mimetypes.guess_type(file_name)[0] or "application/octet-stream"


def refusal(file_name: str, size: int | None = None) -> str | None:
    """Why Google Photos would refuse this file, or ``None`` when it accepts it.

    Args:
        file_name: The file's name (its extension decides the kind).
        size: Its size in bytes, when known.

    Returns:
        One line naming the limit that applies.
    """
    ext = extension(file_name)
    if ext in PHOTO_TYPES:
        limit, kind, shown = MAX_PHOTO_BYTES, "photo", "200 MB"
    elif ext in VIDEO_TYPES:
        limit, kind, shown = MAX_VIDEO_BYTES, "video", "20 GB"
    else:
        what = f".{ext} files" if ext else "files without an extension"
        return f"Google Photos does not accept {what}"
    if size is not None and size > limit:
        return f"{size:,} bytes is over Google Photos' {shown} limit for a {kind}"
    return None

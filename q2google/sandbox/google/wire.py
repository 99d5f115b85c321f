"""What the Google emulator's answers share: limits, scopes, Google's error shape and wording.

Every message a client may have to recognise is here, with where its wording comes from, so
that the emulator and docs/sandbox.md stay in step.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from aiohttp import web

GRANULARITY = 256 * 1024
"""``X-Goog-Upload-Chunk-Granularity``: every chunk but the last is a multiple of it."""
MAX_BATCH = 50
"""Items per batchCreate and per batchAddMediaItems."""

_SCOPE = "https://www.googleapis.com/auth/photoslibrary"
APPENDONLY = f"{_SCOPE}.appendonly"
READONLY_APPCREATED = f"{_SCOPE}.readonly.appcreateddata"
EDIT_APPCREATED = f"{_SCOPE}.edit.appcreateddata"
SCOPES = (APPENDONLY, READONLY_APPCREATED, EDIT_APPCREATED)
"""The scopes the sandbox's own refresh token carries (the Library API's since March 2025)."""
READ_SCOPES = frozenset({READONLY_APPCREATED, EDIT_APPCREATED, f"{_SCOPE}.readonly", _SCOPE})
"""Any of these lets a token list and get app-created items and albums."""
WRITE_SCOPES = frozenset({APPENDONLY, _SCOPE})
"""Any of these lets a token upload, create items and create albums."""
ALBUM_ADD_SCOPES = frozenset({APPENDONLY, EDIT_APPCREATED, _SCOPE})
"""Any of these lets a token add items to an app-created album."""

# -- Google's wording (sources in docs/sandbox.md) ------------------------------------------

NOT_FOUND = "Requested entity was not found."
INSUFFICIENT_SCOPES = "Request had insufficient authentication scopes."
REFUSED_ITEM = "Failed: There was an error while trying to create this media item."
"""Per-item code 3 for bytes Google cannot make an item of (gphotos-uploader-cli #105,
jiotty-photos-uploader #129, Data Transfer Project #1009): retrying never helps."""
UNUSABLE_UPLOAD = "Request must contain a valid upload token."
"""Per-item code 3 for an unknown or already used upload token (gphotos-uploader-cli #132,
#223, where Google sent it as a whole 400 for a one-item batch)."""
EXPIRED_UPLOAD = "Upload token has expired. Upload the bytes again."
"""Per-item code 3 for a token older than its lifetime (one day): no public record of
Google's wording was found; the sandbox's own, distinct from the two above."""
NO_SUCH_ALBUM = "The provided ID does not match any albums."
"""Whole-call 400 for an albumId that is unknown or the user deleted (Data Transfer Project,
GooglePhotosImporter: "the album was likely deleted by the user")."""
STORAGE_FULL = (
    "The remaining storage in the user's account is not enough to perform this operation."
)
"""Whole-call 400 from batchCreate when the user's storage is full (gphotos-uploader-cli #248
and its storageQuotaErrorRe, Data Transfer Project's DestinationMemoryFullException)."""


def album_full_message(capacity: int) -> str:
    """Whole-call 400 when an album would hold more than ``capacity`` items.

    Google documents the 20,000 limit ("Requests to add more items that would exceed this
    limit will fail") but no public record of its message was found: the sandbox's own.
    """
    return f"The album is full: an album can contain at most {capacity} media items."


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiRow(Protocol):
    """Something the Library API lists: an item or an album."""

    def to_api(self) -> dict[str, Any]:
        """The row as the Library API returns it."""
        ...


def google_error(
    code: int,
    status: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    details: list[dict[str, Any]] | None = None,
) -> web.Response:
    """Return an error in Google's JSON shape: ``{"error": {"code", "message", "status"}}``."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return web.json_response({"error": error}, status=code, headers=headers)


def invalid(message: str) -> web.Response:
    """A 400 ``INVALID_ARGUMENT`` with ``message``."""
    return google_error(400, "INVALID_ARGUMENT", message)


def not_found() -> web.Response:
    """A 404 ``NOT_FOUND`` with Google's generic message."""
    return google_error(404, "NOT_FOUND", NOT_FOUND)


async def json_body(request: web.Request) -> Any:
    """The request's JSON body, or ``None`` when it is not JSON."""
    try:
        return await request.json()
    except ValueError:
        return None


def page_size(value: object, *, default: int, maximum: int) -> int:
    """A ``pageSize`` clamped to ``1..maximum`` (Google caps it silently).

    Raises:
        ValueError: Not a number.
    """
    if value is None or value == "":
        return default
    return min(maximum, max(1, int(str(value))))


def paged(
    request: web.Request, key: str, rows: Sequence[ApiRow], *, default: int, maximum: int
) -> web.Response:
    """Answer one page of ``rows`` under ``key``, with ``nextPageToken`` when more remain."""
    try:
        size = page_size(request.query.get("pageSize"), default=default, maximum=maximum)
        start = int(request.query.get("pageToken") or 0)
    except ValueError:
        return invalid("pageSize and pageToken must be numbers")
    end = start + size
    body: dict[str, Any] = {key: [row.to_api() for row in rows[start:end]]}
    if end < len(rows):
        body["nextPageToken"] = str(end)
    return web.json_response(body)

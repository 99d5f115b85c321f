"""Low-level Google Photos Library API v1: HTTP (:class:`GooglePhotosAPI`), OAuth
(:class:`GooglePhotosOAuth`) and pydantic models. The pipeline uses :mod:`q2google.photos`."""

from q2google.gphotos.api import GooglePhotosAPI
from q2google.gphotos.models import (
    Album,
    GoogleAPIError,
    GoogleAuthError,
    MediaItem,
    MediaItemBatchCreateResponse,
    NewMediaItemResult,
)
from q2google.gphotos.oauth import SCOPES, GooglePhotosOAuth

__all__ = [
    "SCOPES",
    "Album",
    "GoogleAPIError",
    "GoogleAuthError",
    "GooglePhotosAPI",
    "GooglePhotosOAuth",
    "MediaItem",
    "MediaItemBatchCreateResponse",
    "NewMediaItemResult",
]

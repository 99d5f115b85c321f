"""Low-level Google Photos Library API v1: HTTP (:class:`GooglePhotosAPI`), OAuth
(:class:`GooglePhotosOAuth`) and pydantic models. The pipeline uses :mod:`q2google.photos`.

The names below are imported on first use, so that :mod:`q2google.gphotos.limits` (read by
the settings of every command) does not bring in the HTTP stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_WHERE = {
    "GooglePhotosAPI": "q2google.gphotos.api",
    "SCOPES": "q2google.gphotos.oauth",
    "GooglePhotosOAuth": "q2google.gphotos.oauth",
    **dict.fromkeys(
        (
            "Album",
            "GoogleAPIError",
            "GoogleAuthError",
            "MediaItem",
            "MediaItemBatchCreateResponse",
            "NewMediaItemResult",
        ),
        "q2google.gphotos.models",
    ),
}


def __getattr__(name: str) -> Any:
    """Import one of :data:`__all__` when it is first asked for.

    Raises:
        AttributeError: ``name`` is not one of them.
    """
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

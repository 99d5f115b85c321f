"""q2google: move your GoPro cloud library into Google Photos, streaming and exactly once.

The public surface is re-exported here and imported on first use, so that ``import q2google``
(and so ``q2google --help``) stays fast.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from q2google.config import Q2GoogleSettings, get_settings
    from q2google.errors import Q2GoogleError
    from q2google.gopro import GoProCloudClient
    from q2google.photos import GooglePhotoLibraryPort, GooglePhotosClient
    from q2google.state import (
        BatchState,
        DeliveryLedger,
        ErrorRecord,
        ItemState,
        JsonFileBackend,
        SessionState,
        StageName,
        StageStatus,
        SyncStateBackend,
        build_backend,
        new_session,
    )
    from q2google.sync import GoProToPhotosSync, SyncTransferMetrics

try:
    __version__ = version("q2google")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without metadata
    __version__ = "0.0.0"

_EXPORTS = {
    "BatchState": "q2google.state",
    "DeliveryLedger": "q2google.state",
    "GoProCloudClient": "q2google.gopro",
    "GoProToPhotosSync": "q2google.sync",
    "GooglePhotoLibraryPort": "q2google.photos",
    "GooglePhotosClient": "q2google.photos",
    "SyncTransferMetrics": "q2google.sync",
    "ErrorRecord": "q2google.state",
    "ItemState": "q2google.state",
    "JsonFileBackend": "q2google.state",
    "Q2GoogleError": "q2google.errors",
    "Q2GoogleSettings": "q2google.config",
    "SessionState": "q2google.state",
    "StageName": "q2google.state",
    "StageStatus": "q2google.state",
    "SyncStateBackend": "q2google.state",
    "build_backend": "q2google.state",
    "get_settings": "q2google.config",
    "new_session": "q2google.state",
}

__all__ = [
    "BatchState",
    "DeliveryLedger",
    "ErrorRecord",
    "GoProCloudClient",
    "GoProToPhotosSync",
    "GooglePhotoLibraryPort",
    "GooglePhotosClient",
    "ItemState",
    "JsonFileBackend",
    "Q2GoogleError",
    "Q2GoogleSettings",
    "SessionState",
    "StageName",
    "StageStatus",
    "SyncStateBackend",
    "SyncTransferMetrics",
    "__version__",
    "build_backend",
    "get_settings",
    "new_session",
]


def __getattr__(name: str) -> Any:
    """Import a public name from its module the first time it is used."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'q2google' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

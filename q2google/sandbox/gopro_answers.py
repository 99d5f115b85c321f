"""The JSON the GoPro cloud answers with: search rows and ``/media/{id}/download`` bodies.

Shapes follow the real API as community clients recorded it (docs/sandbox.md): sidecar
``fps`` is a float such as 29.97003 (gopro-api's own model, which declares an integer, fails
on it, as it does on the real cloud), variations carry ``type``, ``quality``, ``width``,
``height`` and ``available``, and only per-chapter or per-frame entries carry ``item_number``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from q2google.sandbox.assets import SandboxAsset
from q2google.sandbox.media import SandboxMedia

GOPRO_USER_ID = "sandbox-user-0001"
ALWAYS_PRESENT_FIELDS = ("id", "gopro_user_id", "source_gumi", "source_mgumi")
"""Search fields every row carries, asked for or not (gopro-api's model requires them)."""
_VIDEO_BYTES_PER_SECOND = 7_500_000  # 60 Mbit/s, for source_duration
_PLAY_AS = {"Photo": "photo", "Burst": "multi_shot_photo", "Continuous": "multi_shot_photo"}

UrlFor = Callable[[SandboxAsset], str]
"""Gives the signed CDN URL of an asset."""


def _timestamp(media: SandboxMedia, after: timedelta = timedelta()) -> str:
    return (media.captured_at + after).isoformat().replace("+00:00", "Z")


def search_row(media: SandboxMedia) -> dict[str, Any]:
    """Every field the search can return for ``media``."""
    primary = media.primary
    video = media.type not in _PLAY_AS and media.type != "TimeLapse" and not media.is_edit
    size = media.file_size
    milliseconds = size * 1000 // _VIDEO_BYTES_PER_SECOND if video and size is not None else 0
    if primary is None:
        resolution = None
    elif video:
        resolution = f"{primary.height}p"
    else:
        resolution = str(primary.width * primary.height)
    labels = sorted({asset.api_label for asset in (*media.variations, *media.sidecars)})
    return {
        "id": media.media_id,
        "type": media.type,
        "filename": media.filename,
        "file_extension": media.file_extension,
        "captured_at": _timestamp(media),
        "created_at": _timestamp(media, timedelta(hours=11, minutes=43)),
        "submitted_at": _timestamp(media, timedelta(hours=11, minutes=40)),
        "file_size": size,
        "item_count": media.item_count,
        "width": primary.width if primary else None,
        "height": primary.height if primary else None,
        "camera_model": None if media.is_edit else media.camera_model,
        "moments_count": 0,
        "ready_to_view": media.ready_to_view,
        "ready_to_edit": media.is_ready,
        "token": "",
        "content_title": media.filename or None,
        "content_type": None,
        "gopro_user_id": GOPRO_USER_ID,
        "source_gumi": hashlib.sha1(media.media_id.encode(), usedforsecurity=False).hexdigest(),
        "source_mgumi": None,
        "fov": None,
        "mce_type": "premium" if media.type == "MultiClipEdit" else None,
        "on_public_profile": False,
        "orientation": 1,
        "play_as": _PLAY_AS.get(media.type, "video"),
        "resolution": resolution,
        "source_duration": str(milliseconds),
        "thumbnail_available": media.is_ready,
        "available_labels": labels,
        "composition": None,
        "stabilized": False,
    }


def select_fields(row: dict[str, Any], fields: Iterable[str] | None) -> dict[str, Any]:
    """Only the asked ``fields`` of ``row`` (all without a list), plus the always-present ones."""
    if fields is None:
        return row
    wanted = {*fields, *ALWAYS_PRESENT_FIELDS}
    return {name: value for name, value in row.items() if name in wanted}


def download_answer(media: SandboxMedia, url_for: UrlFor) -> dict[str, Any]:
    """The ``/media/{id}/download`` body of ``media``, its URLs made by ``url_for``."""
    return {
        "filename": media.filename,
        "_embedded": {
            "files": [_file(asset, number, url_for) for number, asset in enumerate(media.files, 1)],
            "variations": [_variation(asset, url_for) for asset in media.variations],
            "sprites": [_sprite(media, asset, url_for) for asset in media.sprites],
            "sidecar_files": [_sidecar(media, asset, url_for) for asset in media.sidecars],
        },
    }


def _file(asset: SandboxAsset, number: int, url_for: UrlFor) -> dict[str, Any]:
    url = url_for(asset)
    return {
        "url": url,
        "head": url,
        "camera_position": "default",
        "item_number": asset.item_number or number,
        "width": asset.width,
        "height": asset.height,
        "orientation": 1,
        "transforms": None,
        "available": asset.available,
        "heads": [],
        "urls": [],
    }


def _variation(asset: SandboxAsset, url_for: UrlFor) -> dict[str, Any]:
    url = url_for(asset)
    entry: dict[str, Any] = {
        "url": url,
        "head": url,
        "label": asset.api_label,
        "type": asset.entry_type,
        "quality": f"{asset.height}p",
        "width": asset.width,
        "height": asset.height,
        "available": asset.available,
    }
    if asset.item_number is not None:
        entry["item_number"] = asset.item_number
        entry["camera_position"] = "default"
        entry["transforms"] = None
    return entry


def _sidecar(media: SandboxMedia, asset: SandboxAsset, url_for: UrlFor) -> dict[str, Any]:
    url = url_for(asset)
    entry: dict[str, Any] = {
        "url": url,
        "head": url,
        "label": asset.label,
        "type": asset.entry_type,
        "fps": media.fps if asset.label == "gpmf" else 0,
        "available": asset.available,
    }
    if asset.item_number is not None:
        entry["item_number"] = asset.item_number
    if asset.label == "gpmf":
        entry["task_version"] = "1.4.0"
    return entry


def _sprite(media: SandboxMedia, asset: SandboxAsset, url_for: UrlFor) -> dict[str, Any]:
    url = url_for(asset)
    frames = 10
    return {
        "fps": media.fps,
        "frame": {"count": frames, "height": asset.height, "width": asset.width // frames},
        "height": asset.height,
        "width": asset.width,
        "type": "jpg",
        "heads": [url],
        "urls": [url],
        "total_count": 1,
    }

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


def _is_video(media: SandboxMedia) -> bool:
    return media.type not in _PLAY_AS and media.type != "TimeLapse" and not media.is_edit


def _resolution(media: SandboxMedia) -> str | None:
    primary = media.primary
    if primary is None:
        return None
    return f"{primary.height}p" if _is_video(media) else str(primary.width * primary.height)


def _source_duration(media: SandboxMedia) -> str:
    size = media.file_size
    video = _is_video(media) and size is not None
    return str(size * 1000 // _VIDEO_BYTES_PER_SECOND if video and size is not None else 0)


def _labels(media: SandboxMedia) -> list[str]:
    return sorted({asset.api_label for asset in (*media.variations, *media.sidecars)})


def _gumi(media: SandboxMedia) -> str:
    return hashlib.sha1(media.media_id.encode(), usedforsecurity=False).hexdigest()


_ROW_FIELDS: dict[str, Callable[[SandboxMedia], Any]] = {
    "id": lambda media: media.media_id,
    "type": lambda media: media.type,
    "filename": lambda media: media.filename,
    "file_extension": lambda media: media.file_extension,
    "captured_at": _timestamp,
    "created_at": lambda media: _timestamp(media, timedelta(hours=11, minutes=43)),
    "submitted_at": lambda media: _timestamp(media, timedelta(hours=11, minutes=40)),
    "file_size": lambda media: media.file_size,
    "item_count": lambda media: media.item_count,
    "width": lambda media: media.primary.width if media.primary else None,
    "height": lambda media: media.primary.height if media.primary else None,
    "camera_model": lambda media: None if media.is_edit else media.camera_model,
    "moments_count": lambda media: 0,
    "ready_to_view": lambda media: media.ready_to_view,
    "ready_to_edit": lambda media: media.is_ready,
    "token": lambda media: "",
    "content_title": lambda media: media.filename or None,
    "content_type": lambda media: None,
    "gopro_user_id": lambda media: GOPRO_USER_ID,
    "source_gumi": _gumi,
    "source_mgumi": lambda media: None,
    "fov": lambda media: None,
    "mce_type": lambda media: "premium" if media.type == "MultiClipEdit" else None,
    "on_public_profile": lambda media: False,
    "orientation": lambda media: 1,
    "play_as": lambda media: _PLAY_AS.get(media.type, "video"),
    "resolution": _resolution,
    "source_duration": _source_duration,
    "thumbnail_available": lambda media: media.is_ready,
    "available_labels": _labels,
    "composition": lambda media: None,
    "stabilized": lambda media: False,
}
"""Every field the search can return, and how it is made from a media."""


def row_fields(fields: Iterable[str] | None) -> tuple[str, ...]:
    """The fields of a row for a search asking ``fields`` (all without a list), in the
    cloud's order, with the always-present ones."""
    if fields is None:
        return tuple(_ROW_FIELDS)
    wanted = {*fields, *ALWAYS_PRESENT_FIELDS}
    return tuple(name for name in _ROW_FIELDS if name in wanted)


def search_row(media: SandboxMedia, names: Iterable[str] = tuple(_ROW_FIELDS)) -> dict[str, Any]:
    """The search row of ``media``: the fields ``names`` (from :func:`row_fields`), only
    those computed, so that a page costs what it returns."""
    return {name: _ROW_FIELDS[name](media) for name in names}


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

"""The emulated Google Photos library: upload tokens, media items, albums."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass
class UploadToken:
    """What a finished upload left: usable once by batchCreate, for a limited time."""

    token: str
    sha256: str
    size: int
    content_type: str
    file_name: str | None
    created: float
    used: bool = False


@dataclass
class MediaItem:
    """An item of the emulated library; ``seq`` orders items by creation."""

    id: str
    seq: int
    filename: str
    description: str
    mime_type: str
    sha256: str
    size: int
    creation_time: str
    album_ids: list[str] = field(default_factory=list)
    create_calls: int = 1

    def to_api(self) -> dict[str, Any]:
        """The item as the Library API returns it."""
        return {
            "id": self.id,
            "description": self.description,
            "productUrl": f"https://photos.google.com/lr/photo/{self.id}",
            "mimeType": self.mime_type,
            "mediaMetadata": {"creationTime": self.creation_time},
            "filename": self.filename,
        }


@dataclass
class Album:
    """An app-created album."""

    id: str
    title: str
    media_item_ids: list[str] = field(default_factory=list)

    def to_api(self) -> dict[str, Any]:
        """The album as the Library API returns it."""
        return {
            "id": self.id,
            "title": self.title,
            "isWriteable": True,
            "productUrl": f"https://photos.google.com/lr/album/{self.id}",
            "mediaItemsCount": str(len(self.media_item_ids)),
        }


@dataclass
class PhotosLibrary:
    """The user's library as the emulator keeps it.

    Attributes:
        items: Media items by id, in creation order.
        items_by_sha256: The first item of each content, for ``merge-identical``.
        albums: Albums by id (deleted ones are gone from here).
        deleted_album_ids: Albums the user deleted, in deletion order.
        upload_tokens: Tokens of finished uploads, used or not.
    """

    items: dict[str, MediaItem] = field(default_factory=dict)
    items_by_sha256: dict[str, str] = field(default_factory=dict)
    albums: dict[str, Album] = field(default_factory=dict)
    deleted_album_ids: list[str] = field(default_factory=list)
    upload_tokens: dict[str, UploadToken] = field(default_factory=dict)

    def new_item(self, token: UploadToken, filename: str, description: str) -> MediaItem:
        """Create a media item of ``token``'s bytes (and spend the token)."""
        token.used = True
        item = MediaItem(
            id="SBX" + secrets.token_urlsafe(30),
            seq=len(self.items) + 1,
            filename=filename,
            description=description,
            mime_type=token.content_type,
            sha256=token.sha256,
            size=token.size,
            creation_time=datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        )
        self.items[item.id] = item
        self.items_by_sha256.setdefault(item.sha256, item.id)
        return item

    def add_to_album(self, album: Album, item: MediaItem) -> None:
        """Put ``item`` at the end of ``album`` unless it is there already."""
        if item.id not in album.media_item_ids:
            album.media_item_ids.append(item.id)
            item.album_ids.append(album.id)

    def delete_album(self, album_id: str) -> Album:
        """Delete an album as its user would: its items stay in the library.

        Raises:
            KeyError: No such album.
        """
        album = self.albums.pop(album_id)
        self.deleted_album_ids.append(album_id)
        for item_id in album.media_item_ids:
            self.items[item_id].album_ids.remove(album_id)
        return album

    def newest_first(self) -> list[MediaItem]:
        """Every item, the newest first."""
        return sorted(self.items.values(), key=lambda item: item.seq, reverse=True)

    def snapshot(self) -> dict[str, Any]:
        """The library for inspection: items with the sha256 of their bytes, and albums."""
        return {
            "mediaItems": [
                {
                    "id": item.id,
                    "filename": item.filename,
                    "description": item.description,
                    "mimeType": item.mime_type,
                    "sha256": item.sha256,
                    "size": item.size,
                    "albumIds": list(item.album_ids),
                    "createCalls": item.create_calls,
                }
                for item in self.items.values()
            ],
            "albums": [
                album.to_api() | {"mediaItemIds": list(album.media_item_ids)}
                for album in self.albums.values()
            ],
            "deletedAlbumIds": list(self.deleted_album_ids),
        }

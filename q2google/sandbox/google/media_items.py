"""Media items: batchCreate with Google's unkind answers, listing, search, get.

batchCreate creates a new item for every valid token, identical bytes included (Google keeps
duplicates; ``merge-identical`` restores the merging some clients hoped for). Faults: a slow
call (``slow-create``, before the commit), answers lost after the commit (``lost-create``),
files refused for good (``refuse``), full albums (``album-cap``), deleted albums, full storage.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from q2google.sandbox.google.models import Album, MediaItem
from q2google.sandbox.google.resource import GoogleResource
from q2google.sandbox.google.wire import (
    EXPIRED_UPLOAD,
    MAX_BATCH,
    NO_SUCH_ALBUM,
    READ_SCOPES,
    REFUSED_ITEM,
    STORAGE_FULL,
    UNUSABLE_UPLOAD,
    WRITE_SCOPES,
    album_full_message,
    google_error,
    invalid,
    json_body,
    not_found,
    page_size,
)

LIST_PAGE = (25, 100)
"""Default and largest ``pageSize`` of mediaItems.list and mediaItems.search."""


class GoogleMediaItems(GoogleResource):
    """``mediaItems``: batchCreate, list, search and get over the emulated library."""

    def routes(self) -> list[web.RouteDef]:
        """The mediaItems routes, each behind its scopes."""
        guard = self.oauth.guard
        return [
            web.post("/v1/mediaItems:batchCreate", guard(self.batch_create, WRITE_SCOPES)),
            web.post("/v1/mediaItems:search", guard(self.search, READ_SCOPES)),
            web.get("/v1/mediaItems", guard(self.list_media_items, READ_SCOPES)),
            web.get("/v1/mediaItems/{item_id}", guard(self.get_media_item, READ_SCOPES)),
        ]

    # -- batchCreate -----------------------------------------------------------------------

    async def batch_create(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/mediaItems:batchCreate``: 1 to 50 upload tokens become media items.

        The call commits at once after its delay (a client gone meanwhile changes nothing:
        the request was received), or fails whole, creating nothing.
        """
        body = await json_body(request)
        new_items = body.get("newMediaItems") if isinstance(body, dict) else None
        if not isinstance(new_items, list) or not 1 <= len(new_items) <= MAX_BATCH:
            return invalid(f"newMediaItems must hold 1 to {MAX_BATCH} items")
        album_id = body.get("albumId") if isinstance(body, dict) else None
        if album_id is not None and not isinstance(album_id, str):
            return invalid("albumId must be a string")
        self.stats.google_calls["batchCreate"] += 1
        if self.injector.config.create_delay_seconds > 0:
            await asyncio.sleep(self.injector.config.create_delay_seconds)
        album, refusal = self._whole_call_check(album_id or None, len(new_items))
        if refusal is not None:
            self.stats.created_per_create.append(0)
            return refusal
        before = len(self.library.items)
        results = [self._create_one(new_item, album) for new_item in new_items]
        self.stats.created_per_create.append(len(self.library.items) - before)
        if self.injector.roll("lost_create", self.injector.config.create_answer_loss_rate):
            return self._lose_answer(request)
        failures = sum("mediaItem" not in result for result in results)
        return web.json_response({"newMediaItemResults": results}, status=207 if failures else 200)

    def _whole_call_check(
        self, album_id: str | None, count: int
    ) -> tuple[Album | None, web.Response | None]:
        """The target album, or the 400 that refuses the whole call (nothing is created)."""
        config = self.injector.config
        album = None
        if album_id is not None:
            album = self.library.albums.get(album_id)
            if album is None:
                if album_id in self.library.deleted_album_ids:
                    self.stats.faults["album_deleted"] += 1
                return None, invalid(NO_SUCH_ALBUM)
        if config.storage_full:
            self.stats.faults["storage_full"] += 1
            return None, invalid(STORAGE_FULL)
        if album is not None and len(album.media_item_ids) + count > config.album_capacity:
            self.stats.faults["album_full"] += 1
            return None, invalid(album_full_message(config.album_capacity))
        return album, None

    def _lose_answer(self, request: web.Request) -> web.StreamResponse:
        """Everything is committed; the client gets a 503 or a dropped connection instead."""
        if self.injector.heads():
            self.stats.faults["lost_create:503"] += 1
            return google_error(503, "UNAVAILABLE", "The service is currently unavailable.")
        self.stats.faults["lost_create:reset"] += 1
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)  # never reaches the client

    def _create_one(self, new_item: Any, album: Album | None) -> dict[str, Any]:
        """One ``newMediaItemResults`` entry: a new (or merged) item, or the item's status."""
        config = self.injector.config
        simple = new_item.get("simpleMediaItem") if isinstance(new_item, dict) else None
        simple = simple if isinstance(simple, dict) else {}
        token_text = str(simple.get("uploadToken", ""))
        token = self.library.upload_tokens.get(token_text)
        if token is None or token.used:
            return _failure(token_text, 3, UNUSABLE_UPLOAD)
        if time.monotonic() - token.created > config.upload_token_ttl_seconds:
            return _failure(token_text, 3, EXPIRED_UPLOAD)
        file_name = str(simple.get("fileName") or token.file_name or "upload")
        if file_name in config.refused_names:
            self.stats.faults["refused"] += 1
            return _failure(token_text, 3, REFUSED_ITEM)  # the token stays unused
        if self.injector.roll("batch_item_failure", config.batch_item_failure_rate):
            return _failure(token_text, 13, "Internal error: try again later.")
        existing = self.library.items.get(self.library.items_by_sha256.get(token.sha256, ""))
        if config.merge_identical and existing is not None:
            token.used = True
            existing.create_calls += 1
            item = existing
        else:
            description = new_item.get("description", "")
            item = self.library.new_item(token, file_name, str(description or ""))
        if album is not None:
            self.library.add_to_album(album, item)
        return {
            "uploadToken": token_text,
            "status": {"message": "Success"},
            "mediaItem": item.to_api(),
        }

    # -- reading ---------------------------------------------------------------------------

    async def list_media_items(self, request: web.Request) -> web.Response:
        """``GET /v1/mediaItems``: the app's items, newest first, paged."""
        self.stats.google_calls["mediaItems.list"] += 1
        query = request.query
        return self._newest_first(query.get("pageSize"), query.get("pageToken"))

    async def search(self, request: web.Request) -> web.Response:
        """``POST /v1/mediaItems:search``: an album's items in album order, or all items."""
        self.stats.google_calls["mediaItems.search"] += 1
        body = await json_body(request) if request.can_read_body else {}
        if not isinstance(body, dict):
            return invalid("the request body must be a JSON object")
        album_id = body.get("albumId")
        if not album_id:
            return self._newest_first(body.get("pageSize"), body.get("pageToken"))
        album = self.library.albums.get(str(album_id))
        if album is None:
            return invalid(NO_SUCH_ALBUM)
        try:
            size = page_size(body.get("pageSize"), default=LIST_PAGE[0], maximum=LIST_PAGE[1])
            start = int(body.get("pageToken") or 0)
        except ValueError:
            return invalid("pageSize and pageToken must be numbers")
        ids = album.media_item_ids[start : start + size]
        answer: dict[str, Any] = {"mediaItems": [self.library.items[i].to_api() for i in ids]}
        if start + size < len(album.media_item_ids):
            answer["nextPageToken"] = str(start + size)
        return web.json_response(answer)

    def _newest_first(self, size_text: object, token: object) -> web.Response:
        """One page of every item, newest first; the token names the last item seen, so that
        items created between pages neither shift nor repeat the older ones."""
        try:
            size = page_size(size_text, default=LIST_PAGE[0], maximum=LIST_PAGE[1])
            before = int(str(token).removeprefix("older-than-")) if token else None
        except ValueError:
            return invalid("Invalid page token.")
        rows: list[MediaItem] = [
            item for item in self.library.newest_first() if before is None or item.seq < before
        ]
        answer: dict[str, Any] = {"mediaItems": [item.to_api() for item in rows[:size]]}
        if len(rows) > size:
            answer["nextPageToken"] = f"older-than-{rows[size - 1].seq}"
        return web.json_response(answer)

    async def get_media_item(self, request: web.Request) -> web.Response:
        """``GET /v1/mediaItems/{id}``."""
        self.stats.google_calls["mediaItems.get"] += 1
        item = self.library.items.get(request.match_info["item_id"])
        return web.json_response(item.to_api()) if item is not None else not_found()


def _failure(token: str, code: int, message: str) -> dict[str, Any]:
    """A failed ``newMediaItemResults`` entry."""
    return {"uploadToken": token, "status": {"code": code, "message": message}}

"""App-created albums: create, list, get, batchAddMediaItems; deleted by their user at will."""

from __future__ import annotations

import secrets

from aiohttp import web

from q2google.sandbox.google.models import Album
from q2google.sandbox.google.resource import GoogleResource
from q2google.sandbox.google.wire import (
    ALBUM_ADD_SCOPES,
    MAX_BATCH,
    NO_SUCH_ALBUM,
    READ_SCOPES,
    WRITE_SCOPES,
    album_full_message,
    invalid,
    json_body,
    not_found,
    paged,
)

_ALBUM = "/v1/albums/{album_id:[^/:]+}"


class GoogleAlbums(GoogleResource):
    """``albums``: the app's albums, each holding up to ``album-cap`` items."""

    def routes(self) -> list[web.RouteDef]:
        """The albums routes, each behind its scopes."""
        guard = self.oauth.guard
        return [
            web.post("/v1/albums", guard(self.create_album, WRITE_SCOPES)),
            web.get("/v1/albums", guard(self.list_albums, READ_SCOPES)),
            web.get(_ALBUM, guard(self.get_album, READ_SCOPES)),
            web.post(f"{_ALBUM}:batchAddMediaItems", guard(self.add_to_album, ALBUM_ADD_SCOPES)),
        ]

    def control_routes(self) -> list[web.RouteDef]:
        """Routes under ``/_sandbox/google/`` that change the library (for subprocess tests)."""
        return [web.post("/_sandbox/google/albums/{album_id}/delete", self._delete_over_http)]

    def delete_album(self, album_id: str) -> Album:
        """Delete an album as its user would in Google Photos: its items stay in the library.

        Afterwards ``albums.get`` answers 404, ``albums.list`` omits it, and batchCreate or
        batchAddMediaItems naming it answer 400.

        Raises:
            KeyError: No such album.
        """
        return self.library.delete_album(album_id)

    async def create_album(self, request: web.Request) -> web.Response:
        """``POST /v1/albums``."""
        self.stats.google_calls["albums.create"] += 1
        body = await json_body(request)
        title = body.get("album", {}).get("title") if isinstance(body, dict) else None
        if not isinstance(title, str) or not title.strip():
            return invalid("album.title is required")
        album = Album("SBXA" + secrets.token_urlsafe(24), title)
        self.library.albums[album.id] = album
        return web.json_response(album.to_api())

    async def list_albums(self, request: web.Request) -> web.Response:
        """``GET /v1/albums``: app-created albums, paged."""
        self.stats.google_calls["albums.list"] += 1
        albums = list(self.library.albums.values())
        return paged(request, "albums", albums, default=20, maximum=50)

    async def get_album(self, request: web.Request) -> web.Response:
        """``GET /v1/albums/{id}``: 404 for an unknown or deleted album."""
        self.stats.google_calls["albums.get"] += 1
        album = self.library.albums.get(request.match_info["album_id"])
        return web.json_response(album.to_api()) if album is not None else not_found()

    async def add_to_album(self, request: web.Request) -> web.Response:
        """``POST /v1/albums/{id}:batchAddMediaItems``: up to 50 app-created items, all or none.

        An unknown or deleted album, an unknown item, or an album that would exceed its
        capacity fails the whole request with a 400, as Google documents.
        """
        self.stats.google_calls["albums.batchAddMediaItems"] += 1
        album_id = request.match_info["album_id"]
        album = self.library.albums.get(album_id)
        if album is None:
            if album_id in self.library.deleted_album_ids:
                self.stats.faults["album_deleted"] += 1
            return invalid(NO_SUCH_ALBUM)
        body = await json_body(request)
        ids = body.get("mediaItemIds") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_BATCH:
            return invalid(f"mediaItemIds must hold 1 to {MAX_BATCH} ids")
        if any(
            not isinstance(item_id, str) or item_id not in self.library.items for item_id in ids
        ):
            return invalid("Request contains an invalid media item id.")
        capacity = self.injector.config.album_capacity
        new = {item_id for item_id in ids if item_id not in album.media_item_ids}
        if len(album.media_item_ids) + len(new) > capacity:
            self.stats.faults["album_full"] += 1
            return invalid(album_full_message(capacity))
        for item_id in ids:
            self.library.add_to_album(album, self.library.items[item_id])
        return web.json_response({})

    async def _delete_over_http(self, request: web.Request) -> web.Response:
        album_id = request.match_info["album_id"]
        if album_id not in self.library.albums:
            return web.json_response({"error": f"no album {album_id}"}, status=404)
        self.delete_album(album_id)
        return web.json_response({"deleted": album_id})

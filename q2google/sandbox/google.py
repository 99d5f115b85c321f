"""Google's side: the OAuth token endpoint and the Photos Library API, as the wire shows them.

Uploads are hashed as they stream in and never stored: the library keeps each item's sha256
and size, which is what tests compare against the GoPro source.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, unquote_plus, urlencode

from aiohttp import web

from q2google.sandbox.faults import FaultInjector, SandboxStats, Throttle

GRANULARITY = 256 * 1024
"""``X-Goog-Upload-Chunk-Granularity``: every chunk but the last is a multiple of it."""
MAX_BATCH = 50
SCOPES = (
    "https://www.googleapis.com/auth/photoslibrary.appendonly",
    "https://www.googleapis.com/auth/photoslibrary.readonly.appcreateddata",
    "https://www.googleapis.com/auth/photoslibrary.edit.appcreateddata",
)
_READ_SIZE = 64 * 1024
Handler = Callable[[web.Request], Awaitable[web.Response]]


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


@dataclass(frozen=True)
class AuthorizationCode:
    """A consent the user gave: where to send the code, and the PKCE challenge to check."""

    redirect_uri: str
    code_challenge: str | None
    scope: str


@dataclass
class UploadSession:
    """A resumable upload: bytes confirmed so far and the hash of exactly those bytes."""

    upload_id: str
    raw_size: int | None
    content_type: str
    file_name: str | None
    committed: int = 0
    hasher: Any = field(default_factory=hashlib.sha256)
    final_token: str | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


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
    """An item of the emulated library."""

    id: str
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


class GooglePhotosService:
    """OAuth token endpoint and Photos Library API routes over an in-memory library."""

    def __init__(
        self,
        injector: FaultInjector,
        stats: SandboxStats,
        *,
        client_id: str,
        client_secret: str,
        refresh_token: str,
    ) -> None:
        self.injector = injector
        self.stats = stats
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_tokens = {refresh_token}
        self.codes: dict[str, AuthorizationCode] = {}
        self.access_tokens: dict[str, float] = {}
        self.items: dict[str, MediaItem] = {}
        self.items_by_sha256: dict[str, str] = {}
        self.albums: dict[str, Album] = {}
        self.uploads: dict[str, UploadSession] = {}
        self.upload_tokens: dict[str, UploadToken] = {}

    def routes(self) -> list[web.RouteDef]:
        """Return the routes to add to the sandbox application."""
        return [
            web.get("/o/oauth2/auth", self.authorize),
            web.post("/token", self.token),
            web.post("/v1/uploads", self.uploads_endpoint),
            web.post("/v1/mediaItems:batchCreate", self._authenticated(self.batch_create)),
            web.get("/v1/mediaItems", self._authenticated(self.list_media_items)),
            web.get("/v1/mediaItems/{item_id}", self._authenticated(self.get_media_item)),
            web.post("/v1/albums", self._authenticated(self.create_album)),
            web.get("/v1/albums", self._authenticated(self.list_albums)),
            web.get("/v1/albums/{album_id:[^/:]+}", self._authenticated(self.get_album)),
            web.post(
                "/v1/albums/{album_id:[^/:]+}:batchAddMediaItems",
                self._authenticated(self.add_to_album),
            ),
        ]

    def _authenticated(self, handler: Handler) -> Handler:
        """Wrap a Library API handler so it answers 401 without a valid access token."""

        async def guarded(request: web.Request) -> web.Response:
            denied = self._unauthenticated(request)
            return denied if denied is not None else await handler(request)

        return guarded

    # -- OAuth -----------------------------------------------------------------------------

    def issue_access_token(self) -> tuple[str, int]:
        """Mint an access token; returns it with its lifetime in seconds."""
        ttl = self.injector.config.access_token_ttl_seconds
        token = "ya29.sandbox-" + secrets.token_urlsafe(24)
        self.access_tokens[token] = time.monotonic() + ttl
        return token, max(1, int(ttl))

    def revoke_refresh_tokens(self) -> None:
        """Revoke every refresh token, as a user removing the app's access would."""
        self.refresh_tokens.clear()

    async def authorize(self, request: web.Request) -> web.Response:
        """``GET /o/oauth2/auth``: the consent screen, where the user always says yes.

        Redirects to the loopback ``redirect_uri`` with a one-time code, as Google does for
        installed apps.
        """
        query = request.query
        redirect_uri = query.get("redirect_uri", "")
        if query.get("client_id") != self.client_id:
            return web.json_response({"error": "invalid_client"}, status=401)
        if not redirect_uri.startswith(("http://localhost:", "http://127.0.0.1:")):
            return web.json_response({"error": "invalid_request: redirect_uri"}, status=400)
        if query.get("response_type") != "code" or not set(query.get("scope", "").split()):
            return web.json_response({"error": "invalid_request"}, status=400)
        code = "4/sandbox-" + secrets.token_urlsafe(24)
        self.codes[code] = AuthorizationCode(
            redirect_uri, query.get("code_challenge"), query.get("scope", "")
        )
        answer = urlencode({"code": code, "scope": query["scope"], "state": query.get("state", "")})
        raise web.HTTPFound(f"{redirect_uri}{'&' if '?' in redirect_uri else '?'}{answer}")

    def _invalid_client(self, request: web.Request, form: Mapping[str, Any]) -> web.Response | None:
        """Check the client's credentials: in the form, or as HTTP Basic (both are allowed)."""
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                decoded = base64.b64decode(header.removeprefix("Basic ")).decode()
            except ValueError:
                decoded = ""
            user, _, password = decoded.partition(":")
            client_id, client_secret = unquote_plus(user), unquote_plus(password)
        if client_id != self.client_id or client_secret != self.client_secret:
            return web.json_response(
                {"error": "invalid_client", "error_description": "The OAuth client was not found."},
                status=401,
            )
        return None

    def _exchange_code(self, form: Mapping[str, Any]) -> web.Response:
        """The ``authorization_code`` grant: a one-time code (PKCE-checked) for new tokens."""
        grant = self.codes.pop(str(form.get("code", "")), None)
        if grant is None or grant.redirect_uri != form.get("redirect_uri"):
            return web.json_response({"error": "invalid_grant"}, status=400)
        if grant.code_challenge is not None:
            verifier = str(form.get("code_verifier", "")).encode()
            digest = hashlib.sha256(verifier).digest()
            if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != grant.code_challenge:
                return web.json_response({"error": "invalid_grant: code_verifier"}, status=400)
        refresh_token = "1//sandbox-" + secrets.token_urlsafe(24)
        self.refresh_tokens.add(refresh_token)
        token, ttl = self.issue_access_token()
        return web.json_response(
            {
                "access_token": token,
                "expires_in": ttl,
                "refresh_token": refresh_token,
                "scope": grant.scope,
                "token_type": "Bearer",
            }
        )

    async def token(self, request: web.Request) -> web.Response:
        """``POST /token``: the ``authorization_code`` and ``refresh_token`` grants."""
        form = await request.post()
        grant_type = form.get("grant_type")
        if grant_type not in ("refresh_token", "authorization_code"):
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        refused = self._invalid_client(request, form)
        if refused is not None:
            return refused
        if grant_type == "authorization_code":
            return self._exchange_code(form)
        if form.get("refresh_token") not in self.refresh_tokens:
            return web.json_response(
                {
                    "error": "invalid_grant",
                    "error_description": "Token has been expired or revoked.",
                },
                status=400,
            )
        token, ttl = self.issue_access_token()
        return web.json_response(
            {
                "access_token": token,
                "expires_in": ttl,
                "scope": " ".join(SCOPES),
                "token_type": "Bearer",
            }
        )

    def _unauthenticated(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        expiry = self.access_tokens.get(token)
        if expiry is not None and time.monotonic() < expiry:
            return None
        if expiry is not None:
            self.stats.faults["access_token_expired"] += 1
        return google_error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, "
            "login cookie or other valid authentication credential.",
            headers={
                "WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", '
                'error="invalid_token"'
            },
        )

    # -- uploads ---------------------------------------------------------------------------

    async def uploads_endpoint(self, request: web.Request) -> web.Response:
        """``POST /v1/uploads``: raw upload, resumable start, or a session command."""
        self.stats.upload_requests += 1
        upload_id = request.query.get("upload_id")
        if upload_id is not None:
            return await self._session_command(request, upload_id)
        denied = self._unauthenticated(request)
        if denied is not None:
            return denied
        protocol = request.headers.get("X-Goog-Upload-Protocol", "raw").lower()
        content_type = request.headers.get("X-Goog-Upload-Content-Type", "application/octet-stream")
        file_name = _upload_file_name(request)
        if protocol == "raw":
            hasher, size = hashlib.sha256(), 0
            throttle = Throttle(self.injector.config.bandwidth_bytes_per_second)
            while piece := await request.content.read(_READ_SIZE):
                hasher.update(piece)
                size += len(piece)
                self.stats.upload_bytes_received += len(piece)
                await throttle.account(len(piece))
            token = self._new_upload_token(hasher.hexdigest(), size, content_type, file_name)
            return web.Response(text=token, content_type="text/plain")
        if protocol != "resumable" or _commands(request) != {"start"}:
            return google_error(
                400,
                "INVALID_ARGUMENT",
                "expected X-Goog-Upload-Protocol raw, or resumable with start",
            )
        raw_size_text = request.headers.get("X-Goog-Upload-Raw-Size")
        try:
            raw_size = int(raw_size_text) if raw_size_text is not None else None
        except ValueError:
            return google_error(400, "INVALID_ARGUMENT", "X-Goog-Upload-Raw-Size is not a number")
        session = UploadSession(secrets.token_urlsafe(18), raw_size, content_type, file_name)
        self.uploads[session.upload_id] = session
        url = (
            f"{request.scheme}://{request.host}/v1/uploads?upload_id={session.upload_id}"
            "&upload_protocol=resumable"
        )
        return web.Response(
            headers={
                "X-Goog-Upload-URL": url,
                "X-Goog-Upload-Chunk-Granularity": str(GRANULARITY),
                "X-Goog-Upload-Status": "active",
            }
        )

    def _new_upload_token(
        self, sha256: str, size: int, content_type: str, file_name: str | None
    ) -> str:
        token = "CAIS" + secrets.token_urlsafe(32)
        self.upload_tokens[token] = UploadToken(
            token, sha256, size, content_type, file_name, time.monotonic()
        )
        return token

    async def _session_command(self, request: web.Request, upload_id: str) -> web.Response:
        session = self.uploads.get(upload_id)
        if session is None:
            return google_error(404, "NOT_FOUND", "upload session not found")
        commands = _commands(request)
        status = {"X-Goog-Upload-Status": "final" if session.final_token else "active"}
        if commands == {"cancel"}:
            del self.uploads[upload_id]
            return web.Response(headers={"X-Goog-Upload-Status": "cancelled"})
        if commands == {"query"}:
            return web.Response(
                text=session.final_token or "",
                headers={**status, "X-Goog-Upload-Size-Received": str(session.committed)},
            )
        if "upload" not in commands or not commands <= {"upload", "finalize"}:
            return google_error(
                400,
                "INVALID_ARGUMENT",
                "X-Goog-Upload-Command must be upload, finalize, query or cancel",
            )
        try:
            offset = int(request.headers["X-Goog-Upload-Offset"])
        except (KeyError, ValueError):
            return google_error(400, "INVALID_ARGUMENT", "X-Goog-Upload-Offset is required")
        async with session.lock:  # one chunk at a time per session, offset checked under it
            if session.final_token:
                return web.Response(text=session.final_token, headers=status)
            if offset != session.committed:
                return google_error(
                    400,
                    "INVALID_ARGUMENT",
                    f"offset {offset} does not match {session.committed} received",
                    headers={**status, "X-Goog-Upload-Size-Received": str(session.committed)},
                )
            return await self._receive_chunk(request, session, finalize="finalize" in commands)

    async def _receive_chunk(
        self, request: web.Request, session: UploadSession, *, finalize: bool
    ) -> web.Response:
        """Stream a chunk into the session's hash, keeping whole granules only until final."""
        started_hash, started_at = session.hasher.copy(), session.committed
        expected = request.content_length
        reset_after = None
        if self.injector.roll("reset:upload", self.injector.config.reset_rate):
            rest = (session.raw_size or 4 * GRANULARITY) - session.committed
            span = expected if expected is not None else rest
            reset_after = max(1, int(span * self.injector.fraction()))
        throttle = Throttle(self.injector.config.bandwidth_bytes_per_second)
        pending = bytearray()
        read = 0
        while piece := await _read_or_none(request):
            read += len(piece)
            self.stats.upload_bytes_received += len(piece)
            pending += piece
            whole = len(pending) - len(pending) % GRANULARITY
            if whole:
                session.hasher.update(pending[:whole])
                session.committed += whole
                del pending[:whole]
            if session.raw_size is not None and session.committed + len(pending) > (
                session.raw_size
            ):
                session.hasher, session.committed = started_hash, started_at
                return google_error(400, "INVALID_ARGUMENT", "more bytes than the raw size")
            if reset_after is not None and read >= reset_after:
                transport = request.transport
                if transport is not None:
                    transport.abort()  # what was not a whole granule is lost, as on a real drop
                return web.Response(status=500)
            await throttle.account(len(piece))
        if expected is not None and read < expected:
            # The client went away midway (killed, network): keep the whole granules received,
            # as after a dropped connection; the rest of this request is lost.
            return web.Response(status=400, text="request body ended early")
        if not finalize:
            if pending:  # a non-final chunk must be a whole number of granules
                session.hasher, session.committed = started_hash, started_at
                return google_error(
                    400,
                    "INVALID_ARGUMENT",
                    f"chunk size must be a multiple of {GRANULARITY}",
                    headers={
                        "X-Goog-Upload-Status": "active",
                        "X-Goog-Upload-Size-Received": str(started_at),
                    },
                )
            return web.Response(
                headers={
                    "X-Goog-Upload-Status": "active",
                    "X-Goog-Upload-Size-Received": str(session.committed),
                }
            )
        session.hasher.update(pending)
        session.committed += len(pending)
        if session.raw_size is not None and session.committed != session.raw_size:
            size = session.committed
            session.hasher, session.committed = started_hash, started_at
            return google_error(
                400,
                "INVALID_ARGUMENT",
                f"finalized with {size} bytes, raw size is {session.raw_size}",
            )
        session.final_token = self._new_upload_token(
            session.hasher.hexdigest(), session.committed, session.content_type, session.file_name
        )
        return web.Response(
            text=session.final_token,
            content_type="text/plain",
            headers={"X-Goog-Upload-Status": "final"},
        )

    # -- media items -----------------------------------------------------------------------

    async def batch_create(self, request: web.Request) -> web.Response:
        """``POST /v1/mediaItems:batchCreate``: 1 to 50 upload tokens become media items."""
        body = await _json_body(request)
        new_items = body.get("newMediaItems") if isinstance(body, dict) else None
        if not isinstance(new_items, list) or not 1 <= len(new_items) <= MAX_BATCH:
            return google_error(
                400, "INVALID_ARGUMENT", f"newMediaItems must hold 1 to {MAX_BATCH} items"
            )
        album = None
        if body.get("albumId"):
            album = self.albums.get(body["albumId"])
            if album is None:
                return google_error(400, "INVALID_ARGUMENT", "albumId is not an app-created album")
        results, failures = [], 0
        for new_item in new_items:
            result = self._create_one(new_item, album)
            failures += "mediaItem" not in result
            results.append(result)
        return web.json_response({"newMediaItemResults": results}, status=207 if failures else 200)

    def _create_one(self, new_item: Any, album: Album | None) -> dict[str, Any]:
        simple = new_item.get("simpleMediaItem", {}) if isinstance(new_item, dict) else {}
        token_text = simple.get("uploadToken", "")
        token = self.upload_tokens.get(token_text)
        if token is None or token.used:
            return {
                "uploadToken": token_text,
                "status": {
                    "code": 3,
                    "message": "Failed: There was an error while trying to create this "
                    "media item (upload token invalid or already used).",
                },
            }
        if time.monotonic() - token.created > self.injector.config.upload_token_ttl_seconds:
            return {
                "uploadToken": token_text,
                "status": {"code": 3, "message": "Failed: the upload token has expired."},
            }
        if self.injector.roll("batch_item_failure", self.injector.config.batch_item_failure_rate):
            return {
                "uploadToken": token_text,
                "status": {"code": 13, "message": "Internal error: try again later."},
            }
        token.used = True
        existing = self.items.get(self.items_by_sha256.get(token.sha256, ""))
        if existing is not None:  # identical bytes: Google answers with the existing item
            existing.create_calls += 1
            item = existing
        else:
            item = MediaItem(
                id="SBX" + secrets.token_urlsafe(30),
                filename=simple.get("fileName") or token.file_name or "upload",
                description=new_item.get("description", ""),
                mime_type=token.content_type,
                sha256=token.sha256,
                size=token.size,
                creation_time=datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            )
            self.items[item.id] = item
            self.items_by_sha256[item.sha256] = item.id
        if album is not None and item.id not in album.media_item_ids:
            album.media_item_ids.append(item.id)
            item.album_ids.append(album.id)
        return {
            "uploadToken": token_text,
            "status": {"message": "Success"},
            "mediaItem": item.to_api(),
        }

    async def list_media_items(self, request: web.Request) -> web.Response:
        """``GET /v1/mediaItems``: the library, paged."""
        return _paged(request, "mediaItems", list(self.items.values()), default=25, maximum=100)

    async def get_media_item(self, request: web.Request) -> web.Response:
        """``GET /v1/mediaItems/{id}``."""
        item = self.items.get(request.match_info["item_id"])
        if item is None:
            return google_error(404, "NOT_FOUND", "Requested entity was not found.")
        return web.json_response(item.to_api())

    # -- albums ----------------------------------------------------------------------------

    async def create_album(self, request: web.Request) -> web.Response:
        """``POST /v1/albums``."""
        body = await _json_body(request)
        title = body.get("album", {}).get("title") if isinstance(body, dict) else None
        if not isinstance(title, str) or not title.strip():
            return google_error(400, "INVALID_ARGUMENT", "album.title is required")
        album = Album("SBXA" + secrets.token_urlsafe(24), title)
        self.albums[album.id] = album
        return web.json_response(album.to_api())

    async def list_albums(self, request: web.Request) -> web.Response:
        """``GET /v1/albums``: app-created albums, paged."""
        return _paged(request, "albums", list(self.albums.values()), default=20, maximum=50)

    async def get_album(self, request: web.Request) -> web.Response:
        """``GET /v1/albums/{id}``."""
        album = self.albums.get(request.match_info["album_id"])
        if album is None:
            return google_error(404, "NOT_FOUND", "Requested entity was not found.")
        return web.json_response(album.to_api())

    async def add_to_album(self, request: web.Request) -> web.Response:
        """``POST /v1/albums/{id}:batchAddMediaItems``: up to 50 app-created items."""
        album = self.albums.get(request.match_info["album_id"])
        if album is None:
            return google_error(404, "NOT_FOUND", "Requested entity was not found.")
        body = await _json_body(request)
        ids = body.get("mediaItemIds") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_BATCH:
            return google_error(
                400, "INVALID_ARGUMENT", f"mediaItemIds must hold 1 to {MAX_BATCH} ids"
            )
        if any(item_id not in self.items for item_id in ids):
            return google_error(
                400, "INVALID_ARGUMENT", "Request contains an invalid media item id."
            )
        for item_id in ids:
            if item_id not in album.media_item_ids:
                album.media_item_ids.append(item_id)
                self.items[item_id].album_ids.append(album.id)
        return web.json_response({})

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
        }


async def _read_or_none(request: web.Request) -> bytes:
    """The next piece of the body; empty when the client went away (as after a reset)."""
    try:
        return await request.content.read(_READ_SIZE)
    except ConnectionResetError:
        return b""


def _commands(request: web.Request) -> set[str]:
    header = request.headers.get("X-Goog-Upload-Command", "")
    return {part.strip().lower() for part in header.split(",") if part.strip()}


async def _json_body(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        return None


def _paged(
    request: web.Request,
    key: str,
    rows: list[MediaItem] | list[Album],
    *,
    default: int,
    maximum: int,
) -> web.Response:
    """Answer one page of ``rows`` under ``key``, with ``nextPageToken`` when more remain."""
    try:
        size = min(maximum, max(1, int(request.query.get("pageSize", default))))
        start = int(request.query.get("pageToken") or 0)
    except ValueError:
        return google_error(400, "INVALID_ARGUMENT", "pageSize and pageToken must be numbers")
    end = start + size
    body: dict[str, Any] = {key: [row.to_api() for row in rows[start:end]]}
    if end < len(rows):
        body["nextPageToken"] = str(end)
    return web.json_response(body)


def _upload_file_name(request: web.Request) -> str | None:
    """``X-Goog-Upload-File-Name``, percent-decoded (clients encode non-ASCII names in UTF-8)."""
    value = request.headers.get("X-Goog-Upload-File-Name")
    return unquote(value) if value is not None else None

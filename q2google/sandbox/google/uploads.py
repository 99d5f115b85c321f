"""Google's upload endpoint: raw and resumable uploads, hashed as they stream in, never stored.

A finished upload leaves an upload token in the library, for batchCreate to spend once.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from q2google.sandbox.faults import FaultInjector, SandboxStats, Throttle
from q2google.sandbox.google.models import PhotosLibrary, UploadToken
from q2google.sandbox.google.oauth import GoogleOAuth
from q2google.sandbox.google.resource import GoogleResource
from q2google.sandbox.google.wire import GRANULARITY, WRITE_SCOPES, google_error, invalid

_READ_SIZE = 64 * 1024


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


class GoogleUploads(GoogleResource):
    """``POST /v1/uploads``: the raw protocol, and the resumable one with its commands."""

    def __init__(
        self,
        injector: FaultInjector,
        stats: SandboxStats,
        oauth: GoogleOAuth,
        library: PhotosLibrary,
    ) -> None:
        super().__init__(injector, stats, oauth, library)
        self.uploads: dict[str, UploadSession] = {}

    def routes(self) -> list[web.RouteDef]:
        """The upload endpoint (session commands carry no bearer: the URL is the secret)."""
        return [web.post("/v1/uploads", self.uploads_endpoint)]

    async def uploads_endpoint(self, request: web.Request) -> web.Response:
        """``POST /v1/uploads``: raw upload, resumable start, or a session command."""
        self.stats.upload_requests += 1
        upload_id = request.query.get("upload_id")
        if upload_id is not None:
            return await self._session_command(request, upload_id)
        denied = self.oauth.denied(request, WRITE_SCOPES)
        if denied is not None:
            return denied
        protocol = request.headers.get("X-Goog-Upload-Protocol", "raw").lower()
        content_type = request.headers.get("X-Goog-Upload-Content-Type", "application/octet-stream")
        file_name = _upload_file_name(request)
        if protocol == "raw":
            hasher, size = hashlib.sha256(), 0
            throttle = Throttle(self.injector.config.bandwidth_bytes_per_second)
            while piece := await _read_or_none(request):
                hasher.update(piece)
                size += len(piece)
                self.stats.upload_bytes_received += len(piece)
                await throttle.account(len(piece))
            if request.content_length is not None and size != request.content_length:
                return invalid("the body ended before its Content-Length")  # the client left
            token = self._new_upload_token(hasher.hexdigest(), size, content_type, file_name)
            return web.Response(text=token, content_type="text/plain")
        if protocol != "resumable" or _commands(request) != {"start"}:
            return invalid("expected X-Goog-Upload-Protocol raw, or resumable with start")
        raw_size_text = request.headers.get("X-Goog-Upload-Raw-Size")
        try:
            raw_size = int(raw_size_text) if raw_size_text is not None else None
        except ValueError:
            return invalid("X-Goog-Upload-Raw-Size is not a number")
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
        self.library.upload_tokens[token] = UploadToken(
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
                return invalid("more bytes than the raw size")
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
            return invalid(f"finalized with {size} bytes, raw size is {session.raw_size}")
        session.final_token = self._new_upload_token(
            session.hasher.hexdigest(), session.committed, session.content_type, session.file_name
        )
        return web.Response(
            text=session.final_token,
            content_type="text/plain",
            headers={"X-Goog-Upload-Status": "final"},
        )


async def _read_or_none(request: web.Request) -> bytes:
    """The next piece of the body; empty when the client went away (as after a reset)."""
    try:
        return await request.content.read(_READ_SIZE)
    except ConnectionResetError:
        return b""


def _commands(request: web.Request) -> set[str]:
    header = request.headers.get("X-Goog-Upload-Command", "")
    return {part.strip().lower() for part in header.split(",") if part.strip()}


def _upload_file_name(request: web.Request) -> str | None:
    """``X-Goog-Upload-File-Name``, percent-decoded (clients encode non-ASCII names in UTF-8)."""
    value = request.headers.get("X-Goog-Upload-File-Name")
    return unquote(value) if value is not None else None

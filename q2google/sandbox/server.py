"""The sandbox server: GoPro cloud, CDN, Google OAuth and Photos on one local port.

Start it in a running event loop (``async with Sandbox(...)``), or in a thread of its own for
synchronous callers and subprocess tests (``with Sandbox(...).running_in_thread()``).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shlex
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from q2google.files import write_private_file
from q2google.sandbox.faults import FaultConfig, FaultInjector, SandboxStats
from q2google.sandbox.google import SCOPES, GooglePhotosService, google_error
from q2google.sandbox.gopro import GoProCloud
from q2google.sandbox.library import SandboxLibrary
from q2google.sandbox.media import SandboxMedia

T = TypeVar("T")
CLIENT_ID = "sandbox-client.apps.googleusercontent.com"


class Sandbox:
    """Local emulators of the GoPro cloud and Google Photos, with switchable faults.

    Args:
        library: The GoPro library to serve; :meth:`SandboxLibrary.demo` by default. The
            sandbox serves a copy: :meth:`delete_media` and the like change
            :attr:`library`, never the library passed in.
        faults: Faults to inject; none by default. Change later with :meth:`set_faults`.
        host: Address to listen on (loopback).
        port: Port to listen on; 0 picks a free one.
    """

    def __init__(
        self,
        library: SandboxLibrary | None = None,
        faults: FaultConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.library = (library or SandboxLibrary.demo()).copy()
        self.stats = SandboxStats()
        self.injector = FaultInjector(faults or FaultConfig(), self.stats)
        self._quota_day_start = 0  # Google requests seen before the quota's current day
        self.host, self.port = host, port
        self.gopro_token = "sandbox-gp-" + secrets.token_urlsafe(12)
        self.client_secret = "sandbox-secret-" + secrets.token_urlsafe(12)
        self.refresh_token = "1//sandbox-" + secrets.token_urlsafe(24)
        self.gopro = GoProCloud(
            self.library,
            self.injector,
            self.stats,
            access_token=self.gopro_token,
            signing_key=secrets.token_bytes(32),
        )
        self.google = GooglePhotosService(
            self.injector,
            self.stats,
            client_id=CLIENT_ID,
            client_secret=self.client_secret,
            refresh_token=self.refresh_token,
        )
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Origin every emulated service answers on, for example ``http://127.0.0.1:40123``."""
        if self._runner is None:
            raise RuntimeError("the sandbox is not running")
        return f"http://{self.host}:{self.port}"

    @property
    def faults(self) -> FaultConfig:
        """The faults in force."""
        return self.injector.config

    def set_faults(self, faults: FaultConfig | str) -> None:
        """Switch faults on or off while serving (a spec string or a :class:`FaultConfig`)."""
        config = FaultConfig.parse(faults) if isinstance(faults, str) else faults
        self.call(lambda: self.injector.configure(config))

    def build_app(self) -> web.Application:
        """Return the aiohttp application serving every emulated endpoint."""
        app = web.Application(middlewares=[self._middleware])
        app.add_routes(self.gopro.routes())
        app.add_routes(self.gopro.control_routes())
        app.add_routes(self.google.routes())
        app.add_routes(self.google.control_routes())
        app.add_routes(
            [
                web.get("/_sandbox/library", self._inspect_library),
                web.get("/_sandbox/stats", self._inspect_stats),
                web.get("/_sandbox/faults", self._inspect_faults),
                web.post("/_sandbox/faults", self._change_faults),
            ]
        )
        return app

    async def start(self) -> None:
        """Start serving on ``host:port`` (the chosen port is in :attr:`port` after)."""
        self._runner = web.AppRunner(
            self.build_app(), access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._loop = asyncio.get_running_loop()

    async def stop(self) -> None:
        """Stop serving and close every connection."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @contextmanager
    def running_in_thread(self) -> Iterator[Sandbox]:
        """Serve from a background thread with its own event loop, for the ``with`` block."""
        loop = asyncio.new_event_loop()
        started = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                try:
                    loop.run_until_complete(self.start())
                except BaseException as error:  # reported to the caller below
                    failure.append(error)
                    return
                finally:
                    started.set()
                loop.run_forever()
            finally:
                loop.run_until_complete(self.stop())
                pending = asyncio.all_tasks(loop)
                for task in pending:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        thread = threading.Thread(target=serve, name="q2google-sandbox", daemon=True)
        thread.start()
        started.wait()
        if failure:
            raise failure[0]
        try:
            yield self
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)
            if thread.is_alive():
                raise RuntimeError("the sandbox thread did not stop within 30 s")

    def call(self, function: Callable[[], T]) -> T:
        """Run ``function`` on the sandbox's event loop and return its result.

        Use it from another thread to read or change emulator state consistently.
        """
        loop = self._loop
        if loop is None or not loop.is_running() or _running_loop() is loop:
            return function()

        async def wrapper() -> T:
            return function()

        return asyncio.run_coroutine_threadsafe(wrapper(), loop).result(timeout=30)

    # -- the GoPro cloud, changed while serving ---------------------------------------------

    def delete_media(self, media_id: str) -> SandboxMedia:
        """Delete a media: search stops listing it; its download and CDN files answer 404.

        Raises:
            KeyError: No such media.
        """
        return self.call(lambda: self.library.remove(media_id))

    def add_media(self, media: SandboxMedia) -> None:
        """Add a media to the GoPro library (as if just uploaded).

        Raises:
            ValueError: Its id is already in the library.
        """
        self.call(lambda: self.library.add(media))

    def set_ready(self, media_id: str, state: str = "ready") -> SandboxMedia:
        """Put a media in processing state ``state``; ``ready`` makes all its files available.

        Raises:
            KeyError: No such media.
        """
        return self.call(lambda: self.library.set_state(media_id, state))

    def issue_gopro_token(self) -> str:
        """Issue a fresh GoPro token, also kept in :attr:`gopro_token`, and return it."""
        self.gopro_token = self.call(self.gopro.issue_token)
        return self.gopro_token

    def revoke_gopro_token(self) -> None:
        """Make every GoPro token issued so far invalid at once (the API answers 401)."""
        self.call(self.gopro.revoke_tokens)

    # -- Google Photos, changed while serving ----------------------------------------------

    def new_quota_day(self) -> None:
        """Start a new day of the daily request quota (``quota=N``): Google's midnight,
        Pacific time, when its count starts again."""
        self._quota_day_start = self.stats.requests["photos"] + self.stats.requests["uploads"]

    def delete_album(self, album_id: str) -> None:
        """Delete an album as its user would in Google Photos; its items stay in the library.

        ``albums.get`` answers 404 after, ``albums.list`` omits it, and batchCreate or
        batchAddMediaItems naming it answer 400 ("The provided ID does not match any albums.").

        Raises:
            KeyError: No such album.
        """
        self.call(lambda: self.google.delete_album(album_id))

    # -- client configuration --------------------------------------------------------------

    def write_token_file(self, path: str | os.PathLike[str]) -> Path:
        """Write a google-auth authorized-user token file (mode 0600) for this sandbox.

        Returns:
            The path written.
        """
        path = Path(path)
        token, ttl = self.call(self.google.issue_access_token)
        expiry = datetime.now(UTC) + timedelta(seconds=ttl)
        data = {
            "token": token,
            "refresh_token": self.refresh_token,
            "token_uri": f"{self.url}/token",
            "client_id": CLIENT_ID,
            "client_secret": self.client_secret,
            "scopes": list(SCOPES),
            "universe_domain": "googleapis.com",
            "account": "",
            "expiry": expiry.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        write_private_file(path, json.dumps(data, indent=2))
        return path

    def write_client_secrets(self, path: str | os.PathLike[str]) -> Path:
        """Write an OAuth client (Desktop app) file for ``q2google auth google``.

        Returns:
            The path written.
        """
        path = Path(path)
        installed = {
            "client_id": CLIENT_ID,
            "client_secret": self.client_secret,
            "auth_uri": f"{self.url}/o/oauth2/auth",
            "token_uri": f"{self.url}/token",
            "redirect_uris": ["http://localhost"],
        }
        write_private_file(path, json.dumps({"installed": installed}, indent=2))
        return path

    def environment(self, token_file: str | os.PathLike[str]) -> dict[str, str]:
        """Variables that point gopro-api and q2google at this sandbox."""
        return {
            "GP_ACCESS_TOKEN": self.gopro_token,
            "Q2GOOGLE_GOPRO_API_URL": self.url,
            "Q2GOOGLE_PHOTOS_API_URL": self.url,
            "Q2GOOGLE_GOOGLE_TOKEN_FILE": str(token_file),
        }

    def export_lines(self, token_file: str | os.PathLike[str]) -> str:
        """``export NAME=value`` lines a shell can source."""
        return "".join(
            f"export {name}={shlex.quote(value)}\n"
            for name, value in self.environment(token_file).items()
        )

    # -- faults and counters ---------------------------------------------------------------

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        path = request.path
        if path.startswith("/_sandbox/"):
            return await handler(request)
        group = _route_group(path)
        self.stats.requests[group] += 1
        if group == "cdn":
            self.stats.cdn_requests[request.method] += 1
        config = self.injector.config
        if config.latency_seconds:
            await asyncio.sleep(config.latency_seconds)
        if group in ("photos", "uploads") and config.daily_quota_requests is not None:
            used = self.stats.requests["photos"] + self.stats.requests["uploads"]
            if used - self._quota_day_start > config.daily_quota_requests:
                self.stats.faults["quota"] += 1
                return google_error(
                    429,
                    "RESOURCE_EXHAUSTED",
                    "Quota exceeded for quota metric 'All requests' and limit 'All requests per "
                    "day' of service 'photoslibrary.googleapis.com'.",
                    details=[
                        {
                            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                            "reason": "RATE_LIMIT_EXCEEDED",
                            "domain": "googleapis.com",
                            "metadata": {
                                "quota_limit": "ApiCallsPerProjectPerDay",
                                "service": "photoslibrary.googleapis.com",
                            },
                        }
                    ],
                )
        if (group == "uploads" and self.injector.in_burst("429")) or self.injector.roll(
            "429", config.rate_limit_rate
        ):
            headers = {"Retry-After": str(config.retry_after_seconds)}
            if group in ("photos", "uploads"):
                return google_error(
                    429,
                    "RESOURCE_EXHAUSTED",
                    "Quota exceeded for quota metric 'Write requests' and limit "
                    "'Write requests per minute per user'.",
                    headers=headers,
                )
            return web.json_response({"error": "Too Many Requests"}, status=429, headers=headers)
        if self.injector.roll("5xx", config.server_error_rate):
            if group in ("photos", "uploads"):
                return google_error(503, "UNAVAILABLE", "The service is currently unavailable.")
            return web.json_response({"error": "Service Unavailable"}, status=503)
        return await handler(request)

    async def _inspect_library(self, request: web.Request) -> web.Response:
        return web.json_response(self.google.snapshot())

    async def _inspect_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats.as_dict())

    async def _inspect_faults(self, request: web.Request) -> web.Response:
        return web.json_response(self.faults.as_dict())

    async def _change_faults(self, request: web.Request) -> web.Response:
        try:
            self.set_faults(FaultConfig.parse(await request.text()))
        except ValueError as error:
            return web.json_response({"error": str(error)}, status=400)
        return web.json_response(self.faults.as_dict())

    def snapshot(self) -> dict[str, Any]:
        """The emulated Google library (items with sha256, albums), safe from any thread."""
        return self.call(self.google.snapshot)


def _route_group(path: str) -> str:
    if path.startswith("/media/"):
        return "gopro"
    if path.startswith("/cdn/"):
        return "cdn"
    if path == "/token":
        return "oauth"
    if path.startswith("/v1/uploads"):
        return "uploads"
    return "photos"


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None

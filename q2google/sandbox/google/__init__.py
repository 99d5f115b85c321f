"""Google's side: the OAuth token endpoint and the Photos Library API, as the wire shows them.

Split by concept: :mod:`.oauth` (consent, tokens, scopes), :mod:`.uploads` (raw and resumable
uploads, hashed as they stream in and never stored), :mod:`.media_items` (batchCreate and its
faults, listing) and :mod:`.albums`, over one :class:`~.models.PhotosLibrary`. The library
keeps each item's sha256 and size, which is what tests compare against the GoPro source.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from aiohttp import web

from q2google.sandbox.faults import FaultInjector, SandboxStats
from q2google.sandbox.google.albums import GoogleAlbums
from q2google.sandbox.google.media_items import GoogleMediaItems
from q2google.sandbox.google.models import Album, MediaItem, PhotosLibrary, UploadToken
from q2google.sandbox.google.oauth import AccessToken, GoogleOAuth
from q2google.sandbox.google.uploads import GoogleUploads
from q2google.sandbox.google.wire import GRANULARITY, MAX_BATCH, SCOPES, google_error

__all__ = [
    "GRANULARITY",
    "MAX_BATCH",
    "SCOPES",
    "Album",
    "GooglePhotosService",
    "MediaItem",
    "UploadToken",
    "google_error",
]


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
        self.library = PhotosLibrary()
        self.oauth = GoogleOAuth(
            injector,
            stats,
            client_id=client_id,
            client_secret=client_secret,
            refresh_token=refresh_token,
        )
        self.uploads = GoogleUploads(injector, stats, self.oauth, self.library)
        self.media_items = GoogleMediaItems(injector, stats, self.oauth, self.library)
        self.albums = GoogleAlbums(injector, stats, self.oauth, self.library)

    def routes(self) -> list[web.RouteDef]:
        """Return the routes to add to the sandbox application."""
        return [
            *self.oauth.routes(),
            *self.uploads.routes(),
            *self.media_items.routes(),
            *self.albums.routes(),
        ]

    def control_routes(self) -> list[web.RouteDef]:
        """Routes under ``/_sandbox/google/`` that change the library."""
        return self.albums.control_routes()

    # -- what tests and the sandbox reach directly -----------------------------------------

    @property
    def client_id(self) -> str:
        """The OAuth client the sandbox accepts."""
        return self.oauth.client_id

    @property
    def refresh_tokens(self) -> dict[str, tuple[str, ...]]:
        """Valid refresh tokens, each with its scopes."""
        return self.oauth.refresh_tokens

    @property
    def access_tokens(self) -> dict[str, AccessToken]:
        """Access tokens issued, each with its expiry and scopes."""
        return self.oauth.access_tokens

    def issue_access_token(self, scopes: Collection[str] = SCOPES) -> tuple[str, int]:
        """Mint an access token granting ``scopes``; returns it with its lifetime in seconds."""
        return self.oauth.issue_access_token(scopes)

    def revoke_refresh_tokens(self) -> None:
        """Revoke every refresh token, as a user removing the app's access would."""
        self.oauth.revoke_refresh_tokens()

    def delete_album(self, album_id: str) -> Album:
        """Delete an album as its user would; its items stay in the library.

        Raises:
            KeyError: No such album.
        """
        return self.albums.delete_album(album_id)

    def snapshot(self) -> dict[str, Any]:
        """The library for inspection: items with the sha256 of their bytes, and albums."""
        return self.library.snapshot()

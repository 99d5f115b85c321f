"""What every group of emulated Library API routes stands on: faults, stats, OAuth, library."""

from __future__ import annotations

from q2google.sandbox.faults import FaultInjector, SandboxStats
from q2google.sandbox.google.models import PhotosLibrary
from q2google.sandbox.google.oauth import GoogleOAuth


class GoogleResource:
    """One group of routes (uploads, media items, albums) over the shared emulator state.

    Args:
        injector: The fault dice.
        stats: Counters of what the sandbox saw.
        oauth: Access tokens and their scopes (routes are guarded by it).
        library: The emulated Google Photos library.
    """

    def __init__(
        self,
        injector: FaultInjector,
        stats: SandboxStats,
        oauth: GoogleOAuth,
        library: PhotosLibrary,
    ) -> None:
        self.injector = injector
        self.stats = stats
        self.oauth = oauth
        self.library = library

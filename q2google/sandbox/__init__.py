"""Local emulators of the GoPro cloud and Google Photos, for the tests and for users.

They answer with the real services' shapes (the GoPro cloud's proxies, chapters, covers,
edits and float frame rates included) so that q2google's clients run against them unchanged,
and they inject faults (5xx, 429, dropped connections, expiring URLs and tokens, slow links)
on demand.
Requires aiohttp, which gopro-api brings.
"""

from q2google.sandbox.assets import SandboxAsset
from q2google.sandbox.faults import FaultConfig, SandboxStats
from q2google.sandbox.library import SandboxLibrary
from q2google.sandbox.media import SandboxMedia
from q2google.sandbox.server import Sandbox

__all__ = [
    "FaultConfig",
    "Sandbox",
    "SandboxAsset",
    "SandboxLibrary",
    "SandboxMedia",
    "SandboxStats",
]

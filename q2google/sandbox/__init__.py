"""Local emulators of the GoPro cloud and Google Photos, for the tests and for users.

They speak the real services' wire formats closely enough that gopro-api's
``AsyncGoProClient`` and q2google's Google client run against them unchanged, and they inject
faults (5xx, 429, dropped connections, expiring URLs and tokens, slow links) on demand.
Requires aiohttp, which gopro-api brings.
"""

from q2google.sandbox.faults import FaultConfig, SandboxStats
from q2google.sandbox.library import SandboxAsset, SandboxLibrary, SandboxMedia
from q2google.sandbox.server import Sandbox

__all__ = [
    "FaultConfig",
    "Sandbox",
    "SandboxAsset",
    "SandboxLibrary",
    "SandboxMedia",
    "SandboxStats",
]

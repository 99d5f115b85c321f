"""The GoPro side: gopro-api's client (:mod:`~q2google.gopro.client`), the source protocol
the pipeline uses (:mod:`~q2google.gopro.source`), its implementation over the GoPro cloud
(:mod:`~q2google.gopro.library`) and the knowledge of the cloud's answers
(:mod:`~q2google.gopro.shapes`)."""

from q2google.gopro.client import GoProCloudClient
from q2google.gopro.library import GoProLibrary
from q2google.gopro.source import (
    GoProAnswerError,
    GoProFile,
    GoProSource,
    MediaGoneError,
    MediaRow,
    SearchPage,
    Verdict,
)

__all__ = [
    "GoProAnswerError",
    "GoProCloudClient",
    "GoProFile",
    "GoProLibrary",
    "GoProSource",
    "MediaGoneError",
    "MediaRow",
    "SearchPage",
    "Verdict",
]

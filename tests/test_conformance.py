"""The two ports' conformance suites, against the sandbox; against the real clouds on request.

``Q2GOOGLE_LIVE=1`` (with ``GP_ACCESS_TOKEN``, a Google token file from ``q2google auth
google`` and ``Q2GOOGLE_LIVE_START`` / ``Q2GOOGLE_LIVE_END`` naming a window that holds a few
media) runs the same tests against the GoPro cloud and Google Photos. See docs/testing.md.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from q2google.config import Q2GoogleSettings, get_settings
from q2google.gopro import GoProCloudClient, GoProLibrary, GoProSource
from q2google.photos import GooglePhotoLibraryPort, GooglePhotosClient
from q2google.retry import RetryPolicy
from q2google.sandbox import Sandbox
from q2google.testing.remote import GooglePhotosPortContract, GoProSourceContract

LIVE = os.environ.get("Q2GOOGLE_LIVE") == "1"
FAST = RetryPolicy(attempts=3, initial_seconds=0.05, max_seconds=0.2, jitter_seconds=0.01)
TARGETS = [
    "sandbox",
    pytest.param(
        "live",
        marks=pytest.mark.skipif(
            not LIVE, reason="live clouds: set Q2GOOGLE_LIVE=1 (docs/testing.md)"
        ),
    ),
]


@pytest.fixture(params=TARGETS)
def target(request: pytest.FixtureRequest) -> str:
    """Where the suites run: the sandbox always, the real services with Q2GOOGLE_LIVE=1."""
    name: str = request.param
    return name


@pytest.fixture
def cloud(target: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """Settings and the GoPro token for the target."""
    if target == "live":
        settings = get_settings()
        token = os.environ.get("GP_ACCESS_TOKEN", "")
        if not token:
            pytest.fail("Q2GOOGLE_LIVE=1 needs GP_ACCESS_TOKEN")
        start = datetime.fromisoformat(os.environ.get("Q2GOOGLE_LIVE_START", "2024-01-01"))
        end = datetime.fromisoformat(os.environ.get("Q2GOOGLE_LIVE_END", "2024-12-31"))
        yield Target(settings, token, (start.replace(tzinfo=UTC), end.replace(tzinfo=UTC)))
        return
    sandbox: Sandbox = request.getfixturevalue("sandbox")
    settings = Q2GoogleSettings(
        gopro_api_url=sandbox.url,
        photos_api_url=sandbox.url,
        google_token_file=sandbox.write_token_file(tmp_path / "token.json"),
        state_dir=tmp_path / "state",
    )
    window = (datetime(2023, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC))
    yield Target(settings, sandbox.gopro_token, window)


class Target:
    """What a target needs: settings, GoPro token and a capture window with media."""

    def __init__(
        self, settings: Q2GoogleSettings, token: str, window: tuple[datetime, datetime]
    ) -> None:
        self.settings, self.token, self.window = settings, token, window


class TestGoProSource(GoProSourceContract):
    @pytest.fixture
    async def gopro_source(self, cloud: Target) -> AsyncIterator[GoProSource]:
        async with GoProCloudClient.from_settings(
            cloud.settings, access_token=cloud.token
        ) as client:
            yield GoProLibrary(client, policy=FAST)

    @pytest.fixture
    async def refused_gopro_source(self, cloud: Target) -> AsyncIterator[GoProSource]:
        async with GoProCloudClient.from_settings(
            cloud.settings, access_token="q2google-contract-refused-token"
        ) as client:
            yield GoProLibrary(client, policy=FAST)

    @pytest.fixture
    def gopro_window(self, cloud: Target) -> tuple[datetime, datetime]:
        return cloud.window

    @pytest.fixture
    async def cdn(self) -> AsyncIterator[httpx.AsyncClient]:
        async with httpx.AsyncClient(timeout=60, follow_redirects=True) as client:
            yield client


class TestGooglePhotosPort(GooglePhotosPortContract):
    @pytest.fixture
    async def photos(self, cloud: Target) -> AsyncIterator[GooglePhotoLibraryPort]:
        async with GooglePhotosClient.from_settings(cloud.settings) as client:
            yield client

    @pytest.fixture
    def album_title(self) -> str:
        return "q2google conformance"

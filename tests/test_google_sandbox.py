"""GooglePhotosClient against the sandbox: real HTTP, faults on, bytes checked end to end."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from q2google.config import Q2GoogleSettings
from q2google.gphotos.models import GoogleAuthError
from q2google.gphotos.oauth import GooglePhotosOAuth
from q2google.photos import GooglePhotosClient, NewItemSpec
from q2google.retry import RetryPolicy
from q2google.sandbox import Sandbox, SandboxAsset
from q2google.sandbox.library import KIB, MIB
from q2google.testing.memory import peak_rss_mib, reset_peak_rss

FAST = RetryPolicy(attempts=10, initial_seconds=0.05, max_seconds=0.5, jitter_seconds=0.05)
NIGHT = "5xx=0.1,429=0.05,reset=0.05,token-ttl=3,retry-after=1,seed=11"


def _client(sandbox: Sandbox, tmp_path: Path, chunk: int = 64 * MIB) -> GooglePhotosClient:
    token_file = sandbox.write_token_file(tmp_path / "google-token.json")
    settings = Q2GoogleSettings(
        photos_api_url=sandbox.url, google_token_file=token_file, upload_chunk_size_bytes=chunk
    )
    client = GooglePhotosClient.from_settings(settings)
    client.policy = client.api.policy = FAST
    return client


def _stream(asset: SandboxAsset) -> object:
    async def read(offset: int) -> AsyncIterator[bytes]:
        for piece in asset.read(offset):
            yield piece

    return read


@pytest.mark.slow
@pytest.mark.sandbox(faults=NIGHT)
async def test_a_long_night_twenty_uploads_one_of_300_mib_all_land(
    sandbox: Sandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sizes = (
        [1, 1000, 256 * KIB, 256 * KIB + 1, 3 * MIB + 17]
        + [(n + 1) * 137 * KIB for n in range(14)]
        + [300 * MIB]
    )
    assets = [
        SandboxAsset(f"a{n}", f"F{n:03d}.JPG", size, 1000 + n, "image/jpeg")
        for n, size in enumerate(sizes)
    ]
    before = reset_peak_rss()
    async with _client(sandbox, tmp_path, chunk=32 * MIB) as client:
        specs = []
        for asset in assets:
            token = await client.upload(
                _stream(asset),  # type: ignore[arg-type]
                size=asset.size,
                file_name=asset.file_name,
                mime_type=asset.content_type,
            )
            specs.append(NewItemSpec(token, asset.file_name, f"from GoPro {asset.asset_id}"))
        album = await client.find_or_create_album("Night run")
        results = await client.create_media_items(specs, album_id=album)
    grown = peak_rss_mib() - before

    assert [result.ok for result in results] == [True] * len(assets)
    library = sandbox.snapshot()
    stored = sorted(item["sha256"] for item in library["mediaItems"])
    assert stored == sorted(asset.sha256() for asset in assets)
    assert len(library["albums"][0]["mediaItemIds"]) == len(assets)
    faults = sandbox.stats.faults
    assert faults["5xx"], faults
    assert faults["429"], faults  # resets: see the next test, whose dice are reproducible
    assert sandbox.stats.requests["oauth"] >= 1
    assert grown < 64, f"a 300 MiB streamed upload grew the peak RSS by {grown:.0f} MiB"

    secrets = [sandbox.refresh_token, sandbox.client_secret, *sandbox.google.access_tokens]
    text = caplog.text + json.dumps([r.to_api() for r in results])
    assert not [secret for secret in secrets if secret in text], "a token reached the logs"
    assert "retrying upload of" in caplog.text, "retries are logged at debug"


@pytest.mark.sandbox(faults="reset=0.3,seed=3")
async def test_uploads_survive_connections_dropped_midway(sandbox: Sandbox, tmp_path: Path) -> None:
    # Only the reset dice are rolled and requests are sequential: the run is reproducible.
    asset = SandboxAsset("big", "GX010001.MP4", 40 * MIB + 3, 77, "video/mp4")
    async with _client(sandbox, tmp_path, chunk=4 * MIB) as client:
        token = await client.upload(
            _stream(asset),  # type: ignore[arg-type]
            size=asset.size,
            file_name=asset.file_name,
            mime_type=asset.content_type,
        )
        (result,) = await client.create_media_items([NewItemSpec(token, asset.file_name)])
    assert result.ok
    assert sandbox.stats.faults["reset:upload"] >= 2
    assert sandbox.snapshot()["mediaItems"][0]["sha256"] == asset.sha256()
    resent = sandbox.stats.upload_bytes_received - asset.size
    assert 0 < resent < sandbox.stats.faults["reset:upload"] * 4 * MIB


async def test_refresh_writes_the_new_token_back_0600(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.set_faults("token-ttl=1")
    path = sandbox.write_token_file(tmp_path / "token.json")
    first = json.loads(path.read_text())["token"]
    oauth = GooglePhotosOAuth(path, policy=FAST)
    token = await oauth.access_token()  # one second left: refreshed at once
    assert token != first
    assert json.loads(path.read_text())["token"] == token
    assert path.stat().st_mode & 0o777 == 0o600
    assert token not in repr(oauth)


async def test_revoked_refresh_token_says_which_command_fixes_it(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    path = sandbox.write_token_file(tmp_path / "token.json")
    sandbox.call(sandbox.google.revoke_refresh_tokens)
    oauth = GooglePhotosOAuth(path, policy=FAST)
    with pytest.raises(GoogleAuthError, match=r"invalid_grant.*q2google auth google") as caught:
        await oauth.refresh()
    assert sandbox.refresh_token not in str(caught.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no Google token at"),
        ("{not json", "cannot read the Google token"),
        ('{"token": "x"}', "not a Google authorized-user token"),
    ],
)
async def test_unusable_token_files_are_one_clear_line(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "token.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(GoogleAuthError, match=message) as caught:
        await GooglePhotosOAuth(path).access_token()
    assert "q2google auth google" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_login_needs_a_real_client_secrets_file(tmp_path: Path) -> None:
    oauth = GooglePhotosOAuth(tmp_path / "token.json")
    with pytest.raises(GoogleAuthError, match="no OAuth client secrets"):
        oauth.login(tmp_path / "missing.json", headless=True)
    (tmp_path / "bad.json").write_text('{"web": {}}')
    with pytest.raises(GoogleAuthError, match="not an OAuth client secrets file"):
        oauth.login(tmp_path / "bad.json", headless=True)
    assert not (tmp_path / "token.json").exists()


async def test_no_token_in_any_repr(sandbox: Sandbox, tmp_path: Path) -> None:
    client = _client(sandbox, tmp_path)
    async with client:
        token = await client.api._tokens.access_token()
        texts = [repr(client.api), repr(client.api._tokens), repr(client)]
    assert not [text for text in texts if token in text or sandbox.refresh_token in text]

"""Every fault kind the sandbox offers, seen firing."""

from __future__ import annotations

import os
import time

import httpx
import pytest

from q2google.sandbox import FaultConfig, Sandbox
from q2google.sandbox.google import GRANULARITY
from tests.test_sandbox_google import create, query, raw_upload, send, start_upload
from tests.test_sandbox_gopro import download_json, entry_urls


def _cdn_url(http: httpx.Client, sandbox: Sandbox) -> str:
    """The CDN URL of the first chapter of a video (over 2 MiB in the demo library)."""
    media = next(m for m in sandbox.library.media if m.type == "Video")
    urls = entry_urls(download_json(http, sandbox, media.media_id))
    return urls[media.originals[0].asset_id]


def test_fault_spec_parsing() -> None:
    config = FaultConfig.parse(
        "5xx=0.1,429=0.05,reset=0.2,token-ttl=3,bandwidth=10MiB,seed=4,"
        "quota=100,latency=0.01,item-failure=0.3,url-ttl=60,gopro-token-ttl=5"
    )
    assert config.gopro_token_ttl_seconds == 5.0
    assert FaultConfig().gopro_token_ttl_seconds is None
    assert config.server_error_rate == 0.1
    assert config.rate_limit_rate == 0.05
    assert config.reset_rate == 0.2
    assert config.access_token_ttl_seconds == 3
    assert config.bandwidth_bytes_per_second == 10 * 1024 * 1024
    assert config.daily_quota_requests == 100
    with pytest.raises(ValueError, match="expected key=value"):
        FaultConfig.parse("nonsense=1")
    with pytest.raises(ValueError, match="not a number"):
        FaultConfig.parse("5xx=lots")


@pytest.mark.sandbox(faults="5xx=1.0")
def test_server_errors(sandbox: Sandbox, http: httpx.Client, bearer: dict[str, str]) -> None:
    photos = http.get("/v1/mediaItems", headers=bearer)
    assert photos.status_code == 503
    assert photos.json()["error"]["status"] == "UNAVAILABLE"
    assert http.get("/media/search").status_code == 503
    assert sandbox.stats.faults["5xx"] == 2


@pytest.mark.sandbox(faults="429=1.0,retry-after=7")
def test_rate_limits_carry_retry_after(
    sandbox: Sandbox, http: httpx.Client, bearer: dict[str, str]
) -> None:
    response = http.get("/v1/albums", headers=bearer)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert response.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert sandbox.stats.faults["429"] == 1


def test_seeded_rates_are_roughly_kept_and_reproducible(
    sandbox: Sandbox, http: httpx.Client
) -> None:
    def run() -> list[int]:
        sandbox.set_faults("5xx=0.3,seed=42")
        return [http.get("/media/search").status_code for _ in range(200)]

    first, second = run(), run()
    assert first == second
    assert 40 <= first.count(503) <= 80


@pytest.mark.sandbox(faults="reset=1.0")
def test_cdn_connection_reset_midway(sandbox: Sandbox, http: httpx.Client) -> None:
    url = _cdn_url(http, sandbox)
    sent_before = sandbox.stats.cdn_bytes_sent
    with pytest.raises(httpx.TransportError):
        http.get(url)
    assert sandbox.stats.faults["reset:cdn"] == 1
    assert sandbox.stats.cdn_bytes_sent > sent_before


@pytest.mark.sandbox(faults="reset=1.0")
def test_upload_connection_reset_midway_keeps_whole_granules(
    sandbox: Sandbox, http: httpx.Client, bearer: dict[str, str]
) -> None:
    data = os.urandom(8 * GRANULARITY)
    url = start_upload(http, bearer, len(data))
    with pytest.raises(httpx.TransportError):
        send(http, url, data, 0, finalize=True)
    assert sandbox.stats.faults["reset:upload"] == 1
    sandbox.set_faults(FaultConfig())
    received = int(query(http, url).headers["X-Goog-Upload-Size-Received"])
    assert received % GRANULARITY == 0
    assert received < len(data)
    final = send(http, url, data[received:], received, finalize=True)
    assert final.status_code == 200
    assert create(http, bearer, final.text).status_code == 200


@pytest.mark.sandbox(faults="url-ttl=0")
def test_cdn_urls_expire(sandbox: Sandbox, http: httpx.Client) -> None:
    url = _cdn_url(http, sandbox)
    time.sleep(1.1)
    expired = http.get(url)
    assert expired.status_code == 403
    assert "expired" in expired.text
    assert sandbox.stats.faults["cdn_url_expired"] == 1


@pytest.mark.sandbox(faults="token-ttl=1")
def test_access_tokens_expire(sandbox: Sandbox, http: httpx.Client, bearer: dict[str, str]) -> None:
    assert http.get("/v1/albums", headers=bearer).status_code == 200
    time.sleep(1.1)
    assert http.get("/v1/albums", headers=bearer).status_code == 401
    assert sandbox.stats.faults["access_token_expired"] == 1


@pytest.mark.sandbox(faults="item-failure=1.0")
def test_batch_create_item_failures_are_transient(
    sandbox: Sandbox, http: httpx.Client, bearer: dict[str, str]
) -> None:
    token = raw_upload(http, bearer, b"frame" * 100)
    failed = create(http, bearer, token)
    assert failed.status_code == 207
    assert failed.json()["newMediaItemResults"][0]["status"]["code"] == 13
    assert sandbox.stats.faults["batch_item_failure"] == 1
    sandbox.set_faults(FaultConfig())
    assert create(http, bearer, token).status_code == 200, "a failed item keeps its token"


@pytest.mark.sandbox(faults="upload-token-ttl=0")
def test_upload_tokens_expire(http: httpx.Client, bearer: dict[str, str]) -> None:
    token = raw_upload(http, bearer, b"old" * 10)
    result = create(http, bearer, token).json()["newMediaItemResults"][0]
    assert result["status"]["code"] == 3
    assert "expired" in result["status"]["message"]


@pytest.mark.sandbox(faults="bandwidth=2MiB")
def test_bandwidth_cap_per_connection(sandbox: Sandbox, http: httpx.Client) -> None:
    url = _cdn_url(http, sandbox)
    started = time.monotonic()
    response = http.get(url, headers={"Range": f"bytes=0-{1024 * 1024 - 1}"})
    elapsed = time.monotonic() - started
    assert len(response.content) == 1024 * 1024
    assert elapsed >= 0.45, f"1 MiB at 2 MiB/s took only {elapsed:.2f} s"


@pytest.mark.sandbox(faults="latency=0.3")
def test_latency(http: httpx.Client) -> None:
    started = time.monotonic()
    http.get("/media/search")
    assert time.monotonic() - started >= 0.3


@pytest.mark.sandbox(faults="quota=3")
def test_daily_quota_exhaustion(
    sandbox: Sandbox, http: httpx.Client, bearer: dict[str, str]
) -> None:
    statuses = [http.get("/v1/albums", headers=bearer).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    error = http.get("/v1/albums", headers=bearer).json()["error"]
    assert "per day" in error["message"]
    assert error["details"][0]["reason"] == "RATE_LIMIT_EXCEEDED"
    assert sandbox.stats.faults["quota"] == 3


def test_faults_can_be_switched_over_http(sandbox: Sandbox, http: httpx.Client) -> None:
    assert http.post("/_sandbox/faults", content="5xx=1").json()["server_error_rate"] == 1.0
    assert http.get("/media/search").status_code == 503
    assert http.post("/_sandbox/faults", content="bogus=1").status_code == 400
    stats = http.get("/_sandbox/stats").json()
    assert stats["faults"]["5xx"] == 1

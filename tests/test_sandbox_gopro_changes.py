"""The GoPro emulator changed while serving: tokens expiring or revoked, media deleted, added,
made ready; and the CDN's byte counters per label and per asset."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from q2google.sandbox import FaultConfig, Sandbox, SandboxLibrary
from q2google.sandbox.library import KIB
from tests.test_sandbox_gopro import asset_id_of, download_json, entry_urls

SMALL = SandboxLibrary.generated(
    photos=3,
    videos=1,
    chaptered=1,
    bursts=1,
    unready=1,
    photo_size=16 * KIB,
    video_size=128 * KIB,
    frames=3,
    seed=8,
)
pytestmark = pytest.mark.sandbox(library=SMALL)


def _search(http: httpx.Client, token: str, *, bearer: bool = False) -> httpx.Response:
    header = (
        {"Authorization": f"Bearer {token}"} if bearer else {"Cookie": f"gp_access_token={token}"}
    )
    return http.get("/media/search", params={"per_page": "100"}, headers=header)


def _listed(http: httpx.Client, sandbox: Sandbox) -> set[str]:
    body: dict[str, Any] = _search(http, sandbox.gopro_token).json()
    return {row["id"] for row in body["_embedded"]["media"]}


def test_the_token_is_taken_as_cookie_or_bearer(sandbox: Sandbox, http: httpx.Client) -> None:
    assert _search(http, sandbox.gopro_token).status_code == 200
    assert _search(http, sandbox.gopro_token, bearer=True).status_code == 200
    wrong = _search(http, "not-the-token")
    assert wrong.status_code == 401
    assert wrong.json()["_embedded"]["errors"][0]["code"] == 401


def test_an_expired_token_is_401_on_the_api_but_not_on_the_cdn(
    sandbox: Sandbox, http: httpx.Client
) -> None:
    media = next(m for m in SMALL.media if m.type == "Photo")
    url = entry_urls(download_json(http, sandbox, media.media_id))[media.originals[0].asset_id]
    sandbox.set_faults("gopro-token-ttl=0")
    assert sandbox.faults.gopro_token_ttl_seconds == 0.0
    expired = _search(http, sandbox.gopro_token)
    assert expired.status_code == 401
    assert "expired" in expired.json()["message"]
    cookie = {"Cookie": f"gp_access_token={sandbox.gopro_token}"}
    assert http.get(f"/media/{media.media_id}/download", headers=cookie).status_code == 401
    assert http.get(url).status_code == 200, "signed CDN URLs have their own expiry"
    assert sandbox.stats.faults["gopro_token_expired"] == 2
    sandbox.set_faults(FaultConfig.parse("gopro-token-ttl=3600"))
    assert _search(http, sandbox.gopro_token).status_code == 200
    assert FaultConfig.parse("gopro-token-ttl=none").gopro_token_ttl_seconds is None


def test_revoked_tokens_are_401_and_a_fresh_one_works(sandbox: Sandbox, http: httpx.Client) -> None:
    old = sandbox.gopro_token
    sandbox.revoke_gopro_token()
    assert _search(http, old).status_code == 401
    fresh = sandbox.issue_gopro_token()
    assert fresh != old
    assert sandbox.gopro_token == fresh
    assert _search(http, fresh).status_code == 200
    assert _search(http, old).status_code == 401


def test_tokens_over_http(sandbox: Sandbox, http: httpx.Client) -> None:
    issued = http.post("/_sandbox/gopro/token").json()["token"]
    assert _search(http, issued).status_code == 200
    assert _search(http, sandbox.gopro_token).status_code == 200, "older tokens stay valid"
    assert http.post("/_sandbox/gopro/revoke").status_code == 200
    assert _search(http, issued).status_code == 401
    assert _search(http, sandbox.gopro_token).status_code == 401


def test_a_deleted_media_is_not_listed_and_its_files_are_404(
    sandbox: Sandbox, http: httpx.Client
) -> None:
    media = next(m for m in SMALL.media if m.type == "Video" and len(m.originals) > 1)
    other = next(m for m in SMALL.media if m.type == "Photo")
    urls = entry_urls(download_json(http, sandbox, media.media_id))
    deleted = sandbox.delete_media(media.media_id)
    assert deleted.media_id == media.media_id
    assert media.media_id not in _listed(http, sandbox)
    cookie = {"Cookie": f"gp_access_token={sandbox.gopro_token}"}
    gone = http.get(f"/media/{media.media_id}/download", headers=cookie)
    assert gone.status_code == 404
    assert gone.json()["_embedded"]["errors"][0]["code"] == 404
    for url in urls.values():
        answer = http.get(url)
        assert answer.status_code == 404
        assert answer.headers["content-type"].startswith("application/json")
    with pytest.raises(KeyError):
        sandbox.delete_media(media.media_id)

    assert http.post(f"/_sandbox/gopro/media/{other.media_id}/delete").status_code == 200
    assert other.media_id not in _listed(http, sandbox)
    assert http.post(f"/_sandbox/gopro/media/{other.media_id}/delete").status_code == 404


def test_a_media_added_while_serving_is_listed_and_served(
    sandbox: Sandbox, http: httpx.Client
) -> None:
    (new,) = SandboxLibrary.generated(photos=1, photo_size=KIB, seed=99).media
    sandbox.add_media(new)
    assert new.media_id in _listed(http, sandbox)
    urls = entry_urls(download_json(http, sandbox, new.media_id))
    assert http.get(urls[new.originals[0].asset_id]).content == b"".join(new.originals[0].read())
    with pytest.raises(ValueError, match="already"):
        sandbox.add_media(new)


def test_a_media_made_ready_becomes_available_and_deliverable(
    sandbox: Sandbox, http: httpx.Client
) -> None:
    (media,) = [m for m in sandbox.library.media if not m.is_ready]
    assert media.ready_to_view == "uploading"
    before = len(sandbox.library.deliverables())
    assert media.media_id not in {m.media_id for m, _, _ in sandbox.library.deliverables()}
    url = entry_urls(download_json(http, sandbox, media.media_id))[media.originals[0].asset_id]
    assert http.get(url).status_code == 404

    ready = sandbox.set_ready(media.media_id)
    assert ready.ready_to_view == "ready"
    answer = download_json(http, sandbox, media.media_id)
    assert all(v["available"] for v in answer["_embedded"]["variations"])
    assert http.get(url).content == b"".join(ready.originals[0].read())
    delivered = sandbox.library.deliverables()
    assert media.media_id in {m.media_id for m, _, _ in delivered}
    assert len(delivered) == before + len(media.originals)

    changed = http.post(f"/_sandbox/gopro/media/{media.media_id}/ready", content="transcoding")
    assert changed.json() == {"id": media.media_id, "ready_to_view": "transcoding"}
    as_json = http.post(f"/_sandbox/gopro/media/{media.media_id}/ready", json={"state": "failure"})
    assert as_json.json()["ready_to_view"] == "failure"
    assert http.post(f"/_sandbox/gopro/media/{media.media_id}/ready").json()["ready_to_view"] == (
        "ready"
    )


def test_cdn_bytes_are_counted_per_label_and_per_asset(
    sandbox: Sandbox, http: httpx.Client
) -> None:
    video = next(m for m in SMALL.media if m.type == "Video" and len(m.originals) > 1)
    burst = next(m for m in SMALL.media if m.type == "Burst")
    answer = download_json(http, sandbox, video.media_id)
    proxy_url = answer["_embedded"]["files"][0]["url"]
    proxy = sandbox.library.asset(asset_id_of(proxy_url))
    assert proxy is not None
    http.get(proxy_url, headers={"Range": "bytes=0-999"})
    chapter = video.originals[1]
    http.get(entry_urls(answer)[chapter.asset_id])
    burst_answer = download_json(http, sandbox, burst.media_id)
    (cover_entry,) = [v for v in burst_answer["_embedded"]["variations"] if v["label"] == "source"]
    cover = sandbox.library.asset(asset_id_of(cover_entry["url"]))
    assert cover is not None
    http.get(cover_entry["url"])

    stats = sandbox.stats
    assert stats.cdn_bytes_by_label == {
        "high_res_proxy_mp4": 1000,
        "source": chapter.size,
        "cover": cover.size,
    }
    assert stats.cdn_bytes_by_asset[chapter.asset_id] == chapter.size
    assert stats.cdn_bytes_by_asset[proxy.asset_id] == 1000
    assert stats.cdn_bytes_sent == 1000 + chapter.size + cover.size
    assert stats.gopro_calls == {"download": 2}
    served = http.get("/_sandbox/stats").json()
    assert served["cdn_bytes_by_label"]["cover"] == cover.size
    assert served["cdn_bytes_by_asset"][chapter.asset_id] == chapter.size
    assert served["gopro_calls"] == {"download": 2}

"""The daily quota meter: Pacific days, the limit and its reserve, Google's 429s, sharing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from q2google.errors import QuotaExhaustedError
from q2google.gphotos.quota import (
    RequestKind,
    RequestMeter,
    project_counter,
    quota_day,
    quota_resets_at,
    request_kind,
    requests_needed,
)
from q2google.state import JsonFileBackend, MemoryRequestCounts
from q2google.testing import ManualClock

API, UPLOAD = RequestKind.API, RequestKind.UPLOAD


def test_the_quota_day_is_the_date_in_pacific_time() -> None:
    # 07:59 UTC on 1 December is 23:59 on 30 November in Los Angeles (PST, UTC-8)
    assert quota_day(datetime(2026, 12, 1, 7, 59, tzinfo=UTC)) == "2026-11-30"
    assert quota_day(datetime(2026, 12, 1, 8, 0, tzinfo=UTC)) == "2026-12-01"
    assert quota_resets_at(datetime(2026, 12, 1, 7, 59, tzinfo=UTC)) == datetime(
        2026, 12, 1, 8, 0, tzinfo=UTC
    )
    # summer time (PDT, UTC-7): midnight is 07:00 UTC
    assert quota_resets_at(datetime(2026, 7, 1, 12, 0, tzinfo=UTC)) == datetime(
        2026, 7, 2, 7, 0, tzinfo=UTC
    )


def test_uploads_and_other_calls_are_told_apart_by_path() -> None:
    assert request_kind("/v1/uploads") is UPLOAD
    assert request_kind("https://photoslibrary.googleapis.com/v1/uploads?upload_id=x") is UPLOAD
    assert request_kind("/v1/mediaItems:batchCreate") is API
    assert project_counter("123456789012-abcdef.apps.googleusercontent.com") == (
        "google-photos-123456789012"
    )
    assert project_counter(None) == project_counter("sandbox-client") == "google-photos"


def test_requests_needed_counts_raw_resumable_and_creates() -> None:
    mib = 1024**2
    # 60 raw photos, one resumable video of 3 chunks (start + 3), two batchCreates
    sizes: list[int | None] = [*([300 * 1024] * 60), 3 * mib]
    assert requests_needed(sizes, raw_max_bytes=mib, chunk_size=mib) == 60 + 4 + 2


async def test_uploads_stop_short_of_the_limit_so_the_last_tokens_can_be_created() -> None:
    clock = ManualClock()
    meter = RequestMeter(limit=10, reserve=3, clock=clock)
    for _ in range(7):
        await meter.admit(UPLOAD)
    with pytest.raises(QuotaExhaustedError) as stopped:
        await meter.admit(UPLOAD)
    for _ in range(3):
        await meter.admit(API)  # batchCreate of what was uploaded
    with pytest.raises(QuotaExhaustedError):
        await meter.admit(API)
    assert meter.made == meter.used_today == 10
    assert meter.exhausted
    message = str(meter.exhausted_error())
    assert "10 of 10 used today" in message
    assert "--wait" in message
    assert stopped.value.resets_at == quota_resets_at(clock.now())

    clock.advance(24 * 3600)  # the next day in Los Angeles
    assert not meter.exhausted
    await meter.admit(UPLOAD)
    assert meter.used_today == 1


def answer(status: int, message: str, **headers: str) -> httpx.Response:
    body = {"error": {"code": status, "message": message, "status": "RESOURCE_EXHAUSTED"}}
    return httpx.Response(status, json=body, headers=headers)


@pytest.mark.parametrize(
    "message",
    [
        "Quota exceeded for quota metric 'All requests' and limit 'All requests per day' of "
        "service 'photoslibrary.googleapis.com'.",
        "Quota exceeded for quota group 'default' and limit 'Queries per day'.",
    ],
)
async def test_a_daily_429_ends_the_day_whatever_the_limit(message: str) -> None:
    meter = RequestMeter(limit=None, clock=ManualClock())
    await meter.admit(UPLOAD)
    meter.answered(UPLOAD, answer(429, message))
    assert meter.exhausted
    with pytest.raises(QuotaExhaustedError, match="Google Photos answered that"):
        await meter.admit(API)


async def test_the_daily_429_is_also_read_from_its_details() -> None:
    meter = RequestMeter(limit=None, clock=ManualClock())
    await meter.admit(API)
    body = {
        "error": {
            "code": 429,
            "message": "Quota exceeded.",
            "details": [{"metadata": {"quota_limit": "ApiCallsPerProjectPerDay"}}],
        }
    }
    meter.answered(API, httpx.Response(429, json=body))
    assert meter.exhausted


async def test_a_per_minute_429_asks_to_slow_down_and_clean_uploads_say_so() -> None:
    meter = RequestMeter(clock=ManualClock())
    asked: list[float | None] = []
    clean: list[bool] = []
    meter.on_rate_limited.append(asked.append)
    meter.on_clean_upload.append(lambda: clean.append(True))
    await meter.admit(UPLOAD)
    meter.answered(
        UPLOAD,
        answer(
            429, "Quota exceeded for 'Write requests per minute per user'.", **{"Retry-After": "7"}
        ),
    )
    meter.answered(UPLOAD, httpx.Response(200, text="token"))
    meter.answered(API, httpx.Response(200, json={}))  # not an upload: says nothing
    assert asked == [7.0]
    assert clean == [True]
    assert not meter.exhausted


async def test_sessions_sharing_a_state_directory_share_the_count(tmp_path: Path) -> None:
    clock = ManualClock()
    store = JsonFileBackend(tmp_path / "state", durable=False)
    first = RequestMeter(limit=40, counts=store, counter="google-photos-1", clock=clock)
    second = RequestMeter(limit=40, counts=store, counter="google-photos-1", clock=clock)
    for _ in range(15):
        await first.admit(API)
        await second.admit(API)
    await first.flush()
    await second.flush()
    assert second.used_today == 30
    await first.flush()
    assert first.used_today == 30
    for _ in range(10):
        await first.admit(API)
    await first.flush()
    with pytest.raises(QuotaExhaustedError):
        await second.admit(API)  # it reads the shared count before refusing
    assert store.add_requests("google-photos-1", quota_day(clock.now()), 0) == 40
    other = RequestMeter(limit=40, counts=store, counter="google-photos-2", clock=clock)
    await other.admit(API)  # another project counts apart
    assert other.used_today == 1
    assert store.session_ids() == [], "the counts are not sessions"


def test_only_the_last_days_are_kept(tmp_path: Path) -> None:
    store = JsonFileBackend(tmp_path / "state", durable=False)
    day = datetime(2026, 1, 1, tzinfo=UTC)
    for offset in range(10):
        store.add_requests("g", (day + timedelta(days=offset)).date().isoformat(), 1)
    assert store.add_requests("g", "2026-01-01", 0) == 0
    assert store.add_requests("g", "2026-01-10", 0) == 1


async def test_counts_made_before_sharing_are_carried_over() -> None:
    clock = ManualClock()
    meter = RequestMeter(limit=100, clock=clock)
    await meter.admit(API)
    await meter.admit(API)
    shared = MemoryRequestCounts()
    shared.add_requests("google-photos", quota_day(clock.now()), 5)  # another process
    meter.share(shared)
    await meter.admit(API)
    await meter.flush()
    assert meter.used_today == 8


async def test_a_day_google_ends_early_lowers_the_limit_so_later_days_can_create() -> None:
    clock = ManualClock()
    meter = RequestMeter(limit=100, reserve=3, clock=clock)
    for _ in range(30):
        await meter.admit(UPLOAD)
    meter.answered(UPLOAD, answer(429, "Quota exceeded for 'All requests per day'."))
    assert (meter.limit, meter.learned) == (30, True)
    clock.advance(24 * 3600)
    for _ in range(27):
        await meter.admit(UPLOAD)
    with pytest.raises(QuotaExhaustedError, match="where Google ended an earlier day"):
        await meter.admit(UPLOAD)
    for _ in range(3):
        await meter.admit(API)  # what was uploaded can be created

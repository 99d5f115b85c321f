"""Google's daily quota: a run stops at the limit with nothing lost, goes on the next day,
and ``--wait`` carries a library over several days in one invocation."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from q2google.config import Q2GoogleSettings
from q2google.errors import EXIT_TRY_LATER, QuotaExhaustedError
from q2google.gphotos.quota import quota_day
from q2google.run import RunSummary, run_session
from q2google.sandbox import Sandbox, SandboxLibrary
from q2google.sandbox.library import KIB, MIB
from q2google.state import JsonFileBackend, StageStatus
from q2google.testing import ManualClock
from tests.test_sync import WINDOW, assert_exactly_once

LIBRARY = SandboxLibrary.generated(
    photos=60, videos=2, photo_size=200 * KIB, video_size=2 * MIB, seed=16
)
DAY = 24 * 3600


def google_requests(sandbox: Sandbox) -> int:
    return sandbox.stats.upload_requests + sum(sandbox.stats.google_calls.values())


def settings_for(sandbox: Sandbox, tmp_path: Path, **overrides: object) -> Q2GoogleSettings:
    return Q2GoogleSettings(
        gopro_api_url=sandbox.url,
        photos_api_url=sandbox.url,
        state_dir=tmp_path / "state",
        google_token_file=sandbox.write_token_file(tmp_path / "token.json"),
        **overrides,  # type: ignore[arg-type]
    )


async def run(
    sandbox: Sandbox, settings: Q2GoogleSettings, clock: ManualClock, *, wait: bool = False
) -> RunSummary:
    return await run_session(
        settings,
        session_id="q",
        start=WINDOW[0],
        end=WINDOW[1],
        album="GoPro",
        gopro_token=sandbox.gopro_token,
        wait=wait,
        clock=clock,
    )


def assert_no_token_lost(tmp_path: Path, *, all_created: bool = False) -> None:
    """Every file uploaded is created, or its token is kept for the next run."""
    state = JsonFileBackend(tmp_path / "state").load("q")
    assert state is not None
    for item in state.items.values():
        if item.transfer_status is StageStatus.COMPLETED:
            assert item.create_status is StageStatus.COMPLETED or item.upload_token, item.item_key
            if all_created:  # the run kept requests to create what it uploaded
                assert item.create_status is StageStatus.COMPLETED, item.item_key


@pytest.mark.sandbox(library=LIBRARY)
async def test_the_daily_limit_stops_a_run_and_the_next_day_goes_on(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    settings = settings_for(sandbox, tmp_path, daily_request_limit=50)
    clock = ManualClock()
    days = 0
    while True:
        before = google_requests(sandbox)
        try:
            summary = await run(sandbox, settings, clock)
        except QuotaExhaustedError as stop:
            stopped = stop
        else:
            assert google_requests(sandbox) - before <= 50
            break
        assert stopped.exit_code == EXIT_TRY_LATER
        message = str(stopped)
        assert "\n" not in message
        assert re.search(r"\b(4[7-9]|50) of 50 used today", message), message
        assert "--wait" in message
        assert "resets at" in message
        assert google_requests(sandbox) - before <= 50, "never past the day's limit"
        assert_no_token_lost(tmp_path, all_created=True)
        clock.advance(DAY)  # the next day, Pacific time
        days += 1
        assert days < 5
    assert summary.status == "completed"
    assert days >= 1, "62 files cannot go in one day of 50 requests"
    assert_exactly_once(sandbox)
    counted = JsonFileBackend(tmp_path / "state")
    assert counted.add_requests("google-photos", quota_day(clock.now()), 0) > 0


@pytest.mark.sandbox(library=LIBRARY)
async def test_wait_finishes_the_whole_library_in_one_invocation(
    sandbox: Sandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(sandbox, tmp_path, daily_request_limit=50)
    clock = ManualClock()
    with caplog.at_level(logging.INFO, logger="q2google.waiting"):
        summary = await run(sandbox, settings, clock, wait=True)
    assert summary.status == "completed"
    assert_exactly_once(sandbox)
    waits = [seconds for seconds in clock.slept if seconds >= 60]
    assert waits, "it waited for the reset"
    assert clock.monotonic() >= 0.5 * DAY  # a day went by on the clock, not in real time
    assert any("waiting for Google's daily quota" in line for line in caplog.messages)


@pytest.mark.sandbox(library=LIBRARY, faults="quota=40")
async def test_googles_own_daily_429_stops_the_run_and_wait_goes_on_after_the_reset(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    settings = settings_for(sandbox, tmp_path)  # no limit of our own reached: Google's
    clock = ManualClock()
    with pytest.raises(QuotaExhaustedError, match="Google Photos answered that") as stop:
        await run(sandbox, settings, clock)
    assert "--wait" in str(stop.value)
    assert_no_token_lost(tmp_path)

    def new_day(now: object) -> None:
        if quota_day(clock.now()) != today[0]:
            today[0] = quota_day(clock.now())
            sandbox.new_quota_day()

    today = [quota_day(clock.now())]
    clock.on_advance = new_day
    summary = await run(sandbox, settings, clock, wait=True)
    assert summary.status == "completed"
    assert_exactly_once(sandbox)


@pytest.mark.sandbox(library=LIBRARY, faults="429-burst=6,retry-after=0")
async def test_a_per_minute_429_storm_lowers_the_uploads_in_flight_and_raises_them_again(
    sandbox: Sandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(sandbox, tmp_path, transfer_concurrency=4)
    with caplog.at_level(logging.INFO, logger="q2google.throttle"):
        summary = await run(sandbox, settings, ManualClock())
    assert summary.status == "completed"
    assert_exactly_once(sandbox)
    assert sandbox.stats.faults["429"] == 6  # fewer than a request's attempts, all at first
    assert any("slow down" in line for line in caplog.messages), caplog.messages
    assert any("clean again" in line for line in caplog.messages), caplog.messages

"""The daily limit as a user meets it: one line and exit 75, then `sessions show`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from q2google.sandbox import Sandbox, SandboxLibrary
from q2google.sandbox.library import KIB
from tests.cli import q2google

WINDOW = ("--start", "2023-01-01", "--end", "2025-01-01")
PHOTOS = SandboxLibrary.generated(photos=40, photo_size=100 * KIB, seed=5)


@pytest.mark.sandbox(library=PHOTOS)
def test_the_daily_limit_is_one_line_exit_75_and_sessions_show_tells_the_count(
    sandbox: Sandbox, user_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**user_env, "Q2GOOGLE_DAILY_REQUEST_LIMIT": "20"}
    result = q2google("sync", *WINDOW, "--session", "d", env=env, cwd=tmp_path)
    assert result.returncode == 75, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "daily limit of Google Photos requests is reached" in last
    assert "--wait" in last
    assert "Traceback" not in result.stderr
    google = sandbox.stats.upload_requests + sum(sandbox.stats.google_calls.values())
    assert google <= 20

    shown = q2google("sessions", "show", "d", env=env, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    line = next(line for line in shown.stdout.splitlines() if line.strip().startswith("google"))
    assert f"{google} of 20 requests today" in line
    assert "needed to finish this session" in line
    data = json.loads(q2google("sessions", "show", "d", "--json", env=env, cwd=tmp_path).stdout)
    assert data["google_requests"]["used_today"] == google
    assert data["google_requests"]["needed"] >= 40 - sandbox.stats.upload_requests

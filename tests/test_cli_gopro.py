"""The GoPro side through the real console script: an expiring token, held-back files."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from q2google.sandbox import Sandbox
from tests.cli import q2google, sync_under_way
from tests.test_sync_gopro import HELD_BACK, REAL_SHAPES, proxy_bytes

WINDOW = ("--start", "2023-01-01", "--end", "2024-12-31")


@pytest.mark.sandbox(library=REAL_SHAPES)
def test_one_sync_of_a_library_with_real_shapes_delivers_every_original_once(
    sandbox: Sandbox, user_env: dict[str, str], tmp_path: Path
) -> None:
    photos = [m for m in REAL_SHAPES.media if m.type == "Photo" and not m.filename.isascii()]
    assert len(photos) >= 3, "three photos with names in other scripts"
    assert sum(len(m.deliverables) == 3 for m in REAL_SHAPES.media if m.type == "Video") >= 2
    result = q2google("sync", *WINDOW, "--session", "real", "--json", env=user_env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["status"] == "completed"
    items = sandbox.snapshot()["mediaItems"]
    expected = REAL_SHAPES.deliverables()
    assert sorted(item["sha256"] for item in items) == sorted(a.sha256() for _, _, a in expected)
    assert sorted(item["filename"] for item in items) == sorted(a.file_name for _, _, a in expected)
    assert proxy_bytes(sandbox) == 0


@pytest.mark.sandbox(faults="bandwidth=3MiB")
def test_a_token_revoked_midway_is_one_line_and_a_fresh_token_finishes_exactly_once(
    sandbox: Sandbox, user_env: dict[str, str], tmp_path: Path
) -> None:
    with sync_under_way(*WINDOW, "--session", "trip", env=user_env, cwd=tmp_path) as child:
        sandbox.revoke_gopro_token()
        revoked_at = time.monotonic()
        out, err = child.communicate(timeout=60)
    assert time.monotonic() - revoked_at < 60
    assert child.returncode == 2, out + err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("q2google: error")]
    assert len(errors) == 1, err
    assert "GoPro" in errors[0]
    assert "GP_ACCESS_TOKEN" in errors[0]
    assert len(sandbox.snapshot()["mediaItems"]) < len(sandbox.library.deliverables())

    sandbox.set_faults("")
    fresh_env = {**user_env, "GP_ACCESS_TOKEN": sandbox.issue_gopro_token()}
    again = q2google("sync", "--session", "trip", "--json", env=fresh_env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["status"] == "completed"
    stored = sorted(item["sha256"] for item in sandbox.snapshot()["mediaItems"])
    assert stored == sorted(asset.sha256() for _, _, asset in sandbox.library.deliverables())


@pytest.mark.sandbox(library=HELD_BACK)
def test_held_back_files_show_with_their_reasons_in_dry_run_summary_and_sessions_show(
    sandbox: Sandbox, user_env: dict[str, str], tmp_path: Path
) -> None:
    dry = q2google("sync", *WINDOW, "--session", "s", "--dry-run", env=user_env, cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    for reason in (
        "skipped: 2 x an edit made in the GoPro app, not a camera original",
        "skipped: 1 x Google Photos does not accept .360 files",
        "deferred: 1 x still ",
    ):
        assert reason in dry.stdout, dry.stdout
    assert "limit for a photo" in dry.stdout

    run = q2google("sync", *WINDOW, "--session", "s", env=user_env, cwd=tmp_path)
    assert run.returncode == 1, run.stdout + run.stderr  # the media without an original
    assert "no original available in the GoPro cloud" in run.stdout
    assert "skipped: 2 x an edit made in the GoPro app" in run.stdout
    assert "run the same command later to deliver the 2 deferred" in run.stdout

    show = q2google("sessions", "show", "s", env=user_env, cwd=tmp_path)
    assert show.returncode == 0, show.stderr
    assert "discovery " in show.stdout, "stage names and counts are apart"
    assert show.stdout.count("skipped: ") == 5
    assert show.stdout.count("deferred: ") == 2

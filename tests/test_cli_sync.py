"""`q2google sync` and `q2google demo` as a user runs them: the real console script."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from q2google.sandbox import Sandbox


def q2google(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("q2google")
    assert executable
    return subprocess.run(
        [executable, *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=cwd,
        check=False,
    )


@pytest.fixture
def user_env(sandbox: Sandbox, tmp_path: Path) -> dict[str, str]:
    """A user's shell after `source sandbox.env`, in a clean working directory."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("Q2GOOGLE_", "GP_"))
    }
    env.update(sandbox.environment(sandbox.write_token_file(tmp_path / "google-token.json")))
    env["Q2GOOGLE_STATE_DIR"] = str(tmp_path / "sessions")
    return env


def _state_snapshot(root: Path) -> dict[str, str]:
    return {
        str(path): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_demo_needs_nothing_and_checks_the_result(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("Q2GOOGLE_")}
    result = q2google("demo", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "exactly once, byte for byte" in result.stdout
    assert list(tmp_path.iterdir()) == [], "the demo leaves nothing behind"


def test_sync_then_resume_then_nothing_left(
    sandbox: Sandbox, user_env: dict[str, str], tmp_path: Path
) -> None:
    first = q2google(
        "sync",
        "--start",
        "2023-01-01",
        "--end",
        "2024-12-31",
        "--session",
        "trip",
        "--album",
        "Trips",
        env=user_env,
        cwd=tmp_path,
    )
    assert first.returncode == 0, first.stderr
    total = len(sandbox.library.deliverables())
    assert f"{total} of {total} files in Google Photos" in first.stdout
    assert len(sandbox.snapshot()["mediaItems"]) == total

    sent = sandbox.stats.upload_bytes_received
    again = q2google("sync", "--session", "trip", "--json", env=user_env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["by_status"] == {"completed": total}
    assert summary["failures"] == []
    assert sandbox.stats.upload_bytes_received == sent


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "2024-13-01", "--end", "2024-12-31"], "--start '2024-13-01' is not a date"),
        (["--start", "2024-12-31", "--end", "2024-01-01"], "is before --start"),
        (["--end", "2024-01-01"], "give --start and --end"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_touches_nothing(
    user_env: dict[str, str], tmp_path: Path, args: list[str], message: str
) -> None:
    result = q2google("sync", "--session", "fresh", *args, env=user_env, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "sessions").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"session": "../escape"}, "invalid session id"),
        ({"session": "q2google-ledger"}, "reserved"),
        ({"Q2GOOGLE_STATE_URI": "redis://user:secret@host/0"}, "unknown scheme 'redis'"),
        ({"Q2GOOGLE_TRANSFER_CONCURRENCY": "0"}, "Q2GOOGLE_TRANSFER_CONCURRENCY"),
        ({"GP_ACCESS_TOKEN": ""}, "GP_ACCESS_TOKEN is not set"),
        ({"Q2GOOGLE_GOOGLE_TOKEN_FILE": "/nonexistent/token.json"}, "q2google auth google"),
    ],
)
def test_bad_configuration_is_one_line_exit_2_and_state_untouched(
    sandbox: Sandbox,
    user_env: dict[str, str],
    tmp_path: Path,
    change: dict[str, str],
    message: str,
) -> None:
    ok = q2google(
        "sync",
        "--start",
        "2023-01-01",
        "--end",
        "2024-12-31",
        "--session",
        "keep",
        env=user_env,
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr
    before = _state_snapshot(tmp_path / "sessions")
    session = change.pop("session", "keep")
    result = q2google("sync", "--session", session, env={**user_env, **change}, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr
    assert "secret" not in result.stderr
    assert _state_snapshot(tmp_path / "sessions") == before


def test_a_corrupt_state_file_is_one_line_naming_it(
    user_env: dict[str, str], tmp_path: Path
) -> None:
    ok = q2google(
        "sync",
        "--start",
        "2023-01-01",
        "--end",
        "2024-12-31",
        "--session",
        "bad",
        env=user_env,
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr
    meta = tmp_path / "sessions" / "bad" / "meta.json"
    meta.write_text("{ truncated")
    result = q2google("sync", "--session", "bad", env=user_env, cwd=tmp_path)
    assert result.returncode == 2
    assert str(meta) in result.stderr
    assert result.stderr.count("\n") == 1
    assert meta.read_text() == "{ truncated"

"""`q2google sync` and `q2google demo` as a user runs them: the real console script."""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from q2google.sandbox import Sandbox, SandboxLibrary
from tests.cli import q2google, state_snapshot, sync_under_way

WINDOW = ("--start", "2023-01-01", "--end", "2024-12-31")


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
        *WINDOW,
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
    assert summary["by_status"] == {
        "completed": total,
        "failed": 0,
        "pending": 0,
        "skipped": 1,  # the demo library's edit project
        "deferred": 0,
        "gone": 0,
    }
    assert summary["failures"] == []
    assert sandbox.stats.upload_bytes_received == sent


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "2024-13-01", "--end", "2024-12-31"], "--start '2024-13-01' is not a date"),
        (["--start", "2024-12-31", "--end", "2024-01-01"], "is not after --start"),
        (["--end", "2024-01-01"], "give --start to begin it"),
        (["--start", "2024-01-01", "--tz", "Mars/Olympus"], "is not a time zone"),
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
        *WINDOW,
        "--session",
        "keep",
        env=user_env,
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr
    before = state_snapshot(tmp_path / "sessions")
    session = change.pop("session", "keep")
    result = q2google("sync", "--session", session, env={**user_env, **change}, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr
    assert "secret" not in result.stderr
    assert state_snapshot(tmp_path / "sessions") == before


def test_a_corrupt_state_file_is_one_line_naming_it(
    user_env: dict[str, str], tmp_path: Path
) -> None:
    ok = q2google(
        "sync",
        *WINDOW,
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


@pytest.mark.sandbox(faults="bandwidth=1MiB")  # slow enough that Ctrl-C lands midway
def test_ctrl_c_saves_says_how_to_resume_and_the_resume_finishes_exactly_once(
    sandbox: Sandbox, user_env: dict[str, str], tmp_path: Path
) -> None:
    with sync_under_way(*WINDOW, "--session", "cut", env=user_env, cwd=tmp_path) as child:
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    assert child.returncode == 130, out + err
    assert "interrupted; progress is saved. Resume with: q2google sync --session cut" in err
    assert "Traceback" not in err
    total = len(sandbox.library.deliverables())
    assert len(sandbox.snapshot()["mediaItems"]) < total, "interrupted midway"

    sandbox.set_faults("")
    resumed = q2google("sync", "--session", "cut", "--json", env=user_env, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "completed"
    stored = [item["sha256"] for item in sandbox.snapshot()["mediaItems"]]
    source = [asset.sha256() for _, _, asset in sandbox.library.deliverables()]
    assert sorted(stored) == sorted(source), "every file in Google Photos"
    # Resumed, not restarted: uploads went on from the offsets Google confirmed.
    assert sandbox.stats.upload_bytes_received <= 1.3 * sandbox.library.total_bytes


def test_progress_is_plain_lines_on_stderr_and_json_alone_on_stdout(
    sandbox: Sandbox, user_env: dict[str, str], tmp_path: Path
) -> None:
    # Periodic lines depend on how long the run takes: an hour apart, none come; what they
    # show is tested in tests/test_progress.py on a manual clock.
    env = {**user_env, "Q2GOOGLE_PROGRESS_INTERVAL_SECONDS": "3600"}
    result = q2google(
        "sync",
        *WINDOW,
        "--session",
        "p",
        "--json",
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "completed"  # stdout: the summary alone
    total = len(sandbox.library.deliverables())
    lines = result.stderr.splitlines()
    assert lines[:2] == ["q2google: session p: discovery…", "q2google: session p: transfer…"]
    assert len(lines) == 3, result.stderr
    assert re.match(
        rf"q2google: session p: {total}/{total} files in Google Photos, [\d.]+ MiB sent\b",
        lines[2],
    ), lines[2]


def test_a_terminal_gets_the_rich_display(tmp_path: Path) -> None:
    executable = shutil.which("q2google")
    assert executable
    env = {
        **{
            k: v for k, v in os.environ.items() if not k.startswith("Q2GOOGLE_") and k != "NO_COLOR"
        },
        "TERM": "xterm-256color",
        "COLUMNS": "140",
    }
    controller, terminal = pty.openpty()
    shown = bytearray()

    def drain() -> None:
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:
                return
            if not chunk:
                return
            shown.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        result = subprocess.run(
            [executable, "demo"],
            stdout=subprocess.PIPE,
            stderr=terminal,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
            check=False,
        )
    finally:
        os.close(terminal)
        reader.join(timeout=10)
        os.close(controller)
    assert result.returncode == 0, shown.decode(errors="replace")
    screen = shown.decode(errors="replace")
    assert "\x1b[" in screen, "terminal control sequences: a live display"
    assert "━" in screen
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)
    total = len(SandboxLibrary.demo().deliverables())
    assert re.search(rf"done .* {total}/{total} files uploaded [\d.]+ MiB sent", plain), plain[
        -2000:
    ]
    assert "ETA" in screen
    assert "q2google: session" not in screen, "no plain lines on a terminal"


def test_an_unreachable_mongodb_is_one_line_exit_2(
    user_env: dict[str, str], tmp_path: Path
) -> None:
    uri = "mongodb://admin:hunter2@127.0.0.1:9/q2google?serverSelectionTimeoutMS=300"
    env = {**user_env, "Q2GOOGLE_STATE_URI": uri}
    for args in (
        ["sync", "--session", "m", "--start", "2024-01-01", "--end", "2024-02-01"],
        ["sessions", "list"],
    ):
        result = q2google(*args, env=env, cwd=tmp_path)
        assert result.returncode == 75, result.stderr  # temporary: the same command later
        assert result.stderr.count("\n") == 1, result.stderr
        assert "MongoDB at 127.0.0.1:9 is unreachable" in result.stderr
        assert "hunter2" not in result.stderr


def test_sync_and_sessions_on_mongodb(
    sandbox: Sandbox, user_env: dict[str, str], mongo_uri: str, tmp_path: Path
) -> None:
    env = {**user_env, "Q2GOOGLE_STATE_URI": mongo_uri}
    first = q2google(
        "sync",
        *WINDOW,
        "--session",
        "m1",
        env=env,
        cwd=tmp_path,
    )
    assert first.returncode == 0, first.stderr
    total = len(sandbox.library.deliverables())
    listed = json.loads(q2google("sessions", "list", "--json", env=env).stdout)
    assert [(s["session_id"], s["status"], s["files"]) for s in listed] == [
        ("m1", "completed", total + 1)  # the demo's edit project is a file too, skipped
    ]
    assert q2google("sessions", "delete", "m1", "--yes", env=env).returncode == 0
    assert json.loads(q2google("sessions", "list", "--json", env=env).stdout) == []
    assert not (tmp_path / "sessions").exists(), "nothing went to the JSON backend"

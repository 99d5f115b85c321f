"""One owner per session, as a user meets it: the same sync started twice at the same moment."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from q2google.sandbox import Sandbox
from tests.cli import q2google, state_snapshot

WINDOW = ("--start", "2023-01-01", "--end", "2024-12-31")


@pytest.mark.sandbox(faults="bandwidth=2MiB")  # the run that wins lasts a few seconds
def test_the_same_session_started_twice_at_once_runs_once(
    sandbox: Sandbox, user_env: dict[str, str], tmp_path: Path
) -> None:
    executable = shutil.which("q2google")
    assert executable
    command = [executable, "sync", *WINDOW, "--session", "twice"]
    runs = [
        subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=user_env,
            cwd=tmp_path,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=180) for run in runs]
    codes = [run.returncode for run in runs]
    assert sorted(codes) == [0, 75], outputs
    winner = codes.index(0)
    _, refusal = outputs[1 - winner]
    assert refusal.count("\n") == 1, refusal
    assert re.search(
        rf"session 'twice' is busy: another q2google run \(pid {runs[winner].pid} on "
        rf"{re.escape(socket.gethostname())}\) holds it since \S+; try again later",
        refusal,
    ), refusal
    assert "Traceback" not in refusal

    sandbox.set_faults("")
    third = q2google("sync", "--session", "twice", "--json", env=user_env, cwd=tmp_path)
    assert third.returncode == 0, third.stderr
    assert json.loads(third.stdout)["status"] == "completed"
    stored = [item["sha256"] for item in sandbox.snapshot()["mediaItems"]]
    source = [asset.sha256() for _, _, asset in sandbox.library.deliverables()]
    assert sorted(stored) == sorted(source), "every file in Google Photos, exactly once"
    assert sandbox.stats.upload_bytes_received <= 1.2 * sandbox.library.total_bytes


def test_a_busy_session_touches_nothing(
    sandbox: Sandbox, user_env: dict[str, str], tmp_path: Path
) -> None:
    from q2google.state.local import JsonFileBackend

    first = q2google("sync", *WINDOW, "--session", "held", env=user_env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    state_dir = Path(user_env["Q2GOOGLE_STATE_DIR"])
    before = state_snapshot(state_dir / "held")
    with JsonFileBackend(state_dir).lease("held") as holder:  # another run, as it were
        busy = q2google("sessions", "retry", "held", env=user_env, cwd=tmp_path)
        again = q2google("sync", "--session", "held", env=user_env, cwd=tmp_path)
        gone = q2google("sessions", "delete", "held", "--yes", env=user_env, cwd=tmp_path)
    for result in (busy, again, gone):
        assert result.returncode == 75, result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
        assert f"(pid {holder.pid} on {holder.host}) holds it since {holder.since}" in (
            result.stderr
        )
    assert state_snapshot(state_dir / "held") == before, "a refused run wrote state"

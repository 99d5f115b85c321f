"""A process that used MongoDB exits at once: its closed client leaves pymongo nothing to join.

pymongo joins its monitor threads at exit, and a monitor notices it was stopped only at the
end of a 0.5 s sleep step; :func:`q2google.state.mongo_exit.release_stopped_monitors` takes
the stopped ones off that list. These tests check the list, never the clock.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient, periodic_executor

from q2google.sandbox import Sandbox, SandboxLibrary
from q2google.state.mongo import MongoBackend
from q2google.state.mongo_exit import release_stopped_monitors

WINDOW = ("--start", "2023-01-01", "--end", "2024-12-31")


def _registered() -> list[Any]:
    """The executors pymongo will stop and join at exit."""
    return [executor for ref in periodic_executor._EXECUTORS if (executor := ref()) is not None]


def test_pymongo_keeps_its_exit_list_where_we_look() -> None:
    # If a pymongo release moves it, release_stopped_monitors does nothing and every
    # command against MongoDB ends half a second late again: this says so.
    assert isinstance(periodic_executor._EXECUTORS, set)


def test_a_closed_backend_leaves_no_monitor_to_join_and_an_open_client_keeps_its_own(
    mongo_uri: str,
) -> None:
    before = _registered()  # other tests' clients, some of them being stopped as they go
    other: MongoClient[dict[str, Any]] = MongoClient(mongo_uri)
    try:
        other.get_default_database()["x"].find_one()
        others = [e for e in _registered() if all(e is not b for b in before) and not e._stopped]
        assert others, "the open client's monitors are registered"
        backend = MongoBackend(mongo_uri)
        assert backend.load("s") is None  # connects: its monitors start
        known = [*before, *others]
        own = [e for e in _registered() if all(e is not k for k in known) and not e._stopped]
        assert own, "the backend's monitors are registered"
        backend.close()
        left = _registered()
        assert not [e for e in own if any(e is kept for kept in left)], "stopped, still joined"
        assert all(any(e is kept for kept in left) for e in others), "another client's are kept"
    finally:
        other.close()
    release_stopped_monitors()
    left = _registered()
    assert not [e for e in others if any(e is kept for kept in left)], "once closed, let go"


def _probe(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, int, str]:
    """Run a command in a child process: its exit code, monitors left, stderr."""
    probe = Path(__file__).with_name("monitors_left.py")
    done = subprocess.run(
        [sys.executable, str(probe), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=180,
        check=False,
    )
    lines = [line for line in done.stderr.splitlines() if line.startswith("MONITORS LEFT ")]
    assert lines, done.stderr
    return done.returncode, int(lines[-1].split()[-1]), done.stderr


@pytest.mark.sandbox(library=SandboxLibrary.generated(photos=3, videos=1, video_size=64 * 1024))
def test_every_command_closes_its_mongodb_client(
    sandbox: Sandbox, user_env: dict[str, str], mongo_uri: str, tmp_path: Path
) -> None:
    env = {**user_env, "Q2GOOGLE_STATE_URI": mongo_uri}
    for args in (
        ("sync", *WINDOW, "--session", "m1"),
        ("sync", "--session", "m1", "--dry-run"),
        ("sessions", "list"),
        ("sessions", "show", "m1"),
        ("sessions", "retry", "m1"),
        ("sessions", "delete", "m1", "--yes"),
        ("ledger", "rebuild"),
    ):
        code, left, stderr = _probe(*args, env=env, cwd=tmp_path)
        assert code == 0, (args, stderr[-2000:])
        assert left == 0, (args, "monitors left for the exit to wait for")

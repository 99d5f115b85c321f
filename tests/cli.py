"""Running the real ``q2google`` console script, as a user's shell would."""

from __future__ import annotations

import hashlib
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def q2google(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``q2google ARGS`` to completion and capture what it printed."""
    executable = shutil.which("q2google")
    assert executable
    return subprocess.run(
        [executable, *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=cwd,
        input=stdin,
        check=False,
    )


@contextmanager
def _interruptible() -> Iterator[None]:
    """Let Ctrl-C reach a child started meanwhile, even when the suite runs in the background:
    a script's ``cmd &`` starts it with SIGINT ignored, the children inherit that, and Python
    then never raises KeyboardInterrupt."""
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def state_snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` and the hash of its bytes, to prove nothing changed."""
    return {
        str(path): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@contextmanager
def sync_under_way(*args: str, env: dict[str, str], cwd: Path) -> Iterator[subprocess.Popen[str]]:
    """Start ``q2google sync ARGS`` and hand it over once its bytes are moving (a plain
    progress line on stderr says so); the caller signals it and collects its output."""
    executable = shutil.which("q2google")
    assert executable
    with (
        _interruptible(),
        subprocess.Popen(
            [executable, "sync", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**env, "Q2GOOGLE_PROGRESS_INTERVAL_SECONDS": "0.2"},
            cwd=cwd,
        ) as child,
    ):
        assert child.stderr is not None
        for line in child.stderr:
            if "MiB sent" in line:
                break
        yield child

"""Run ``q2google sandbox serve`` in a process of its own (benchmarks, end-to-end tests)."""

from __future__ import annotations

import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

READY_PREFIX = "# q2google sandbox on"


def parse_exports(text: str) -> dict[str, str]:
    """Read the ``export NAME=value`` lines the sandbox prints into a dict."""
    env = {}
    for line in text.splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            env[name] = shlex.split(value)[0]
    return env


class ServedSandbox(NamedTuple):
    """A sandbox running in another process."""

    env: dict[str, str]
    pid: int


@contextmanager
def serve_process(library: str = "demo", faults: str = "") -> Iterator[ServedSandbox]:
    """Start the sandbox in a subprocess; yield its environment; stop it with SIGINT.

    Args:
        library: ``--library`` spec.
        faults: ``--faults`` spec.

    Yields:
        The variables that point q2google at it (``GP_ACCESS_TOKEN``, ``Q2GOOGLE_*``) and the
        server's process id.
    """
    executable = shutil.which("q2google")
    command = ([executable] if executable else [sys.executable, "-m", "q2google"]) + [
        "sandbox",
        "serve",
        "--library",
        library,
        "--faults",
        faults,
    ]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)  # noqa: S603 - our CLI
    try:
        assert server.stdout is not None
        printed = ""
        for line in server.stdout:
            printed += line
            if line.startswith(READY_PREFIX):
                break
        else:
            raise RuntimeError(f"the sandbox did not start: {printed[-500:]}")
        yield ServedSandbox(parse_exports(printed), server.pid)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

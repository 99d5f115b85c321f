"""kill -9 a child run at a moment chosen by what the sandbox sees, not by the clock: a slow
or busy machine moves every moment, a count of requests does not."""

from __future__ import annotations

import subprocess
import time

from q2google.sandbox import Sandbox

KILL_WAIT_SECONDS = 120.0
"""The longest wait for the moment before the child is killed anyway."""


def seen(sandbox: Sandbox, call: str) -> int:
    """How many ``call`` requests the sandbox has received: ``upload`` (upload requests:
    whole files or chunks), or a Library API method (``batchCreate``...)."""
    if call == "upload":
        return sandbox.stats.requests["uploads"]
    return sandbox.stats.google_calls[call]


def kill_after_sandbox_sees(
    sandbox: Sandbox,
    child: subprocess.Popen[bytes],
    call: str,
    *,
    count: int = 1,
    delay: float = 0.0,
) -> None:
    """kill -9 ``child`` ``delay`` seconds after the sandbox received ``count`` more ``call``
    requests (see :func:`seen`), or at once when the child has exited by itself."""
    target = seen(sandbox, call) + count
    deadline = time.monotonic() + KILL_WAIT_SECONDS
    while seen(sandbox, call) < target and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(delay)
    child.kill()
    child.wait()

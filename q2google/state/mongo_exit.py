"""Spare a process pymongo's wait at exit once its MongoDB clients are closed.

pymongo joins every monitor thread it started at interpreter exit (``_shutdown_executors``,
an ``atexit`` handler). A monitor sleeps in steps of half a second and sees that it was
stopped only at the end of a step, so every ``q2google`` command that used MongoDB ended up
to 0.5 s late, closed client or not: a third of ``sessions list`` on a large library.

After a client is closed its monitors are stopped: their threads have nothing left to do but
notice it and end. They are daemon threads, which the interpreter does not wait for. So
:func:`release_stopped_monitors` takes the stopped ones off pymongo's exit list. A monitor
still running (another client's) stays on it and is stopped and joined at exit as before;
so does any thread that is not a daemon (pymongo starts those in subinterpreters).

The list is pymongo's private ``periodic_executor._EXECUTORS``; when a pymongo release moves
or renames it, this does nothing, and the wait comes back (a test says so).
"""

from __future__ import annotations

from typing import Any

from pymongo import periodic_executor


def release_stopped_monitors() -> int:
    """Take pymongo's stopped monitors off its exit join.

    Returns:
        How many were taken off (0 when pymongo keeps no such list).
    """
    executors: Any = getattr(periodic_executor, "_EXECUTORS", None)
    if not isinstance(executors, set):
        return 0
    released = 0
    for ref in list(executors):
        executor = ref()
        if executor is None or getattr(executor, "_stopped", None) is not True:
            continue
        if not _runs_on_daemon_thread(executor):
            continue
        executors.discard(ref)
        released += 1
    return released


def _runs_on_daemon_thread(executor: Any) -> bool:
    """Whether the executor's thread is a daemon, or already gone (then nothing waits)."""
    thread = getattr(executor, "_thread", None)
    if thread is None:
        return True
    try:
        return bool(thread.daemon) or not thread.is_alive()
    except ReferenceError:  # a weak proxy to a thread that has ended
        return True

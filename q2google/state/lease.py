"""One owner per session: the optional lease a run takes before it touches a session's state.

A backend that implements :class:`SessionLeasing` lets a run hold its session for its whole
duration; a second run of the same session (an overlapping cron job, a second terminal) is
refused at once with :class:`~q2google.errors.SessionBusyError` (exit 75), touching nothing.
A lease whose owner died is free again: at once with an OS file lock (:class:`FileLeases`,
used by the JSON backend), after its expiry with a lease record renewed by a heartbeat
(MongoDB). Backends without it (a user's own backend) run without a lease.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

from filelock import FileLock, Timeout

from q2google.errors import SessionBusyError, StateWriteError
from q2google.state.base import utc_now_iso, validate_session_id

LEASE_TRIES = 4
"""Tries of a file lock before a session is called busy: a probe of another process
(:meth:`FileLeases.holder`) holds the lock for an instant."""
_TRY_INTERVAL = 0.03


@dataclass(frozen=True)
class LeaseHolder:
    """Who holds a session's lease, for the message a second run prints.

    Attributes:
        host: The holder's host name.
        pid: The holder's process id.
        since: When it took the lease (ISO 8601, UTC).
        owner: A random token naming this one lease (empty when unknown).
    """

    host: str
    pid: int
    since: str
    owner: str = ""

    @classmethod
    def this_process(cls) -> LeaseHolder:
        """A holder naming this process, now, with a fresh owner token."""
        return cls(host=socket.gethostname(), pid=os.getpid(), since=utc_now_iso(), owner=_token())

    @classmethod
    def from_dict(cls, data: object) -> LeaseHolder | None:
        """Read a stored holder; ``None`` when it is not one (a torn or foreign record)."""
        if not isinstance(data, dict):
            return None
        host, pid, since = data.get("host"), data.get("pid"), data.get("since")
        if not isinstance(host, str) or not isinstance(pid, int) or not isinstance(since, str):
            return None
        owner = data.get("owner")
        return cls(host=host, pid=pid, since=since, owner=owner if isinstance(owner, str) else "")

    def to_dict(self) -> dict[str, Any]:
        """The holder as plain data."""
        return asdict(self)


def busy_error(session_id: str, holder: LeaseHolder | None) -> SessionBusyError:
    """The one-line refusal of a second run of a held session."""
    who = (
        f"another q2google run (pid {holder.pid} on {holder.host}) holds it since {holder.since}"
        if holder is not None
        else "another q2google run holds it"
    )
    return SessionBusyError(f"session {session_id!r} is busy: {who}; try again later")


@runtime_checkable
class SessionLeasing(Protocol):
    """A backend that can hand one run at a time a session (optional).

    ``lease`` returns a context manager: entering takes the lease or raises
    :class:`~q2google.errors.SessionBusyError` naming the holder; leaving releases it (after
    a block that raised nothing, the backend may first tidy what the run stored, as the JSON
    backend rewrites a long journal: the same records, fewer lines). Taking the lease never
    changes the session's stored state. A lease whose owner died must become free (at once,
    or after an expiry of the backend's choosing).
    """

    def lease(self, session_id: str) -> AbstractContextManager[LeaseHolder]:
        """Hold ``session_id`` for the ``with`` block.

        Raises:
            SessionBusyError: Another run (this process included) holds it.
        """
        ...

    def lease_holder(self, session_id: str) -> LeaseHolder | None:
        """Who holds ``session_id`` now, or ``None`` when it is free (its owner died, say)."""
        ...


_HELD: ContextVar[Mapping[tuple[int, str], LeaseHolder]] = ContextVar(
    "q2google_leases", default=MappingProxyType({})
)
"""Leases the current task holds (tasks it starts inherit them, siblings do not): taking one
again through the same backend object is a no-op."""


@asynccontextmanager
async def session_lease(backend: object, session_id: str) -> AsyncIterator[LeaseHolder | None]:
    """Hold ``session_id`` for the ``async with`` block, when ``backend`` can lease.

    The lease is taken in a worker thread (the backend may block on the network) and released
    on the way out, on success, error or cancellation (Ctrl-C) alike. Taking it again through
    the same backend object in the task that holds it (the CLI takes it, then the pipeline)
    is a no-op; another task gets :class:`~q2google.errors.SessionBusyError`.

    Yields:
        The holder (this process), or ``None`` when the backend does not implement
        :class:`SessionLeasing`.

    Raises:
        SessionBusyError: Another run holds the session.
    """
    if not isinstance(backend, SessionLeasing):
        yield None
        return
    held = (id(backend), session_id)
    outer = _HELD.get()
    if held in outer:  # this task holds it already (the CLI, then the pipeline inside)
        yield outer[held]
        return
    manager = backend.lease(session_id)
    holder = await asyncio.to_thread(manager.__enter__)
    token = _HELD.set(MappingProxyType({**outer, held: holder}))
    # The lease goes here, not in a thread: a cancelled run must not leave before it does.
    # The manager hears how the block ended (a backend may tidy up after a clean run only).
    try:
        yield holder
    except BaseException as error:
        _HELD.reset(token)
        manager.__exit__(type(error), error, error.__traceback__)
        raise
    _HELD.reset(token)
    manager.__exit__(None, None, None)


class FileLeases:
    """Session leases as OS file locks (``flock``, through the filelock library).

    One lock file per session, ``{directory}/{session_id}.lock``, holding who holds it (host,
    pid, since) for the busy message. The operating system releases the lock of a process that
    dies, however it dies: its session is free again at once. The JSON backend keeps its locks
    under ``{state_dir}/.locks``; a user's backend on a local disk can use this class as is.

    Args:
        directory: Where the lock files go (created when first needed).
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def path(self, session_id: str) -> Path:
        """The lock file of ``session_id`` (validating the id first)."""
        return self.directory / f"{validate_session_id(session_id)}.lock"

    @contextmanager
    def lease(self, session_id: str) -> Iterator[LeaseHolder]:
        """Hold ``session_id`` for the ``with`` block.

        Raises:
            SessionBusyError: Another process, or another lease of this one, holds it.
        """
        path = self.path(session_id)
        holder = LeaseHolder.this_process()
        payload = json.dumps(holder.to_dict()).encode()

        def write_holder(fd: int) -> None:
            os.ftruncate(fd, 0)
            os.pwrite(fd, payload, 0)

        lock = FileLock(path, mode=0o600, thread_local=False, on_acquired=write_holder)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            for attempt in range(LEASE_TRIES):
                try:
                    lock.acquire(blocking=False)
                    break
                except Timeout:
                    if attempt == LEASE_TRIES - 1:
                        raise busy_error(session_id, self._read(path)) from None
                    time.sleep(_TRY_INTERVAL)
        except OSError as error:
            raise StateWriteError(
                f"cannot lock session {session_id!r} in {self.directory}: {error.strerror or error}"
            ) from error
        try:
            yield holder
        finally:
            lock.release()

    def holder(self, session_id: str) -> LeaseHolder | None:
        """Who holds ``session_id`` now; ``None`` when nobody does.

        It tries the lock for an instant and lets it go at once.
        """
        path = self.path(session_id)
        if not path.is_file():
            return None
        probe = FileLock(path, thread_local=False)
        try:
            probe.acquire(blocking=False)
        except Timeout:
            return self._read(path) or LeaseHolder(host="?", pid=0, since="?")
        probe.release()
        return None

    @staticmethod
    def _read(path: Path) -> LeaseHolder | None:
        try:
            return LeaseHolder.from_dict(json.loads(path.read_bytes()))
        except (OSError, ValueError):
            return None


def _token() -> str:
    return os.urandom(12).hex()

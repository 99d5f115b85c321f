"""The MongoDB backend's session leases (its ledger claims are in
:mod:`q2google.state.mongo_claims`).

``leases`` holds one document per running session (``_id`` = session id, ``owner`` = a random
token of the run, ``host``, ``pid``, ``since``, ``expires_at``). It is taken with one atomic
``find_one_and_update`` (upsert) whose filter matches only an expired lease or one of the
same owner, so of two runs exactly one gets it (the other's upsert fails on the unique
``_id``). A heartbeat thread pushes ``expires_at`` on every third of the TTL; a run that
dies stops renewing, and its lease is taken over once it has expired.
Expiry compares this machine's clock with the holder's: keep clocks in sync (NTP) to well
under the TTL.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import pymongo
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError, PyMongoError

from q2google.errors import SessionBusyError, StateError, StateWriteError
from q2google.state.base import validate_session_id
from q2google.state.lease import LeaseHolder, busy_error

if TYPE_CHECKING:
    from pymongo.collection import Collection

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_LEASE_TTL_SECONDS = 60.0
"""How long a lease outlives its last heartbeat (heartbeats come every third of it)."""
RELEASE_TIMEOUT_SECONDS = 5.0
"""A lease that cannot be deleted in this time expires by itself."""
_TRIES = 3


class MongoLeases:
    """:class:`~q2google.state.lease.SessionLeasing` for
    :class:`~q2google.state.mongo.MongoBackend`."""

    if TYPE_CHECKING:  # provided by MongoBackend
        lease_ttl_seconds: float
        _leases: Collection[dict[str, Any]]

        def _call(
            self, doing: str, operation: Callable[[], T], kind: type[StateError] = StateError
        ) -> T: ...

    # -- SessionLeasing --------------------------------------------------------------------

    @contextmanager
    def lease(self, session_id: str) -> Iterator[LeaseHolder]:
        """Hold ``session_id``, renewed by a heartbeat until the block ends.

        Raises:
            SessionBusyError: Another run holds an unexpired lease on it.
            StateUnavailableError: MongoDB stayed unreachable.
        """
        validate_session_id(session_id)
        holder = LeaseHolder.this_process()
        current = self._call("lease", lambda: self._take(session_id, holder), StateWriteError)
        if current is not None:
            raise busy_error(session_id, current)
        heartbeat = _Heartbeat(
            lambda: self._renew(session_id, holder.owner), self.lease_ttl_seconds / 3, session_id
        )
        heartbeat.start()
        LOST_LEASES.discard(session_id)
        _HELD_HERE.add(session_id)
        try:
            yield holder
        finally:
            _HELD_HERE.discard(session_id)
            heartbeat.stop()
            try:
                with pymongo.timeout(RELEASE_TIMEOUT_SECONDS):
                    self._leases.delete_one({"_id": session_id, "owner": holder.owner})
            except PyMongoError as error:  # it expires by itself
                logger.warning("could not release the lease of %s (%s)", session_id, error)

    def lease_holder(self, session_id: str) -> LeaseHolder | None:
        """Who holds an unexpired lease on ``session_id``, or ``None``."""
        validate_session_id(session_id)
        return self._call("read", lambda: self._live_lease(session_id))

    def _live_lease(self, session_id: str) -> LeaseHolder | None:
        found = self._leases.find_one({"_id": session_id, "expires_at": {"$gt": mongo_now()}})
        if found is None:
            return None
        return LeaseHolder.from_dict(found) or LeaseHolder(host="?", pid=0, since="?")

    def _take(self, session_id: str, holder: LeaseHolder) -> LeaseHolder | None:
        """Take the lease; return ``None`` when taken, else who holds it."""
        for _ in range(_TRIES):
            now = mongo_now()
            try:
                taken = self._leases.find_one_and_update(
                    {
                        "_id": session_id,
                        "$or": [{"expires_at": {"$lte": now}}, {"owner": holder.owner}],
                    },
                    {"$set": {**holder.to_dict(), "expires_at": now + self._ttl()}},
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
            except DuplicateKeyError:  # held and unexpired: the upsert collided with it
                taken = None
            if taken is not None and taken.get("owner") == holder.owner:
                return None
            current = self._live_lease(session_id)
            if current is not None and not self._orphaned(session_id, current, holder):
                return current
            if current is not None:  # left by a dead run on this host: take it over now
                self._leases.update_one(
                    {"_id": session_id, "owner": current.owner},
                    {"$set": {"expires_at": now - timedelta(seconds=1)}},
                )
        return LeaseHolder(host="?", pid=0, since="?")

    @staticmethod
    def _orphaned(session_id: str, current: LeaseHolder, holder: LeaseHolder) -> bool:
        """Whether a live lease was left by a run of this host that is gone: a dead process,
        or this one when it no longer holds it (its release failed: MongoDB was away)."""
        if current.host != holder.host:
            return False  # another machine: only its expiry tells
        if current.pid == holder.pid:
            return session_id not in _HELD_HERE
        return not _alive(current.pid)

    def _renew(self, session_id: str, owner: str) -> bool:
        with pymongo.timeout(max(1.0, self.lease_ttl_seconds / 3)):
            expires = mongo_now() + self._ttl()
            renewed = self._leases.update_one(
                {"_id": session_id, "owner": owner}, {"$set": {"expires_at": expires}}
            )
        return renewed.matched_count == 1

    def _ttl(self) -> timedelta:
        return timedelta(seconds=self.lease_ttl_seconds)


class _Heartbeat(threading.Thread):
    """Renews a lease every ``interval`` seconds until stopped (a daemon: it dies with us)."""

    def __init__(self, renew: Callable[[], bool], interval: float, session_id: str) -> None:
        super().__init__(name=f"q2google-lease-{session_id}", daemon=True)
        self._renew, self._interval, self._session_id = renew, interval, session_id
        self._stopped = threading.Event()

    def run(self) -> None:
        renewed = time.monotonic()
        while not self._stopped.wait(self._interval):
            try:
                if not self._renew():
                    self._lose("it expired and another run took it over")
                    return
                renewed = time.monotonic()
            except PyMongoError as error:  # the next beat tries again; the TTL leaves room
                logger.debug("lease heartbeat of %s failed (%s)", self._session_id, error)
                if time.monotonic() - renewed > 3 * self._interval:  # past its lifetime
                    self._lose("MongoDB was out of reach for longer than its lifetime")
                    return

    def _lose(self, why: str) -> None:
        LOST_LEASES.add(self._session_id)
        logger.warning("the lease of session %s is lost: %s", self._session_id, why)

    def stop(self) -> None:
        self._stopped.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=RELEASE_TIMEOUT_SECONDS)


def mongo_now() -> datetime:
    """Now, as the naive UTC datetime the client reads back (``tz_aware=False``)."""
    return datetime.now(UTC).replace(tzinfo=None)


_HELD_HERE: set[str] = set()
"""Sessions whose MongoDB lease this process holds now."""
LOST_LEASES: set[str] = set()
"""Sessions whose lease this process held and lost: their next checkpoint stops the run."""


def refuse_without_lease(session_id: str) -> None:
    """Stop a run whose session lease was lost, before it writes another checkpoint.

    Raises:
        SessionBusyError: The lease was lost (exit 75: run the same command again).
    """
    if session_id in LOST_LEASES:
        raise SessionBusyError(
            f"session {session_id!r} is no longer this run's: its lease was lost (MongoDB out "
            "of reach, or another run took it over); stopping. Run the same command again"
        )


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: alive
        return True
    return True

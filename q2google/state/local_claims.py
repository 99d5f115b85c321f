"""The JSON backend's ledger claims: who is delivering a file now, in files under one lock.

Layout, in the ledger's directory (``{state_dir}/q2google-ledger``)::

    claims/{item}.json     who is delivering a file now: a name of the session's claim
                           record, claims/.{session_id}.claim (session_id, and since
                           when the record exists)
    .claims.lock           held for an instant around each claim (or group of claims)

A claim is read, judged and written while ``.claims.lock`` is held, so two processes never
both take one. A claim whose session's lease is free (its run died) is taken over. Claims are
not fsynced: a claim only means something while its run is alive. The threads of one process
queue on a thread lock before the file lock, whose waiters poll.

A session's claims are one file, its claim record ``claims/.{session_id}.claim``, under each
claimed file's name (hard links, :mod:`.local_links`): claiming makes no file, and releasing
deletes none, only names. Where hard links are refused (FAT, some network shares), each claim
is a file of its own.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from filelock import FileLock, Timeout

from q2google.errors import (
    InvalidSessionIdError,
    StateError,
    StateUnavailableError,
    StateWriteError,
)
from q2google.state.base import utc_now_iso, validate_session_id
from q2google.state.ledger import LEDGER_SESSION_ID
from q2google.state.local_links import link_names, replace_file

if TYPE_CHECKING:
    from q2google.state.lease import FileLeases

T = TypeVar("T")

CLAIMS_DIR = "claims"
CLAIMS_LOCK = ".claims.lock"
CLAIMS_LOCK_WAIT_SECONDS = 30.0
"""Each holder keeps the claims lock for an instant; waiting this long means a stuck disk."""
CLAIMS_LOCK_POLL_SECONDS = 0.002
"""How often a process waiting for another's claims lock tries it again (held an instant)."""
CLAIM_RECORD_LINKS = 1000
"""Names a session's claim record takes before a new one is made (filesystems limit a file's
links: NTFS to 1,024)."""


class JsonClaims:
    """:class:`~q2google.state.claims.LedgerClaims`' claims and
    :class:`~q2google.state.claims.BulkClaims` for :class:`~q2google.state.JsonFileBackend`."""

    if TYPE_CHECKING:  # provided by JsonFileBackend
        state_dir: Path

        @property
        def leases(self) -> FileLeases: ...
        def item_file_name(self, item_key: str) -> str: ...
        def _ledger_dir(self) -> Path: ...
        def _retrying(
            self,
            operation: Callable[[], T],
            verb: str,
            session_id: str,
            kind: type[StateError] = StateError,
        ) -> T: ...

    def claim_item(self, item_key: str, session_id: str) -> bool:
        """Claim a file for ``session_id`` (see :class:`~q2google.state.claims.LedgerClaims`)."""
        return self._retrying(
            lambda: self._claim_once(item_key, session_id),
            "write",
            LEDGER_SESSION_ID,
            StateWriteError,
        )

    def claim_items(self, item_keys: Sequence[str], session_id: str) -> list[str]:
        """Claim files for ``session_id`` under one hold of the claims lock (see
        :class:`~q2google.state.claims.BulkClaims`)."""
        return self._retrying(
            lambda: self._claim_many(item_keys, session_id),
            "write",
            LEDGER_SESSION_ID,
            StateWriteError,
        )

    def _claim_once(self, item_key: str, session_id: str) -> bool:
        return bool(self._claim_many([item_key], session_id))

    def _claim_many(self, item_keys: Sequence[str], session_id: str) -> list[str]:
        directory = self._claims_dir()
        won: list[str] = []
        claimed: list[Path] = []  # the claim files to write
        alive: dict[str, bool] = {}  # whether a holder's session runs, asked once each
        with self._claims_locked():
            for item_key in item_keys:
                path = directory / self.item_file_name(item_key)
                holder = _claim_holder(path)
                if holder is not None and holder != session_id:
                    if holder not in alive:
                        alive[holder] = self.leases.holder(holder) is not None
                    if alive[holder]:
                        continue
                if holder != session_id:
                    claimed.append(path)
                won.append(item_key)
            _write_claims(directory, claimed, session_id)
        return won

    def release_item(self, item_key: str, session_id: str) -> None:
        """Drop ``session_id``'s claim on a file, if it is its own."""
        self._retrying(
            lambda: self._release_once(item_key, session_id),
            "write",
            LEDGER_SESSION_ID,
            StateWriteError,
        )

    def release_items(self, item_keys: Sequence[str], session_id: str) -> None:
        """Drop ``session_id``'s claims on files under one hold of the claims lock."""
        self._retrying(
            lambda: self._release_many(item_keys, session_id),
            "write",
            LEDGER_SESSION_ID,
            StateWriteError,
        )

    def _release_once(self, item_key: str, session_id: str) -> None:
        self._release_many([item_key], session_id)

    def _release_many(self, item_keys: Sequence[str], session_id: str) -> None:
        directory = self._claims_dir()
        with self._claims_locked():
            for item_key in item_keys:
                path = directory / self.item_file_name(item_key)
                if _claim_holder(path) == session_id:
                    path.unlink(missing_ok=True)

    def _claims_dir(self) -> Path:
        directory = self._ledger_dir() / CLAIMS_DIR
        directory.mkdir(parents=True, exist_ok=True)
        return directory

    @contextmanager
    def _claims_locked(self) -> Iterator[None]:
        """Hold the claims lock: this process's threads queue on a thread lock first, so the
        file lock (whose waiters poll) is only ever contended by other processes."""
        path = self._ledger_dir() / CLAIMS_LOCK
        threads = _thread_lock(str(path))
        if not threads.acquire(timeout=CLAIMS_LOCK_WAIT_SECONDS):
            raise self._claims_stuck()
        try:
            lock = FileLock(path, mode=0o600, thread_local=False)
            try:
                lock.acquire(
                    timeout=CLAIMS_LOCK_WAIT_SECONDS, poll_interval=CLAIMS_LOCK_POLL_SECONDS
                )
            except Timeout:
                raise self._claims_stuck() from None
            try:
                yield
            finally:
                lock.release()
        finally:
            threads.release()

    def _claims_stuck(self) -> StateUnavailableError:
        return StateUnavailableError(
            f"the state store {self.state_dir} did not let q2google claim a file for "
            f"{CLAIMS_LOCK_WAIT_SECONDS:.0f} s; progress up to the last checkpoint is saved: "
            "run the same command again"
        )


def _write_claims(directory: Path, paths: Sequence[Path], session_id: str) -> None:
    """Give the session's claim record each of ``paths`` as a name
    (:func:`~.local_links.link_names`; not fsynced: a claim only counts while its run is
    alive)."""
    if not paths:
        return
    record = json.dumps({"session_id": session_id, "since": utc_now_iso()}).encode()
    source = _claim_record(directory, session_id, record, len(paths))
    link_names(source, paths, lambda _: record, durable=False)


def _claim_record(directory: Path, session_id: str, record: bytes, more: int) -> Path:
    """The session's claim record, ``.{session_id}.claim`` (hidden: never a claim's name),
    made again when it is missing, does not name the session (a power cut can empty a file
    made just before it), or when ``more`` names would take it past
    :data:`CLAIM_RECORD_LINKS` (past it anyway, a name that the filesystem refuses is a file
    of its own)."""
    path = directory / f".{session_id}.claim"
    try:
        fits = os.stat(path).st_nlink + more <= CLAIM_RECORD_LINKS
        if fits and _claim_holder(path) == session_id:
            return path
    except FileNotFoundError:
        pass
    replace_file(path, record, durable=False)  # the one before keeps its names
    return path


@functools.cache
def _thread_lock(path: str) -> threading.Lock:
    """This process's lock in front of the claims lock file ``path``."""
    return threading.Lock()


def _claim_holder(path: Path) -> str | None:
    """The session holding a claim file, or ``None`` (none, or unreadable: free to take)."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    holder = data.get("session_id") if isinstance(data, dict) else None
    try:
        return validate_session_id(holder)
    except InvalidSessionIdError:  # not written by q2google: nobody's
        return None

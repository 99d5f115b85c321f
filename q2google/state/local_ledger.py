"""The JSON backend's session leases and ledger claims: files and OS locks, nothing else.

Layout, beside the sessions under the state directory::

    {state_dir}/.locks/{session_id}.lock                 a session's lease (flock), and who
                                                         holds it
    {state_dir}/q2google-ledger/meta.json                the ledger, created race-free
    {state_dir}/q2google-ledger/items/{item}.json        one file per delivered file, each
                                                         replaced atomically
    {state_dir}/q2google-ledger/claims/{item}.json       who is delivering a file now
    {state_dir}/q2google-ledger/.claims.lock             held for an instant around each claim

A claim is read, judged and written while ``.claims.lock`` is held, so two processes never
both take one. A claim whose session's lease is free (its run died) is taken over. Claims are
not fsynced: a claim only means something while its run is alive.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from filelock import FileLock, Timeout

from q2google.errors import (
    InvalidSessionIdError,
    StateError,
    StateUnavailableError,
    StateWriteError,
)
from q2google.state.base import (
    ItemState,
    SessionState,
    new_session,
    utc_now_iso,
    validate_session_id,
)
from q2google.state.lease import FileLeases, LeaseHolder
from q2google.state.ledger import LEDGER_SESSION_ID
from q2google.state.retrying import on_disk

T = TypeVar("T")

LOCKS_DIR = ".locks"
CLAIMS_DIR = "claims"
CLAIMS_LOCK = ".claims.lock"
CLAIMS_LOCK_WAIT_SECONDS = 30.0
"""Each holder keeps the claims lock for an instant; waiting this long means a stuck disk."""


class JsonLeasesAndClaims:
    """:class:`~q2google.state.lease.SessionLeasing` and
    :class:`~q2google.state.claims.LedgerClaims` for :class:`~q2google.state.JsonFileBackend`.
    """

    if TYPE_CHECKING:  # provided by JsonFileBackend
        state_dir: Path
        retry_seconds: float

        def session_dir(self, session_id: str) -> Path: ...
        def item_file_name(self, item_key: str) -> str: ...
        def load(self, session_id: str) -> SessionState | None: ...
        def _write_file(self, path: Path, data: dict[str, Any]) -> None: ...
        def _sync_dir(self, directory: Path) -> None: ...

    # -- SessionLeasing --------------------------------------------------------------------

    @property
    def leases(self) -> FileLeases:
        """The session locks, under ``{state_dir}/.locks``."""
        return FileLeases(self.state_dir / LOCKS_DIR)

    def lease(self, session_id: str) -> AbstractContextManager[LeaseHolder]:
        """Hold ``session_id`` (an OS lock: a dead owner's is free at once).

        Raises:
            SessionBusyError: Another run holds it.
        """
        return self.leases.lease(session_id)

    def lease_holder(self, session_id: str) -> LeaseHolder | None:
        """Who holds ``session_id`` now, or ``None``."""
        return self.leases.holder(session_id)

    # -- LedgerClaims ----------------------------------------------------------------------

    def record_deliveries(self, entries: Sequence[ItemState]) -> None:
        """Write each entry to its own file, atomically; other entries are never touched.

        Raises:
            StateWriteError: The disk refused.
            StateUnavailableError: The disk stayed full (or failing) past the retries.
        """
        self._retrying(
            lambda: self._record_once(entries), "write", LEDGER_SESSION_ID, StateWriteError
        )

    def _record_once(self, entries: Sequence[ItemState]) -> None:
        items = self._ensure_ledger() / "items"
        for entry in entries:
            self._write_file(items / self.item_file_name(entry.item_key), entry.to_dict())
        if entries:
            self._sync_dir(items)

    def delivered_entry(self, item_key: str) -> ItemState | None:
        """The stored ledger entry of a file, or ``None``."""
        return self._retrying(lambda: self._entry_once(item_key), "read", LEDGER_SESSION_ID)

    def _entry_once(self, item_key: str) -> ItemState | None:
        path = self._ledger_dir() / "items" / self.item_file_name(item_key)
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except ValueError:  # torn by hand or by a disk: the ledger load names it
            return None
        entry = ItemState.from_dict(data) if isinstance(data, dict) else None
        return entry if entry is not None and entry.item_key == item_key else None

    def claim_item(self, item_key: str, session_id: str) -> bool:
        """Claim a file for ``session_id`` (see :class:`~q2google.state.claims.LedgerClaims`)."""
        return self._retrying(
            lambda: self._claim_once(item_key, session_id),
            "write",
            LEDGER_SESSION_ID,
            StateWriteError,
        )

    def _claim_once(self, item_key: str, session_id: str) -> bool:
        path = self._claims_dir() / self.item_file_name(item_key)
        with self._claims_locked():
            holder = _claim_holder(path)
            if holder == session_id:
                return True
            if holder is not None and self.leases.holder(holder) is not None:
                return False
            record = {"session_id": session_id, "item_key": item_key, "since": utc_now_iso()}
            temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(json.dumps(record).encode())
            os.replace(temporary, path)
        return True

    def release_item(self, item_key: str, session_id: str) -> None:
        """Drop ``session_id``'s claim on a file, if it is its own."""
        self._retrying(
            lambda: self._release_once(item_key, session_id),
            "write",
            LEDGER_SESSION_ID,
            StateWriteError,
        )

    def _release_once(self, item_key: str, session_id: str) -> None:
        path = self._claims_dir() / self.item_file_name(item_key)
        with self._claims_locked():
            if _claim_holder(path) == session_id:
                path.unlink(missing_ok=True)

    # -- internals -------------------------------------------------------------------------

    def _retrying(
        self,
        operation: Callable[[], T],
        verb: str,
        session_id: str,
        kind: type[StateError] = StateError,
    ) -> T:
        """Run ``operation``, retrying a full disk or an I/O error (see
        :func:`~q2google.state.retrying.on_disk`); the backend's reads and writes go through it."""
        return on_disk(
            operation,
            verb=verb,
            session_id=session_id,
            where=self.state_dir,
            seconds=self.retry_seconds,
            kind=kind,
        )

    def _ledger_dir(self) -> Path:
        return self.session_dir(LEDGER_SESSION_ID)

    def _claims_dir(self) -> Path:
        directory = self._ledger_dir() / CLAIMS_DIR
        directory.mkdir(parents=True, exist_ok=True)
        return directory

    @contextmanager
    def _claims_locked(self) -> Iterator[None]:
        lock = FileLock(self._ledger_dir() / CLAIMS_LOCK, mode=0o600, thread_local=False)
        try:
            lock.acquire(timeout=CLAIMS_LOCK_WAIT_SECONDS)
        except Timeout:
            raise StateUnavailableError(
                f"the state store {self.state_dir} did not let q2google claim a file for "
                f"{CLAIMS_LOCK_WAIT_SECONDS:.0f} s; progress up to the last checkpoint is saved: "
                "run the same command again"
            ) from None
        try:
            yield
        finally:
            lock.release()

    def _ensure_ledger(self) -> Path:
        """Create the ledger's directory and ``meta.json`` if missing, race-free.

        ``meta.json`` comes into being with ``os.link`` of a complete temporary file, which
        fails if another process was first: then theirs is kept, and the entries of both go
        to ``items/``. A ledger kept by an older version as a flat file is carried over.
        """
        directory = self._ledger_dir()
        meta = directory / "meta.json"
        if meta.is_file():
            return directory
        (directory / "items").mkdir(parents=True, exist_ok=True)
        ledger = self.load(LEDGER_SESSION_ID)  # an older flat file, if any
        if ledger is not None:
            for entry in ledger.items.values():
                path = directory / "items" / self.item_file_name(entry.item_key)
                self._write_file(path, entry.to_dict())
        else:
            ledger = new_session(
                LEDGER_SESSION_ID,
                start_date_iso="1970-01-01",
                end_date_iso="1970-01-01",
                batch_size=1,
            )
        temporary = directory / f".meta.json.{secrets.token_hex(4)}.tmp"
        self._write_file(temporary, ledger.meta_dict())
        try:
            os.link(temporary, meta)
        except FileExistsError:
            pass
        finally:
            temporary.unlink(missing_ok=True)
        self._sync_dir(directory)
        self._sync_dir(directory.parent)
        return directory


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

"""A user's own state backend, as short as the protocol allows: one JSON row per session."""

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

from q2google import SessionState
from q2google.state import LEDGER_SESSION_ID, FileLeases, ItemState, LeaseHolder, new_session


class SqliteBackend:
    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, body TEXT)")

    def load(self, session_id: str) -> SessionState | None:
        row = self._db.execute("SELECT body FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return SessionState.from_dict(json.loads(row[0])) if row else None

    def save(self, state: SessionState) -> None:
        body = json.dumps(state.to_dict())
        self._db.execute("INSERT OR REPLACE INTO sessions VALUES (?, ?)", (state.session_id, body))


class LeasingSqliteBackend(SqliteBackend):
    """The same backend with the two optional protocols, so that runs of it never overlap:
    one owner per session (q2google's ``FileLeases``, locks beside the database) and ledger
    claims and entries in tables of their own, changed in ``BEGIN IMMEDIATE`` transactions."""

    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self._db.executescript(
            "CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, body TEXT);"
            "CREATE TABLE IF NOT EXISTS claims (item_key TEXT PRIMARY KEY, session_id TEXT);"
            "CREATE TABLE IF NOT EXISTS ledger (item_key TEXT PRIMARY KEY, body TEXT);"
        )
        self._leases = FileLeases(path + ".locks")

    def lease(self, session_id: str) -> AbstractContextManager[LeaseHolder]:
        return self._leases.lease(session_id)

    def lease_holder(self, session_id: str) -> LeaseHolder | None:
        return self._leases.holder(session_id)

    def load(self, session_id: str) -> SessionState | None:
        if session_id != LEDGER_SESSION_ID:
            return super().load(session_id)
        rows = self._db.execute("SELECT body FROM ledger").fetchall()
        if not rows:
            return None
        ledger = new_session(
            session_id, start_date_iso="1970-01-01", end_date_iso="1970-01-01", batch_size=1
        )
        entries = [ItemState.from_dict(json.loads(body)) for (body,) in rows]
        return SessionState.from_parts(ledger.meta_dict(), entries, [])

    def claim_item(self, item_key: str, session_id: str) -> bool:
        with self._transaction():
            row = self._db.execute(
                "SELECT session_id FROM claims WHERE item_key = ?", (item_key,)
            ).fetchone()
            if row is not None and row[0] != session_id and self.lease_holder(row[0]) is not None:
                return False
            self._db.execute("INSERT OR REPLACE INTO claims VALUES (?, ?)", (item_key, session_id))
            return True

    def release_item(self, item_key: str, session_id: str) -> None:
        with self._transaction():
            self._db.execute(
                "DELETE FROM claims WHERE item_key = ? AND session_id = ?", (item_key, session_id)
            )

    def record_deliveries(self, entries: Sequence[ItemState]) -> None:
        with self._transaction():
            for entry in entries:
                body = json.dumps(entry.to_dict())
                self._db.execute(
                    "INSERT OR REPLACE INTO ledger VALUES (?, ?)", (entry.item_key, body)
                )

    def delivered_entry(self, item_key: str) -> ItemState | None:
        row = self._db.execute("SELECT body FROM ledger WHERE item_key = ?", (item_key,)).fetchone()
        return ItemState.from_dict(json.loads(row[0])) if row else None

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

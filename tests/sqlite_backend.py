"""A user's own state backend, as short as the protocol allows: one JSON row per session."""

import json
import sqlite3

from q2google import SessionState


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

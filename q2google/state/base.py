"""Session state and the protocol that persists it, under one name.

The pieces live in modules of their own, each one concept:

- :mod:`q2google.state.records`: the items, batches, errors, exclusions and the cursor;
- :mod:`q2google.state.session`: :class:`SessionState`;
- :mod:`q2google.state.changes`: the changes a backend writes (:class:`StateChanges`);
- :mod:`q2google.state.settled`: the files a run leaves out of memory;
- :mod:`q2google.state.encoding`: the stored form, its schema version and migrations;
- :mod:`q2google.state.protocol`: what a backend implements.

Everything is importable from here (and the public names from :mod:`q2google.state`).
"""

from __future__ import annotations

from q2google.state.changes import StateChanges
from q2google.state.encoding import SCHEMA_VERSION, migrate_legacy, refuse_other_session
from q2google.state.protocol import SessionCatalog, SyncStateBackend
from q2google.state.records import (
    MAX_ERROR_MESSAGE_LENGTH,
    MAX_SESSION_ID_LENGTH,
    BatchState,
    DiscoveryCursor,
    ErrorRecord,
    Exclusion,
    ExclusionKind,
    ItemState,
    StageName,
    StageStatus,
    make_item_key,
    utc_now_iso,
    validate_session_id,
)
from q2google.state.session import SessionState, new_session

__all__ = [
    "MAX_ERROR_MESSAGE_LENGTH",
    "MAX_SESSION_ID_LENGTH",
    "SCHEMA_VERSION",
    "BatchState",
    "DiscoveryCursor",
    "ErrorRecord",
    "Exclusion",
    "ExclusionKind",
    "ItemState",
    "SessionCatalog",
    "SessionState",
    "StageName",
    "StageStatus",
    "StateChanges",
    "SyncStateBackend",
    "make_item_key",
    "migrate_legacy",
    "new_session",
    "refuse_other_session",
    "utc_now_iso",
    "validate_session_id",
]

"""The protocol a state backend implements: two methods, and an optional catalogue.

Further optional protocols live beside their use: :class:`~q2google.state.SessionLeasing`,
:class:`~q2google.state.LedgerClaims`, :class:`~q2google.state.RequestCounts`. The
conformance suite (:class:`q2google.testing.SyncStateBackendContract`) checks them all.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from q2google.state.session import SessionState


@runtime_checkable
class SyncStateBackend(Protocol):
    """Where sessions are checkpointed. Two methods; see the backends guide for the contract.

    ``save`` must be atomic per record (the metadata, each item, each batch: each is stored
    either as before or as after, never torn) and durable once it returns. Backends that
    write incrementally take the changes from :meth:`SessionState.pending_changes`; others
    may store :meth:`SessionState.to_dict` whole.
    """

    def load(self, session_id: str) -> SessionState | None:
        """Return the stored session, or ``None`` when there is none with that id."""
        ...

    def save(self, state: SessionState) -> None:
        """Persist what changed in ``state`` since it was loaded or last saved."""
        ...


@runtime_checkable
class SessionCatalog(SyncStateBackend, Protocol):
    """A :class:`SyncStateBackend` that can also list and delete stored sessions (optional).

    ``q2google sessions`` needs it; a sync never does. Both built-in backends implement it.
    The delivery ledger (:data:`~q2google.state.LEDGER_SESSION_ID`) is listed like any other
    stored session; callers hide it.
    """

    def session_ids(self) -> list[str]:
        """Return the ids of the stored sessions, sorted."""
        ...

    def delete(self, session_id: str) -> bool:
        """Delete a session whole; return whether one was stored under ``session_id``.

        After a crash midway the session is either still whole or gone from ``load``.
        """
        ...

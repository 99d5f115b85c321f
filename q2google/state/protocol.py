"""The protocol a state backend implements: two methods, an optional catalogue, and the
optional loading a run prefers (:class:`UnsettledLoading`, with :func:`load_to_run` and
:func:`load_to_check` choosing it when a backend has it).

Further optional protocols live beside their use: :class:`~q2google.state.SessionLeasing`,
:class:`~q2google.state.LedgerClaims`, :class:`~q2google.state.LedgerLookups`,
:class:`~q2google.state.RequestCounts`, :class:`~q2google.state.SessionSummaries`. The
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


@runtime_checkable
class UnsettledLoading(SyncStateBackend, Protocol):
    """A :class:`SyncStateBackend` that can load a session without its settled files
    (optional; both built-in backends do).

    A run loads its session this way, so its memory and start-up grow with what is still to
    do, not with the library: see :mod:`q2google.state.settled`.
    """

    def load_unsettled(self, session_id: str) -> SessionState | None:
        """Return the stored session with its settled files in
        :attr:`~q2google.state.SessionState.settled` instead of its items (every file in
        items when the session :func:`~q2google.state.settled.settles` nothing), or ``None``.

        The state saves like one from :meth:`load`: only its changes are written, and the
        settled files stay stored as they are.
        """
        ...

    def load_meta(self, session_id: str) -> SessionState | None:
        """Return the stored session's metadata alone
        (:meth:`~q2google.state.SessionState.meta_only`: no files, never saved), for the checks
        a command makes before its run, or ``None``."""
        ...


def load_to_check(backend: SyncStateBackend, session_id: str) -> SessionState | None:
    """Load what a command checks before its run: the metadata alone when the backend can
    read it alone (an :class:`UnsettledLoading`), else the session as a run loads it."""
    if isinstance(backend, UnsettledLoading):
        return backend.load_meta(session_id)
    return backend.load(session_id)


def load_to_run(backend: SyncStateBackend, session_id: str) -> SessionState | None:
    """Load a session as a run needs it: without its settled files when the backend can
    leave them out (an :class:`UnsettledLoading`), else whole; it raises what the
    backend's load raises."""
    if isinstance(backend, UnsettledLoading):
        return backend.load_unsettled(session_id)
    return backend.load(session_id)

"""The optional protocol that makes the delivery ledger safe across processes.

Two different sessions may run at once (two cron jobs with overlapping windows). So that they
never upload the same GoPro file twice, a run *claims* a file in the ledger before uploading
it; the claim is atomic across processes. A backend that implements :class:`LedgerClaims`
also stores each ledger entry on its own, atomically, so that two processes recording
deliveries at the same time never lose one, and creating the ledger never races.

A claim counts while its session is running: the session's lease
(:class:`~q2google.state.lease.SessionLeasing`) is held. The claim of a session whose run
died is taken over. Both built-in backends implement the protocol; the
:class:`~q2google.state.DeliveryLedger` falls back to claims within one process, and to
whole-ledger saves, for backends that do not.

Two more optional protocols serve a ledger that grows large: :class:`LedgerLookups` reads
the entries of given files only (a run asks about its own files, not the whole ledger), and
:class:`LedgerRepair` sets unreadable records aside, for ``q2google ledger rebuild``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol, runtime_checkable

from q2google.state.base import ItemState


@runtime_checkable
class LedgerClaims(Protocol):
    """A backend that keeps the cross-session ledger safe across processes (optional)."""

    def claim_item(self, item_key: str, session_id: str) -> bool:
        """Claim a file for ``session_id``, atomically across processes.

        Returns:
            ``True`` when the claim is ``session_id``'s now: there was none, it was already
            this session's, or its holder's session is not running (no lease held). ``False``
            when another running session holds it. Whether the file is delivered already is
            the caller's question (:meth:`delivered_entry`).
        """
        ...

    def release_item(self, item_key: str, session_id: str) -> None:
        """Drop ``session_id``'s claim on a file; nothing when the claim is not its own."""
        ...

    def record_deliveries(self, entries: Sequence[ItemState]) -> None:
        """Store ledger entries, each on its own and atomically, creating the ledger if needed.

        Entries recorded meanwhile by other processes are kept; an entry recorded twice
        keeps the last form.
        """
        ...

    def delivered_entry(self, item_key: str) -> ItemState | None:
        """The ledger entry of a file as stored now, or ``None`` when it is not delivered."""
        ...


@runtime_checkable
class BulkClaims(Protocol):
    """A :class:`LedgerClaims` backend that claims and releases many files in one call
    (optional): a run of small files claims its next files together, not one at a time."""

    def claim_items(self, item_keys: Sequence[str], session_id: str) -> list[str]:
        """:meth:`LedgerClaims.claim_item` for each key, each claim atomic.

        Returns:
            The keys whose claim is ``session_id``'s now, in the order given.
        """
        ...

    def release_items(self, item_keys: Sequence[str], session_id: str) -> None:
        """:meth:`LedgerClaims.release_item` for each key."""
        ...


@runtime_checkable
class LedgerLookups(Protocol):
    """A backend that reads ledger entries by key, without loading the whole ledger (optional).

    :class:`~q2google.state.DeliveryLedger` uses it with a backend that is also a
    :class:`LedgerClaims`; without it, the first lookup loads the whole ledger.
    """

    def delivered_entries(self, item_keys: Collection[str]) -> dict[str, ItemState]:
        """The ledger entries of those of ``item_keys`` that are delivered, as stored now.

        An unreadable entry counts as not delivered (the backend says so in a warning naming
        it and ``q2google ledger rebuild``), so that one damaged record does not stop a run.

        Returns:
            Entry by item key; keys without an entry are left out.
        """
        ...

    def ledger_size(self) -> int:
        """How many entries the ledger holds (0 when there is none), without reading them."""
        ...


@runtime_checkable
class LedgerRepair(Protocol):
    """A backend that can set unreadable ledger records aside (optional).

    ``q2google ledger rebuild`` calls it before it records what it found in Google Photos, so
    that the ledger loads again: entries it found are written anew, the rest were of media
    items that are no longer there.
    """

    def repair_ledger(self) -> list[str]:
        """Set every unreadable ledger record aside (kept for a person to inspect, never read
        again) and make the ledger's metadata valid.

        Returns:
            Where each record set aside was, for the user.
        """
        ...

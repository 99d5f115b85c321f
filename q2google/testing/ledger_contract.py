"""The contract's ledger-lookup part: a run asks the ledger about its own files only.

Meant for the bases of :class:`~q2google.testing.SyncStateBackendContract` (which provides the
``backend`` and ``reopen_backend`` fixtures). Every backend must answer
:meth:`~q2google.state.DeliveryLedger.delivered_many` right, through the whole-ledger load if
need be; a backend that implements :class:`~q2google.state.claims.LedgerLookups` (with
:class:`~q2google.state.claims.LedgerClaims`) must answer it without loading the whole ledger,
and its :meth:`~q2google.state.claims.LedgerLookups.delivered_entries` and
:meth:`~q2google.state.claims.LedgerLookups.ledger_size` are checked directly; others skip
those tests (the protocol is optional).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from q2google.state import (
    LEDGER_SESSION_ID,
    DeliveryLedger,
    ItemState,
    LedgerClaims,
    StageStatus,
    SyncStateBackend,
)
from q2google.state.claims import LedgerLookups

LOOKUP_KEYS = 2_000
"""Keys asked about at once in the large lookup: a session's worth."""


def delivered_file(media_id: str, media_item_id: str, file_index: int = 0) -> ItemState:
    """A file of ``media_id`` that Google Photos holds as ``media_item_id``."""
    return ItemState(
        media_id=media_id,
        file_index=file_index,
        file_name=f"{media_id}.JPG",
        media_type="Photo",
        media_item_id=media_item_id,
        create_status=StageStatus.COMPLETED,
    )


def recorded(backend: SyncStateBackend, *files: ItemState) -> None:
    """Record ``files`` in the backend's ledger, as a run does after their creation."""
    ledger = DeliveryLedger(backend)
    for item in files:
        ledger.record(item)
    ledger.save()


def looking_up(backend: SyncStateBackend) -> LedgerLookups:
    """The backend as a :class:`LedgerLookups` (and claims), or skip the test."""
    if not isinstance(backend, LedgerLookups) or not isinstance(backend, LedgerClaims):
        pytest.skip("the backend does not look ledger entries up by key (optional)")
    return backend


@contextmanager
def whole_loads(backend: SyncStateBackend) -> Iterator[list[str]]:
    """Count the backend's loads of the whole ledger while the block runs."""
    loads: list[str] = []
    original = backend.load

    def load(session_id: str) -> Any:
        if session_id == LEDGER_SESSION_ID:
            loads.append(session_id)
        return original(session_id)

    try:
        backend.load = load  # type: ignore[method-assign]
    except AttributeError:  # pragma: no cover - a backend with __slots__
        pytest.skip("the backend's load cannot be watched")
    try:
        yield loads
    finally:
        del backend.load


class LedgerLookupContract:
    """Behaviour of the ledger's lookups by key, on any backend."""

    def test_delivered_many_answers_for_the_files_asked_only(
        self, backend: SyncStateBackend, reopen_backend: Callable[[], SyncStateBackend]
    ) -> None:
        recorded(backend, *(delivered_file(f"m{n}", f"google-{n}") for n in range(5)))
        ledger = DeliveryLedger(reopen_backend())
        asked = ["m1-0", "m3-0", "never-0", "m1-0", "m3-1"]
        assert ledger.delivered_many(asked) == {"m1-0": "google-1", "m3-0": "google-3"}
        assert ledger.delivered_many([]) == {}
        assert DeliveryLedger(reopen_backend()).delivered_many(["m0-0"]) == {"m0-0": "google-0"}

    def test_no_ledger_yet_means_nothing_delivered(self, backend: SyncStateBackend) -> None:
        ledger = DeliveryLedger(backend)
        assert ledger.delivered_many(["m1-0", "m2-0"]) == {}
        assert not ledger.record(ItemState(media_id="m1", file_name="m1.JPG")), "no id: no news"
        assert ledger.record(delivered_file("m1", "google-1"))
        assert ledger.delivered_many(["m1-0"]) == {"m1-0": "google-1"}, "recorded, unsaved"
        ledger.save()
        assert DeliveryLedger(backend).delivered_many(["m1-0"]) == {"m1-0": "google-1"}

    def test_lookups_are_fresh_and_recording_what_is_stored_is_no_news(
        self, backend: SyncStateBackend, reopen_backend: Callable[[], SyncStateBackend]
    ) -> None:
        looking_up(backend)  # otherwise: the whole ledger as loaded once
        ledger = DeliveryLedger(backend)
        assert ledger.delivered_many(["late-0", "kept-0"]) == {}
        recorded(reopen_backend(), delivered_file("late", "google-late"))  # another process
        assert ledger.delivered_many(["late-0"]) == {"late-0": "google-late"}
        assert not ledger.record(delivered_file("late", "google-late")), "stored as it is"
        assert ledger.record(delivered_file("late", "google-again")), "another media item"
        assert ledger.record(delivered_file("kept", "google-kept"))
        ledger.save()
        again = DeliveryLedger(reopen_backend())
        assert again.delivered_many(["late-0", "kept-0"]) == {
            "late-0": "google-again",
            "kept-0": "google-kept",
        }

    def test_a_large_lookup_answers_exactly(
        self, backend: SyncStateBackend, reopen_backend: Callable[[], SyncStateBackend]
    ) -> None:
        delivered = {f"big{n:05d}-0": f"google-{n}" for n in range(0, LOOKUP_KEYS, 97)}
        recorded(backend, *(delivered_file(key[:-2], item) for key, item in delivered.items()))
        recorded(backend, delivered_file("elsewhere", "google-elsewhere"))
        asked = [f"big{n:05d}-0" for n in range(LOOKUP_KEYS)]
        assert DeliveryLedger(reopen_backend()).delivered_many(asked) == delivered

    def test_lookups_read_only_the_entries_asked(
        self, backend: SyncStateBackend, reopen_backend: Callable[[], SyncStateBackend]
    ) -> None:
        looking_up(backend)
        recorded(backend, *(delivered_file(f"m{n}", f"google-{n}") for n in range(3)))
        store = reopen_backend()
        ledger = DeliveryLedger(store)
        with whole_loads(store) as loads:
            assert ledger.delivered_many(["m1-0", "m9-0"]) == {"m1-0": "google-1"}
            assert not ledger.record(delivered_file("m1", "google-1"))
            assert ledger.record(delivered_file("m9", "google-9"))
            ledger.save()
            assert ledger.delivered("m9-0") == "google-9"
            assert ledger.claim("m8-0", "lookups")
            ledger.release_all("lookups")
            assert DeliveryLedger(store).delivered_many(["m2-0", "m9-0"]) == {
                "m2-0": "google-2",
                "m9-0": "google-9",
            }
        assert loads == [], "the whole ledger was loaded"

    def test_delivered_entries_and_ledger_size(
        self, backend: SyncStateBackend, reopen_backend: Callable[[], SyncStateBackend]
    ) -> None:
        lookups = looking_up(backend)
        assert lookups.ledger_size() == 0
        assert lookups.delivered_entries(["m0-0"]) == {}
        recorded(backend, *(delivered_file(f"m{n}", f"google-{n}", n % 2) for n in range(4)))
        reopened = looking_up(reopen_backend())
        entries = reopened.delivered_entries(["m0-0", "m1-1", "m1-0", "m0-0"])
        assert sorted(entries) == ["m0-0", "m1-1"]
        assert entries["m1-1"].media_item_id == "google-1"
        assert entries["m1-1"].media_id == "m1"
        assert entries["m1-1"].file_index == 1
        assert reopened.ledger_size() == 4

"""The conformance suite every :class:`~q2google.state.SyncStateBackend` passes.

Subclass :class:`SyncStateBackendContract` in a test module and provide a ``backend``
fixture; provide ``reopen_backend`` (a new instance over the same storage) to prove that
state survives the object, and ``backend_spec`` to run the crash test in a child process::

    from q2google.testing import BackendSpec, SyncStateBackendContract

    class TestMyBackend(SyncStateBackendContract):
        @pytest.fixture
        def backend(self, tmp_path):
            return MyBackend(tmp_path)

        @pytest.fixture
        def reopen_backend(self, tmp_path):
            return lambda: MyBackend(tmp_path)

        @pytest.fixture
        def backend_spec(self, tmp_path):
            return BackendSpec("my_package.backend:MyBackend", {"path": str(tmp_path)})

The suite includes :class:`~q2google.testing.lease_contract.LeaseContract` (session leases and
ledger claims), :class:`~q2google.testing.ledger_contract.LedgerLookupContract` (ledger
lookups by key), :class:`~q2google.testing.counts_contract.RequestCountsContract` (requests
counted against Google's daily quota),
:class:`~q2google.testing.summary_contract.SessionSummariesContract` (session summaries) and
:class:`~q2google.testing.unsettled_contract.UnsettledLoadingContract` (runs that load only
what is still to do), for
backends that implement those optional protocols (a lease record with an expiry should get a
short one from ``backend_spec``, so that a dead owner's test waits little; ``drop_summary``
enables the test of sessions stored without a summary).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from q2google.state import (
    BatchState,
    DeliveryLedger,
    ErrorRecord,
    ItemState,
    SessionCatalog,
    SessionState,
    StageName,
    StageStatus,
    SyncStateBackend,
    make_item_key,
    new_session,
)
from q2google.testing.counts_contract import RequestCountsContract
from q2google.testing.lease_contract import LeaseContract
from q2google.testing.ledger_contract import LedgerLookupContract
from q2google.testing.samples import sample_session
from q2google.testing.summary_contract import SessionSummariesContract
from q2google.testing.unsettled_contract import UnsettledLoadingContract

__all__ = ["BackendSpec", "SyncStateBackendContract", "sample_session"]

LARGE_SESSION_ITEMS = 10_000
CRASH_ROUNDS = 12
CRASH_LOOP_ITEMS = 40


@dataclass(frozen=True)
class BackendSpec:
    """How another process builds the backend under test over the same storage.

    Attributes:
        factory: ``"module:callable"`` returning the backend when called with ``kwargs``.
        kwargs: JSON-compatible keyword arguments for ``factory``.
        env: Extra environment variables for the child process.
    """

    factory: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)


class SyncStateBackendContract(
    LeaseContract,
    LedgerLookupContract,
    RequestCountsContract,
    SessionSummariesContract,
    UnsettledLoadingContract,
):
    """Behaviour every state backend must show. Subclass it and provide ``backend``."""

    @pytest.fixture
    def backend(self) -> SyncStateBackend:
        """The backend under test, over empty storage. Subclasses must provide it."""
        pytest.fail("a SyncStateBackendContract subclass must define a `backend` fixture")

    @pytest.fixture
    def reopen_backend(self, backend: SyncStateBackend) -> Callable[[], SyncStateBackend]:
        """Return a new backend over the same storage (default: the same instance)."""
        return lambda: backend

    @pytest.fixture
    def backend_spec(self) -> BackendSpec | None:
        """How a child process builds this backend, for the crash test (default: skip it)."""
        return None

    # -- helpers -----------------------------------------------------------------------------

    @staticmethod
    def assert_stored(
        reopen_backend: Callable[[], SyncStateBackend], expected: SessionState
    ) -> SessionState:
        """Load ``expected``'s session from a fresh backend and check it equals ``expected``."""
        loaded = reopen_backend().load(expected.session_id)
        assert loaded is not None, f"session {expected.session_id!r} was not found after save"
        assert loaded.to_dict() == expected.to_dict(), "stored session differs from saved one"
        return loaded

    # -- the contract --------------------------------------------------------------------------

    def test_missing_session_loads_as_none(self, backend: SyncStateBackend) -> None:
        assert backend.load("never-saved") is None

    def test_round_trip_keeps_every_field(
        self, backend: SyncStateBackend, reopen_backend: Callable[[], SyncStateBackend]
    ) -> None:
        state = sample_session()
        backend.save(state)
        loaded = self.assert_stored(reopen_backend, state)
        assert list(loaded.items) == list(state.items), "item order changed"
        assert loaded.items == state.items
        assert loaded.batches == state.batches
        assert loaded.stages == state.stages

    def test_loaded_state_has_no_pending_changes(
        self, backend: SyncStateBackend, reopen_backend: Callable[[], SyncStateBackend]
    ) -> None:
        backend.save(sample_session())
        loaded = reopen_backend().load("contract")
        assert loaded is not None
        assert not loaded.has_pending_changes

    def test_incremental_saves_accumulate(
        self, backend: SyncStateBackend, reopen_backend: Callable[[], SyncStateBackend]
    ) -> None:
        state = sample_session(items=6)
        backend.save(state)
        first = next(iter(state.items.values()))

        first.transfer_status = StageStatus.COMPLETED
        first.upload_offset = 524_288
        backend.save(state)
        self.assert_stored(reopen_backend, state)

        state.add_item(ItemState(media_id="late", file_name="GX010001.MP4", size_bytes=5))
        state.batches[1].status = StageStatus.RUNNING
        state.set_stage(StageName.TRANSFER, StageStatus.COMPLETED)
        backend.save(state)
        self.assert_stored(reopen_backend, state)

        state.add_batch(BatchState(batch_index=state.next_batch_index(), item_keys=("late-0",)))
        first.clear_error(StageName.TRANSFER)
        backend.save(state)
        self.assert_stored(reopen_backend, state)

    def test_continuing_a_loaded_session(
        self, backend: SyncStateBackend, reopen_backend: Callable[[], SyncStateBackend]
    ) -> None:
        backend.save(sample_session(items=4))
        resumed_backend = reopen_backend()
        resumed = resumed_backend.load("contract")
        assert resumed is not None
        resumed.items["burst0-1"].create_status = StageStatus.COMPLETED
        resumed.add_item(ItemState(media_id="new", file_name="G0010001.JPG"))
        resumed.discovery_next_page = 9
        resumed_backend.save(resumed)
        again = self.assert_stored(reopen_backend, resumed)
        assert again.items["burst0-1"].create_status is StageStatus.COMPLETED
        assert again.discovery_next_page == 9

    def test_saving_unchanged_state_is_harmless(
        self, backend: SyncStateBackend, reopen_backend: Callable[[], SyncStateBackend]
    ) -> None:
        state = sample_session()
        backend.save(state)
        backend.save(state)
        backend.save(state)
        self.assert_stored(reopen_backend, state)

    def test_a_full_save_stores_exactly_the_state(
        self, backend: SyncStateBackend, reopen_backend: Callable[[], SyncStateBackend]
    ) -> None:
        stored = sample_session("copy", items=6)
        backend.save(stored)
        copy = SessionState.from_dict(stored.to_dict())
        copy_data = copy.to_dict()
        copy_data["items"] = copy_data["items"][:4]
        copy_data["batches"] = copy_data["batches"][:1]
        smaller = SessionState.from_dict(copy_data)
        smaller.mark_all_dirty()  # as when copying a session into a backend
        backend.save(smaller)
        loaded = self.assert_stored(reopen_backend, smaller)
        assert len(loaded.items) == 4
        assert len(loaded.batches) == 1

    def test_the_delivery_ledger_is_kept(
        self, backend: SyncStateBackend, reopen_backend: Callable[[], SyncStateBackend]
    ) -> None:
        ledger = DeliveryLedger(backend)
        delivered = sample_session("delivered", items=5)
        for item in delivered.items.values():
            ledger.record(item)
        ledger.save()
        assert not ledger.record(delivered.items["burst0-0"]), "recording twice is no news"
        again = DeliveryLedger(reopen_backend())
        assert len(again) == 5
        assert again.media_item_id("burst0-1") == "google-1"
        assert again.media_item_id("never-0") is None
        late = ItemState(media_id="late", file_name="x.JPG", media_item_id="google-late")
        again.record(late)
        again.save()
        assert DeliveryLedger(reopen_backend()).media_item_id("late-0") == "google-late"

    def test_sessions_are_isolated(
        self, backend: SyncStateBackend, reopen_backend: Callable[[], SyncStateBackend]
    ) -> None:
        one, two = sample_session("session-one"), sample_session("session-two")
        backend.save(one)
        backend.save(two)
        one.items["burst0-0"].media_item_id = "only-in-one"
        one.album_title = "Only one"
        backend.save(one)
        self.assert_stored(reopen_backend, one)
        stored_two = self.assert_stored(reopen_backend, two)
        assert stored_two.items["burst0-0"].media_item_id == "google-0"
        assert stored_two.album_title == "Trips 2024"

    def test_catalogue_lists_and_deletes_sessions(
        self, backend: SyncStateBackend, reopen_backend: Callable[[], SyncStateBackend]
    ) -> None:
        """Optional part: backends that are a :class:`SessionCatalog` list and delete."""
        if not isinstance(backend, SessionCatalog):
            pytest.skip("the backend does not list or delete sessions (optional)")
        keep, doomed = sample_session("catalogue-keep"), sample_session("catalogue-doomed")
        backend.save(keep)
        backend.save(doomed)
        assert {"catalogue-keep", "catalogue-doomed"} <= set(backend.session_ids())
        assert backend.delete("catalogue-doomed") is True
        assert backend.delete("catalogue-doomed") is False
        assert backend.delete("catalogue-never") is False
        reopened = reopen_backend()
        assert reopened.load("catalogue-doomed") is None
        self.assert_stored(reopen_backend, keep)
        assert isinstance(reopened, SessionCatalog)
        assert "catalogue-doomed" not in reopened.session_ids()
        assert "catalogue-keep" in reopened.session_ids()
        reused = new_session(
            "catalogue-doomed", start_date_iso="2025-01-01", end_date_iso="2025-01-02", batch_size=5
        )
        reused.add_item(ItemState(media_id="fresh", file_name="NEW.JPG"))
        backend.save(reused)  # the id is free again, with nothing of the old session in it
        stored = self.assert_stored(reopen_backend, reused)
        assert list(stored.items) == ["fresh-0"]
        assert not stored.batches

    def test_unicode_and_hostile_names(
        self, backend: SyncStateBackend, reopen_backend: Callable[[], SyncStateBackend]
    ) -> None:
        state = new_session(
            "unicode-names",
            start_date_iso="2024-01-01",
            end_date_iso="2024-12-31",
            batch_size=5,
            album_title="Été à Zürich 🏔️ — 東京",
        )
        names = [
            "Plongée été 🐠.MP4",
            "東京タワー.JPG",
            "../../etc/passwd",
            "a/b\\c.JPG",
            "%2e%2e.JPG",
        ]
        for index, name in enumerate(names):
            item = ItemState(media_id=f"média/{index}/..", file_name=name)
            item.record_error(ErrorRecord(stage=StageName.TRANSFER, message=f"échec: {name}"))
            state.add_item(item)
        backend.save(state)
        loaded = self.assert_stored(reopen_backend, state)
        assert [item.file_name for item in loaded.items.values()] == names

    def test_keys_differing_only_in_case_stay_apart(
        self, backend: SyncStateBackend, reopen_backend: Callable[[], SyncStateBackend]
    ) -> None:
        state = new_session(
            "case", start_date_iso="2024-01-01", end_date_iso="2024-01-02", batch_size=5
        )
        state.add_item(ItemState(media_id="AbCd", file_name="upper.JPG"))
        state.add_item(ItemState(media_id="abcd", file_name="lower.JPG"))
        backend.save(state)
        loaded = self.assert_stored(reopen_backend, state)
        assert loaded.items[make_item_key("AbCd", 0)].file_name == "upper.JPG"
        assert loaded.items[make_item_key("abcd", 0)].file_name == "lower.JPG"

    def test_large_session(
        self, backend: SyncStateBackend, reopen_backend: Callable[[], SyncStateBackend]
    ) -> None:
        state = sample_session("large", items=LARGE_SESSION_ITEMS)
        backend.save(state)
        loaded = self.assert_stored(reopen_backend, state)
        assert len(loaded.items) == LARGE_SESSION_ITEMS
        for key in ("burst0-0", "media005000-0", f"media{LARGE_SESSION_ITEMS - 1:06d}-0"):
            state.items[key].create_status = StageStatus.COMPLETED
        state.add_item(ItemState(media_id="one-more", file_name="GOPR9999.JPG"))
        backend.save(state)
        self.assert_stored(reopen_backend, state)

    def test_killed_while_saving_leaves_a_loadable_checkpoint(
        self,
        backend_spec: BackendSpec | None,
        reopen_backend: Callable[[], SyncStateBackend],
    ) -> None:
        if backend_spec is None:
            pytest.skip("no backend_spec: this backend cannot be rebuilt in a child process")
        rng = random.Random(20241123)
        for round_number in range(CRASH_ROUNDS):
            session_id = f"crash-{round_number}"
            acknowledged = _run_and_kill(backend_spec, session_id, rng.uniform(0.02, 0.4))
            state = reopen_backend().load(session_id)
            assert state is not None, f"round {round_number}: an acknowledged session vanished"
            allowed = {acknowledged, acknowledged + 1}
            counters = {item.attempts for item in state.items.values()}
            counters.add(state.discovery_next_page - 1)
            counters.update(batch.attempts for batch in state.batches.values())
            assert counters <= allowed, (
                f"round {round_number}: after save #{acknowledged} was acknowledged the store "
                f"holds save numbers {sorted(counters)}"
            )
            assert len(state.items) == CRASH_LOOP_ITEMS


def _run_and_kill(spec: BackendSpec, session_id: str, after_seconds: float) -> int:
    """Run the save loop in a child, SIGKILL it, return the last save it acknowledged."""
    request = json.dumps(
        {
            "factory": spec.factory,
            "kwargs": spec.kwargs,
            "session_id": session_id,
            "items": CRASH_LOOP_ITEMS,
        }
    )
    child = subprocess.Popen(
        [sys.executable, "-m", "q2google.testing.save_loop", request],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **spec.env},
    )
    assert child.stdout is not None
    ready = child.stdout.readline()
    if not ready.startswith(b"ready"):
        child.kill()
        _, stderr = child.communicate()
        pytest.fail(f"save loop did not start: {ready!r} {stderr.decode(errors='replace')}")
    time.sleep(after_seconds)
    child.send_signal(signal.SIGKILL)
    stdout, stderr = child.communicate()
    assert child.returncode == -signal.SIGKILL, stderr.decode(errors="replace")
    lines = stdout.decode().split()
    return int(lines[-1]) if lines else 0

"""The contract's part for runs that leave settled files out of memory.

Meant for the bases of :class:`~q2google.testing.SyncStateBackendContract` (which provides the
``backend`` and ``reopen_backend`` fixtures). A backend that implements
:class:`~q2google.state.UnsettledLoading` must load only what is still to do, count the rest
the same, and keep it stored through the saves of such a state; others skip these tests (the
protocol is optional: a run then loads the whole session).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from q2google.errors import StateError
from q2google.sessions import summarize
from q2google.state import (
    BatchState,
    ErrorRecord,
    ItemState,
    SessionState,
    StageName,
    StageStatus,
    SyncStateBackend,
    UnsettledLoading,
    new_session,
)
from q2google.state.base import Exclusion, ExclusionKind

SETTLED = 40
"""Settled files in the sample session (the open ones come after them)."""


def settled_and_open(session_id: str = "lean", *, recorded: bool = True) -> SessionState:
    """A session of :data:`SETTLED` settled files and one file in each state that is not.

    Args:
        session_id: Its id.
        recorded: :attr:`SessionState.ledger_recorded` (``False``: as an earlier version).
    """
    state = new_session(
        session_id,
        start_date_iso="2024-01-01T00:00:00+00:00",
        end_date_iso="2024-12-31T00:00:00+00:00",
        batch_size=50,
        album_title="Trips",
    )
    state.ledger_recorded = recorded
    for stage in StageName:
        state.set_stage(stage, StageStatus.COMPLETED)

    def add(media_id: str, **fields: Any) -> ItemState:
        item = ItemState(
            media_id=media_id,
            file_name=f"{media_id}.JPG",
            media_type="Photo",
            captured_at="2024-05-01T10:00:00+00:00",
            size_bytes=1000,
            discovery_status=StageStatus.COMPLETED,
            **fields,
        )
        return state.add_item(item)

    for number in range(SETTLED):
        add(
            f"done{number:03d}",
            transfer_status=StageStatus.COMPLETED,
            create_status=StageStatus.COMPLETED,
            media_item_id=f"google-{number}",
        )
    add("pending")
    add("uploaded", transfer_status=StageStatus.COMPLETED, upload_token="token-1")
    failed = add("failed", transfer_status=StageStatus.FAILED)
    failed.record_error(ErrorRecord(stage=StageName.TRANSFER, message="the CDN said 500"))
    add(
        "deferred",
        exclusion=Exclusion(kind=ExclusionKind.DEFERRED, reason="still transcoding"),
    )
    add(  # delivered by another session, not yet in this one's album
        "elsewhere",
        transfer_status=StageStatus.SKIPPED,
        create_status=StageStatus.COMPLETED,
        media_item_id="google-elsewhere",
    )
    return state


OPEN = {"pending-0", "uploaded-0", "failed-0", "deferred-0", "elsewhere-0"}


def unsettled_loading(backend: SyncStateBackend) -> UnsettledLoading:
    """The backend as an :class:`UnsettledLoading`, or skip the test."""
    if not isinstance(backend, UnsettledLoading):
        pytest.skip("the backend loads sessions whole only (optional)")
    return backend


class UnsettledLoadingContract:
    """:class:`~q2google.state.UnsettledLoading`: what a run loads, and what it saves."""

    def test_a_run_loads_what_is_still_to_do_and_counts_the_rest(
        self, backend: SyncStateBackend, reopen_backend: Callable[[], SyncStateBackend]
    ) -> None:
        lean = unsettled_loading(backend)
        state = settled_and_open()
        lean.save(state)
        loaded = unsettled_loading(reopen_backend()).load_unsettled("lean")
        assert loaded is not None
        assert set(loaded.items) == OPEN
        assert set(loaded.settled) == set(state.items) - OPEN
        assert all(loaded.knows(key) for key in state.items)
        assert loaded.known_media_ids() == {item.media_id for item in state.items.values()}
        assert loaded.settled["done000-0"].captured_at == "2024-05-01T10:00:00+00:00"
        assert not loaded.has_pending_changes
        assert summarize(loaded) == summarize(state)
        assert unsettled_loading(backend).load_unsettled("never-saved") is None

    def test_saves_of_a_lean_state_keep_the_settled_files(
        self, backend: SyncStateBackend, reopen_backend: Callable[[], SyncStateBackend]
    ) -> None:
        lean = unsettled_loading(backend)
        lean.save(settled_and_open())
        loaded = unsettled_loading(reopen_backend()).load_unsettled("lean")
        assert loaded is not None
        uploaded = loaded.items["uploaded-0"]
        uploaded.create_status = StageStatus.COMPLETED
        uploaded.media_item_id, uploaded.upload_token = "google-uploaded", None
        new = loaded.add_item(ItemState(media_id="new", file_name="new.JPG", size_bytes=7))
        assert new.position == SETTLED + len(OPEN), "after every stored file, settled too"
        with pytest.raises(KeyError):
            loaded.add_item(ItemState(media_id="done000", file_name="again.JPG"))
        lean.save(loaded)

        whole = reopen_backend().load("lean")
        assert whole is not None
        assert len(whole.items) == SETTLED + len(OPEN) + 1
        assert whole.items["uploaded-0"].media_item_id == "google-uploaded"
        assert whole.items["done039-0"].media_item_id == "google-39"
        assert summarize(whole) == summarize(loaded)
        again = unsettled_loading(reopen_backend()).load_unsettled("lean")
        assert again is not None
        assert set(again.items) == OPEN - {"uploaded-0"} | {"new-0"}

    def test_a_run_loads_finished_batches_by_index_alone(
        self, backend: SyncStateBackend, reopen_backend: Callable[[], SyncStateBackend]
    ) -> None:
        lean = unsettled_loading(backend)
        state = settled_and_open()
        keys = tuple(state.items)
        answer = ({"status": {"message": "Success"}, "mediaItem": {"id": "google-0"}},)
        done = BatchState(batch_index=0, item_keys=keys[:20], status=StageStatus.COMPLETED)
        done.responses = answer
        state.add_batch(done)
        state.add_batch(BatchState(batch_index=1, item_keys=keys[20:30], status=StageStatus.FAILED))
        state.add_batch(
            BatchState(batch_index=2, item_keys=("uploaded-0",), status=StageStatus.RUNNING)
        )
        lean.save(state)

        loaded = unsettled_loading(reopen_backend()).load_unsettled("lean")

        assert loaded is not None
        assert list(loaded.batches) == [2], "a run reads the batches it may take up"
        assert loaded.next_batch_index() == 3, "and never reuses the index of another"
        loaded.batches[2].status = StageStatus.COMPLETED
        lean.save(loaded)
        whole = reopen_backend().load("lean")
        assert whole is not None
        assert whole.batches[0] == done, "the finished batches stay stored as they were"
        assert whole.batches[1].status is StageStatus.FAILED
        assert whole.batches[2].status is StageStatus.COMPLETED
        again = unsettled_loading(reopen_backend()).load_unsettled("lean")
        assert again is not None
        assert not again.batches
        assert again.next_batch_index() == 3

    def test_a_lean_state_is_never_written_whole(self, backend: SyncStateBackend) -> None:
        lean = unsettled_loading(backend)
        lean.save(settled_and_open())
        loaded = lean.load_unsettled("lean")
        assert loaded is not None
        with pytest.raises(StateError, match="settled"):
            loaded.mark_all_dirty()
        with pytest.raises(StateError, match="settled"):
            loaded.to_dict()

    def test_a_session_of_an_earlier_version_loads_whole(
        self, backend: SyncStateBackend, reopen_backend: Callable[[], SyncStateBackend]
    ) -> None:
        lean = unsettled_loading(backend)
        state = settled_and_open(recorded=False)
        lean.save(state)
        loaded = unsettled_loading(reopen_backend()).load_unsettled("lean")
        assert loaded is not None
        assert set(loaded.items) == set(state.items), "its run records every created file once"
        assert not loaded.settled

    def test_the_metadata_alone_is_read_for_checks_and_never_saved(
        self, backend: SyncStateBackend, reopen_backend: Callable[[], SyncStateBackend]
    ) -> None:
        lean = unsettled_loading(backend)
        state = settled_and_open()
        lean.save(state)
        meta = unsettled_loading(reopen_backend()).load_meta("lean")
        assert meta is not None
        assert meta.meta_dict() == state.meta_dict()
        assert not meta.items
        assert not meta.settled
        with pytest.raises(StateError, match="metadata only"):
            lean.save(meta)
        assert unsettled_loading(reopen_backend()).load_meta("never-saved") is None
        whole = reopen_backend().load("lean")
        assert whole is not None
        assert summarize(whole) == summarize(state), "nothing was written"

"""The conformance tests of :class:`~q2google.state.SessionSummaries` (optional protocol).

Part of :class:`~q2google.testing.SyncStateBackendContract`: a backend that keeps a summary of
each session must keep it equal to :func:`q2google.sessions.summarize` of the stored session
after saves of every kind (new files, outcomes changed, metadata changed, whole saves), from
any instance over the same storage; a backend that does not skips these tests. Give the
``drop_summary`` fixture (remove a session's stored summary, as a session of an older
q2google has none) to run the test of sessions without one.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from q2google.sessions import SessionSummary, list_sessions, reset_failed, summarize
from q2google.state import (
    ErrorRecord,
    ItemState,
    SessionCatalog,
    SessionState,
    SessionSummaries,
    StageName,
    StageStatus,
    SyncStateBackend,
)
from q2google.state.base import ExclusionKind
from q2google.state.summary_store import LISTED_FILES_MAX
from q2google.testing.samples import sample_session

DropSummary = Callable[[str], None]


def summaries(backend: SyncStateBackend) -> SessionSummaries:
    """The backend as a :class:`SessionSummaries`, or skip the test."""
    if not isinstance(backend, SessionSummaries):
        pytest.skip("the backend keeps no session summaries (optional)")
    return backend


def assert_summary_matches(
    backend: SyncStateBackend, reopen_backend: Callable[[], SyncStateBackend], session_id: str
) -> None:
    """Check that the stored summary, read from ``backend`` and from a new instance, is
    :func:`~q2google.sessions.summarize` of the stored session (listing at most
    :data:`~q2google.state.summary_store.LISTED_FILES_MAX` failed and held-back files)."""
    loaded = reopen_backend().load(session_id)
    assert loaded is not None, f"session {session_id!r} was not stored"
    expected = summarize(loaded).to_dict()
    expected["failures"] = expected["failures"][:LISTED_FILES_MAX]
    expected["held_back"] = expected["held_back"][:LISTED_FILES_MAX]
    for reader in (backend, reopen_backend()):
        stored = summaries(reader).session_summary(session_id)
        assert stored is not None, "no summary is stored for a session saved here"
        got = SessionSummary.from_stored(stored).to_dict()
        differ = {
            key: (got[key], expected[key]) for key in expected if got.get(key) != expected[key]
        }
        assert not differ, f"stored summary != summarize(load()): {differ}"


class SessionSummariesContract:
    """Behaviour of a backend that keeps a summary of each session."""

    @pytest.fixture
    def drop_summary(self) -> DropSummary | None:
        """Remove a session's stored summary (default: none given, the test is skipped)."""
        return None

    def test_the_summary_follows_saves_of_every_kind(
        self, backend: SyncStateBackend, reopen_backend: Callable[[], SyncStateBackend]
    ) -> None:
        summaries(backend)
        state = sample_session("summarized", items=9)

        def saved() -> None:
            backend.save(state)
            assert_summary_matches(backend, reopen_backend, "summarized")

        saved()
        files = list(state.items.values())
        files[0].create_status = StageStatus.COMPLETED  # failed, then in Google Photos
        saved()
        files[1].exclude(ExclusionKind.SKIPPED, "an edit made in the GoPro app")
        files[2].exclude(ExclusionKind.GONE, "deleted from the GoPro cloud")
        files[3].exclude(ExclusionKind.DEFERRED, "still processing in the GoPro cloud")
        saved()
        files[5].create_status = StageStatus.FAILED
        files[5].record_error(ErrorRecord(stage=StageName.CREATE, message="Internal error"))
        files[6].size_bytes = 123_456_789
        saved()
        files[7].upload_offset = 262_144  # nothing the summary counts
        saved()
        state.add_item(ItemState(media_id="late", file_name="GX010001.MP4", size_bytes=5))
        state.set_stage(StageName.DISCOVERY, StageStatus.COMPLETED)
        state.listings, state.listing_new = 2, 1
        state.album_title = "Renamed"
        state.end_date_iso = "2024-04-30T00:00:00+00:00"
        saved()
        assert reset_failed(state) > 0  # what `q2google sessions retry` does first
        saved()
        for item in state.items.values():
            if item.exclusion is None:
                item.create_status = StageStatus.COMPLETED
        saved()
        data = state.to_dict()
        data["items"] = data["items"][:4]
        smaller = SessionState.from_dict(data)
        smaller.mark_all_dirty()  # a whole save: the summary counts what it stores, only
        backend.save(smaller)
        assert_summary_matches(backend, reopen_backend, "summarized")

    def test_a_session_continued_elsewhere_keeps_its_summary(
        self, backend: SyncStateBackend, reopen_backend: Callable[[], SyncStateBackend]
    ) -> None:
        summaries(backend)
        state = sample_session("continued", items=6)
        backend.save(state)
        resumed_backend = reopen_backend()
        resumed = resumed_backend.load("continued")
        assert resumed is not None
        resumed.items["burst0-0"].create_status = StageStatus.COMPLETED
        resumed.add_item(ItemState(media_id="new", file_name="G0010001.JPG", size_bytes=7))
        resumed_backend.save(resumed)
        assert_summary_matches(backend, reopen_backend, "continued")
        # Another instance, which never loaded it, saves the session's next changes.
        resumed.items["burst0-2"].exclude(ExclusionKind.GONE, "deleted from the GoPro cloud")
        resumed.items["burst0-1"].size_bytes = 99
        reopen_backend().save(resumed)
        assert_summary_matches(backend, reopen_backend, "continued")

    def test_failed_and_held_back_files_are_counted_all_and_listed_first(
        self, backend: SyncStateBackend, reopen_backend: Callable[[], SyncStateBackend]
    ) -> None:
        summaries(backend)
        state = sample_session("many-failures", items=2 * LISTED_FILES_MAX + 10)
        backend.save(state)
        stored = summaries(backend).session_summary("many-failures")
        assert stored is not None
        failed = summarize(state).by_status["failed"]
        assert failed > LISTED_FILES_MAX
        assert stored.by_status["failed"] == failed
        assert len(stored.failures) == LISTED_FILES_MAX
        assert_summary_matches(backend, reopen_backend, "many-failures")
        first = next(iter(state.items.values()))
        first.create_status = StageStatus.COMPLETED  # one listed failure fewer: the next one
        backend.save(state)
        assert_summary_matches(backend, reopen_backend, "many-failures")

    def test_a_session_without_summary_is_summarized_from_its_items_once(
        self,
        backend: SyncStateBackend,
        reopen_backend: Callable[[], SyncStateBackend],
        drop_summary: DropSummary | None,
    ) -> None:
        keeper = summaries(backend)
        if drop_summary is None:
            pytest.skip("no drop_summary fixture: sessions without a summary cannot be made")
        if not isinstance(backend, SessionCatalog):
            pytest.skip("the backend does not list sessions (optional)")
        state = sample_session("older", items=5)
        backend.save(state)
        drop_summary("older")
        assert keeper.session_summary("older") is None
        assert summaries(reopen_backend()).session_summary("older") is None
        [listed] = list_sessions(backend, ["older"])
        assert listed.to_dict() == summarize(state).to_dict()
        assert_summary_matches(backend, reopen_backend, "older")
        stored = reopen_backend().load("older")
        assert stored is not None
        assert stored.to_dict() == state.to_dict(), "storing the summary changed the session"

    def test_no_summary_without_a_session(
        self, backend: SyncStateBackend, reopen_backend: Callable[[], SyncStateBackend]
    ) -> None:
        keeper = summaries(backend)
        assert keeper.session_summary("never-saved") is None
        if not isinstance(backend, SessionCatalog):
            return
        backend.save(sample_session("short-lived", items=3))
        assert backend.delete("short-lived")
        assert keeper.session_summary("short-lived") is None
        assert summaries(reopen_backend()).session_summary("short-lived") is None
        again = sample_session("short-lived", items=1)
        backend.save(again)  # the id reused: the new session's summary, nothing of the old
        assert_summary_matches(backend, reopen_backend, "short-lived")

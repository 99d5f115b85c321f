"""The delivery ledger in a sync: recorded before the checkpoint, asked only about the files
still to create, and caught up once for sessions of earlier versions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest

from q2google.sandbox import Sandbox, SandboxLibrary
from q2google.state import DeliveryLedger, ItemState, SessionState, StageStatus
from q2google.state.ledger import LEDGER_SESSION_ID
from q2google.state.local import JsonFileBackend
from q2google.sync import GoProToPhotosSync
from tests.test_sync import Crash, assert_exactly_once, expect_crash, run_sync, stored_state

LIBRARY = SandboxLibrary.generated(photos=9, videos=2, photo_size=64 * 1024, seed=41)


class CountingBackend(JsonFileBackend):
    """JSON files, counting what the ledger is asked and told."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(state_dir, durable=False)
        self.asked: list[str] = []
        self.recorded: list[str] = []

    def delivered_entries(self, item_keys: Iterable[str]) -> dict[str, ItemState]:
        keys = list(item_keys)
        self.asked += keys
        return super().delivered_entries(keys)

    def delivered_entry(self, item_key: str) -> ItemState | None:
        self.asked.append(item_key)
        return super().delivered_entry(item_key)

    def record_deliveries(self, entries: Sequence[ItemState]) -> None:
        self.recorded += [entry.item_key for entry in entries]
        super().record_deliveries(entries)


class DiesAfterTheLedger(CountingBackend):
    """Dies (kill -9) at the first checkpoint after the ledger recorded a delivery."""

    def save(self, state: SessionState) -> None:
        if self.recorded and state.session_id != LEDGER_SESSION_ID:
            raise Crash
        super().save(state)


class ChecksTheLedgerFirst(JsonFileBackend):
    """JSON files that check, at each checkpoint of a session, that every file it says is
    created is in the ledger already (else a crash right after would leave it out)."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(state_dir, durable=False)
        self.missing: set[str] = set()
        self.checked: set[str] = set()

    def save(self, state: SessionState) -> None:
        super().save(state)
        if state.session_id == LEDGER_SESSION_ID:
            return
        created = [
            key for key, item in state.items.items() if item.create_status is StageStatus.COMPLETED
        ]
        stored = JsonFileBackend(self.state_dir).delivered_entries(created)
        self.missing |= set(created) - set(stored)
        self.checked.update(created)


def ledger_keys(tmp_path: Path, keys: Iterable[str]) -> set[str]:
    """Those of ``keys`` the ledger under ``tmp_path`` holds as delivered."""
    return set(DeliveryLedger(JsonFileBackend(tmp_path / "state")).delivered_many(keys))


BUSY = SandboxLibrary.generated(photos=36, videos=6, photo_size=32 * 1024, seed=42)


@pytest.mark.sandbox(library=BUSY)
async def test_no_checkpoint_says_created_before_the_ledger_has_the_file(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    backend = ChecksTheLedgerFirst(tmp_path / "state")

    def small_batches(sync: GoProToPhotosSync) -> None:
        sync.settings = sync.settings.model_copy(update={"photos_library_batch_size": 3})

    await run_sync(sandbox, tmp_path, backend=backend, concurrency=8, prepare=small_batches)
    delivered = {key for key, item in stored_state(tmp_path).items.items() if item.media_item_id}
    assert len(delivered) == len(BUSY.deliverables())
    assert backend.checked == delivered, "each created file was checked at a checkpoint"
    assert backend.missing == set(), "a checkpoint said created before the ledger knew"
    assert_exactly_once(sandbox)


@pytest.mark.sandbox(library=LIBRARY)
async def test_a_no_op_resume_asks_and_tells_the_ledger_nothing(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    first = CountingBackend(tmp_path / "state")
    await run_sync(sandbox, tmp_path, backend=first)
    assert sorted(first.recorded) == sorted(stored_state(tmp_path).items)
    again = CountingBackend(tmp_path / "state")
    assert await run_sync(sandbox, tmp_path, backend=again) == []
    assert again.asked == []
    assert again.recorded == []
    assert_exactly_once(sandbox)


@pytest.mark.sandbox(library=LIBRARY)
async def test_a_run_dead_between_the_ledger_and_the_checkpoint_sends_nothing_again(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    dying = DiesAfterTheLedger(tmp_path / "state")
    await expect_crash(run_sync(sandbox, tmp_path, backend=dying))
    assert dying.recorded, "the ledger recorded a batch before the run died"
    running = [
        key
        for key, item in stored_state(tmp_path).items.items()
        if item.create_status is StageStatus.RUNNING
    ]
    assert set(dying.recorded) <= set(running), "the checkpoint never said created"
    uploads = sandbox.stats.upload_bytes_received
    created = Counter(item["sha256"] for item in sandbox.snapshot()["mediaItems"])

    await run_sync(sandbox, tmp_path)
    assert_exactly_once(sandbox)
    state = stored_state(tmp_path)
    for key in dying.recorded:
        assert state.items[key].create_status is StageStatus.COMPLETED
    assert sum(created.values()) >= len(dying.recorded)
    resent = sandbox.stats.upload_bytes_received - uploads
    not_sent = sum(state.items[key].size_bytes or 0 for key in dying.recorded)
    total = sum(asset.size for _, _, asset in LIBRARY.deliverables())
    assert resent <= total - not_sent, "no recorded file was uploaded again"


@pytest.mark.sandbox(library=LIBRARY)
async def test_a_session_of_an_earlier_version_has_its_created_files_recorded_once(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    await run_sync(sandbox, tmp_path)
    backend = JsonFileBackend(tmp_path / "state")
    state = stored_state(tmp_path)
    assert state.ledger_recorded
    # An earlier version checkpointed first and recorded second: it died in between.
    backend.delete(LEDGER_SESSION_ID)
    state.ledger_recorded = False
    backend.save(state)
    assert ledger_keys(tmp_path, state.items) == set()

    again = CountingBackend(tmp_path / "state")
    assert await run_sync(sandbox, tmp_path, backend=again) == []
    assert set(again.recorded) == set(state.items)
    assert stored_state(tmp_path).ledger_recorded
    assert ledger_keys(tmp_path, state.items) == set(state.items)

    uploads = sandbox.stats.upload_bytes_received
    await run_sync(sandbox, tmp_path, session="s2")
    assert sandbox.stats.upload_bytes_received == uploads, "a new session sends nothing again"
    assert_exactly_once(sandbox)

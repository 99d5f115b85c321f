"""Leases, claims and state-store retries, beyond what the backends' contract shows."""

from __future__ import annotations

import asyncio
import errno
import json
from pathlib import Path

import pytest

from q2google.errors import SessionBusyError
from q2google.state import (
    DeliveryLedger,
    ItemState,
    JsonFileBackend,
    SessionLeasing,
    session_lease,
)
from q2google.state.lease import busy_error
from q2google.state.retrying import is_transient_os_error, retry_transient
from q2google.testing import sample_session
from tests.sqlite_backend import SqliteBackend


def test_transient_errors_are_retried_with_backoff_until_they_pass() -> None:
    calls: list[int] = []
    waits: list[float] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        return "saved"

    result = retry_transient(
        flaky, transient=is_transient_os_error, seconds=60, what="save", sleep=waits.append
    )
    assert result == "saved"
    assert len(calls) == 4
    assert len(waits) == 3
    assert all(wait > 0 for wait in waits)


def test_other_errors_are_not_retried() -> None:
    calls: list[int] = []

    def refused() -> None:
        calls.append(1)
        raise OSError(errno.EACCES, "Permission denied")

    with pytest.raises(PermissionError):
        retry_transient(refused, transient=is_transient_os_error, seconds=60, what="save")
    assert len(calls) == 1


def test_no_retry_window_means_one_try() -> None:
    calls: list[int] = []

    def full() -> None:
        calls.append(1)
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        retry_transient(full, transient=is_transient_os_error, seconds=0, what="save")
    assert len(calls) == 1


def test_the_busy_message_without_a_known_holder_is_one_line() -> None:
    assert str(busy_error("trip", None)) == (
        "session 'trip' is busy: another q2google run holds it; try again later"
    )


async def test_a_backend_without_leases_runs_without_one(tmp_path: Path) -> None:
    plain = SqliteBackend(str(tmp_path / "x.db"))
    assert not isinstance(plain, SessionLeasing)
    async with session_lease(plain, "trip") as holder:
        assert holder is None


async def test_the_lease_is_released_on_error_and_on_cancellation(tmp_path: Path) -> None:
    backend = JsonFileBackend(tmp_path / "state")

    async def fail() -> None:
        async with session_lease(backend, "trip") as holder:
            assert holder is not None
            assert backend.lease_holder("trip") is not None
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await fail()
    assert backend.lease_holder("trip") is None

    entered = asyncio.Event()

    async def run() -> None:
        async with session_lease(backend, "trip"):
            entered.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(run())
    await entered.wait()
    with pytest.raises(SessionBusyError):
        async with session_lease(backend, "trip"):
            pass
    task.cancel()  # what Ctrl-C does to the run
    with pytest.raises(asyncio.CancelledError):
        await task
    assert backend.lease_holder("trip") is None


def test_json_locks_live_apart_from_the_sessions(tmp_path: Path) -> None:
    backend = JsonFileBackend(tmp_path / "state")
    backend.save(sample_session("trip"))
    with backend.lease("trip"):
        assert (tmp_path / "state" / ".locks" / "trip.lock").is_file()
        assert backend.session_ids() == ["trip"]
        assert backend.delete("trip")  # `sessions delete` is not disturbed by the lock
        assert backend.load("trip") is None
        assert backend.lease_holder("trip") is not None


def test_without_the_claims_protocol_claims_hold_within_the_ledger(tmp_path: Path) -> None:
    ledger = DeliveryLedger(SqliteBackend(str(tmp_path / "x.db")))
    assert ledger.claim("m-0", "one")
    assert ledger.claim("m-0", "one")
    assert not ledger.claim("m-0", "two")
    ledger.record(ItemState(media_id="m", file_name="m.JPG", media_item_id="g-m"))
    ledger.save()  # releases the claim of what it recorded
    assert not ledger.claim("m-0", "two"), "delivered"
    assert ledger.delivered("m-0") == "g-m"
    assert ledger.claim("n-0", "one")
    assert ledger.release_all("one") == 1
    assert ledger.claim("n-0", "two")


def _claim_files(claims: Path) -> list[Path]:
    return [path for path in claims.iterdir() if not path.name.startswith(".")]


def test_a_sessions_claims_are_names_of_one_file(tmp_path: Path) -> None:
    """Claiming small photos makes no file and releasing them deletes none, only names."""
    backend = JsonFileBackend(tmp_path)
    keys = [f"photo-{number:02}" for number in range(32)]
    claims = tmp_path / "q2google-ledger" / "claims"
    with backend.lease("night"):  # a run holds them
        assert backend.claim_items(keys[:16], "night") == keys[:16]
        assert backend.claim_items(keys[16:], "night") == keys[16:]
        files = {backend.item_file_name(key): key for key in keys}
        assert sorted(path.name for path in _claim_files(claims)) == sorted(files)
        assert len({path.stat().st_ino for path in claims.iterdir()}) == 1
        record = claims / ".night.claim"
        assert json.loads(record.read_text())["session_id"] == "night"
        assert record.stat().st_nlink == 33
        assert backend.claim_items(keys, "day") == [], "each name tells the holder"
        backend.release_items(keys[:8], "night")
        assert backend.claim_items(keys, "day") == keys[:8]
        assert record.stat().st_nlink == 25
        assert len({path.stat().st_ino for path in claims.iterdir()}) == 2, "day's record"
    assert not [path for path in claims.iterdir() if path.name.endswith(".tmp")]


def test_a_claim_record_that_does_not_name_its_session_is_made_again(tmp_path: Path) -> None:
    """A power cut can empty a file made just before it: new claims never go to such a
    record, which would make them nobody's (free for another running session)."""
    backend = JsonFileBackend(tmp_path)
    claims = tmp_path / "q2google-ledger" / "claims"
    with backend.lease("night"), backend.lease("day"):
        assert backend.claim_items(["a"], "night") == ["a"]
        (claims / ".night.claim").write_bytes(b"")  # emptied: "a" is anybody's now
        assert backend.claim_items(["b"], "night") == ["b"]
        assert json.loads((claims / ".night.claim").read_text())["session_id"] == "night"
        assert backend.claim_items(["b"], "day") == [], "b is night's"


def test_a_claim_record_with_many_names_is_followed_by_a_new_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("q2google.state.local_claims.CLAIM_RECORD_LINKS", 6)
    backend = JsonFileBackend(tmp_path)
    keys = [f"photo-{number:02}" for number in range(12)]
    claims = tmp_path / "q2google-ledger" / "claims"
    with backend.lease("night"):
        for start in range(0, 12, 4):
            assert backend.claim_items(keys[start : start + 4], "night") == keys[start : start + 4]
        assert len(_claim_files(claims)) == 12
        assert len({path.stat().st_ino for path in _claim_files(claims)}) == 3
        assert backend.claim_items(keys, "day") == []
        backend.release_items(keys, "night")
        assert _claim_files(claims) == []


def test_without_hard_links_each_claim_is_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(*_: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr("q2google.state.local_links.os.link", refused)
    backend = JsonFileBackend(tmp_path)
    keys = ["photo-1", "photo-2", "photo-3"]
    with backend.lease("night"):
        assert backend.claim_items(keys, "night") == keys
        files = _claim_files(tmp_path / "q2google-ledger" / "claims")
        assert len(files) == 3
        assert len({path.stat().st_ino for path in files}) == 3
        assert backend.claim_items(keys, "day") == []

"""Checkpoints: one save serves every caller that waited for it, never one made before."""

from __future__ import annotations

import asyncio
import threading

import pytest

from q2google.checkpoints import SOON_BYTES, SOON_EVERY, Checkpoints
from q2google.state import SessionState
from q2google.testing import sample_session


class GatedSaves:
    """A save function whose first call waits for :meth:`open`; it counts the calls and can
    fail the call numbered ``failing``."""

    def __init__(self, failing: int | None = None) -> None:
        self.calls = 0
        self.failing = failing
        self.started = threading.Event()
        self.gate = threading.Event()

    def __call__(self, state: SessionState) -> None:
        self.calls += 1
        if self.calls == 1:
            self.started.set()
            assert self.gate.wait(30), "the test never opened the gate"
        if self.calls == self.failing:
            raise OSError("disk on fire")

    def open(self) -> None:
        self.gate.set()


async def _three_waiting_on_a_running_save(
    saves: GatedSaves,
) -> list[BaseException | None]:
    checkpoints = Checkpoints(saves)
    state = sample_session("group", items=1)
    first = asyncio.create_task(checkpoints.save(state))
    await asyncio.to_thread(saves.started.wait, 30)  # the first save is under way
    waiting = [asyncio.create_task(checkpoints.save(state)) for _ in range(3)]
    await asyncio.sleep(0)  # each has asked, and waits for the lock
    saves.open()
    results = await asyncio.gather(first, *waiting, return_exceptions=True)
    return [result if isinstance(result, BaseException) else None for result in results]


def test_callers_waiting_during_a_save_are_served_by_one_save_after_it() -> None:
    saves = GatedSaves()
    outcomes = asyncio.run(_three_waiting_on_a_running_save(saves))
    assert outcomes == [None, None, None, None]
    assert saves.calls == 2  # the running one (made before they asked) and one for all three


def test_a_failed_save_fails_its_caller_and_the_others_save_again() -> None:
    saves = GatedSaves(failing=2)
    outcomes = asyncio.run(_three_waiting_on_a_running_save(saves))
    assert outcomes[0] is None
    assert [type(outcome) for outcome in outcomes[1:]].count(OSError) == 1
    assert outcomes[1:].count(None) == 2
    assert saves.calls == 3  # the failed save served nobody: the next waiter saved


def test_a_save_is_never_skipped_for_another_session() -> None:
    calls: list[str] = []

    async def main() -> None:
        checkpoints = Checkpoints(lambda state: calls.append(state.session_id))
        await checkpoints.save(sample_session("one", items=1))
        await checkpoints.save(sample_session("two", items=1))
        await checkpoints.save(sample_session("one", items=1))

    asyncio.run(main())
    assert calls == ["one", "two", "one"]


@pytest.mark.parametrize("rounds", [1, 5])
def test_each_call_in_turn_saves(rounds: int) -> None:
    calls = 0

    def save(state: SessionState) -> None:
        nonlocal calls
        calls += 1

    async def main() -> None:
        checkpoints = Checkpoints(save)
        state = sample_session("turns", items=1)
        for _ in range(rounds):
            await checkpoints.save(state)

    asyncio.run(main())
    assert calls == rounds


def test_a_save_whose_caller_is_cancelled_ends_before_the_next_begins() -> None:
    saves = GatedSaves()
    running = 0
    overlapped = False

    def save(state: SessionState) -> None:
        nonlocal running, overlapped
        running += 1
        overlapped |= running > 1
        try:
            saves(state)
        finally:
            running -= 1

    async def main() -> tuple[bool, bool]:
        checkpoints = Checkpoints(save)
        state = sample_session("cut", items=1)
        first = asyncio.create_task(checkpoints.save(state))
        await asyncio.to_thread(saves.started.wait, 30)
        first.cancel()  # Ctrl-C while the save is in its thread
        for _ in range(10):
            await asyncio.sleep(0)
        waits_for_its_save = not first.done()
        second = asyncio.create_task(checkpoints.save(state))
        await asyncio.sleep(0)
        saves.open()
        await second
        with pytest.raises(asyncio.CancelledError):
            await first  # cancelled, once its save had ended
        return waits_for_its_save, saves.calls == 2

    assert asyncio.run(main()) == (True, True)
    assert not overlapped, "two saves of one session ran at once"


def test_changes_saved_soon_wait_for_a_group_or_any_other_save() -> None:
    """A small photo's upload costs less than a save: ``soon`` saves every SOON_EVERY-th
    call; any save stores the changes waiting, and ``drain`` saves what still waits."""
    calls: list[str] = []

    async def main() -> list[int]:
        checkpoints = Checkpoints(lambda state: calls.append(state.session_id))
        state, other = sample_session("photos", items=1), sample_session("other", items=1)
        seen = []
        for _ in range(SOON_EVERY - 1):
            checkpoints.soon(state)
        checkpoints.soon(other)
        await checkpoints.settle()
        seen.append(len(calls))  # nothing yet: fifteen wait
        checkpoints.soon(state)  # the sixteenth starts a save
        await checkpoints.settle()
        seen.append(len(calls))
        for _ in range(3):
            checkpoints.soon(state)
        await checkpoints.save(state)  # any save stores what waits
        for _ in range(SOON_EVERY - 1):
            checkpoints.soon(state)
        await checkpoints.settle()
        seen.append(len(calls))  # the count began anew at that save
        await checkpoints.drain()  # the run ends: what waits is saved
        seen.append(len(calls))
        return seen

    assert asyncio.run(main()) == [0, 1, 2, 4]
    assert sorted(calls[2:]) == ["other", "photos"]


def test_changes_saved_soon_wait_for_no_more_than_so_many_bytes_of_uploads() -> None:
    """A crash costs at most SOON_BYTES of uploads again: larger photos save more often."""
    calls: list[str] = []

    async def main() -> list[int]:
        checkpoints = Checkpoints(lambda state: calls.append(state.session_id))
        state = sample_session("photos", items=1)
        seen = []
        for size in (SOON_BYTES // 2, SOON_BYTES // 2 - 1):
            checkpoints.soon(state, size)
        await checkpoints.settle()
        seen.append(len(calls))  # one byte short
        checkpoints.soon(state, 1)
        await checkpoints.settle()
        seen.append(len(calls))
        checkpoints.soon(state, SOON_BYTES)  # one large enough saves at once
        await checkpoints.settle()
        seen.append(len(calls))
        return seen

    assert asyncio.run(main()) == [0, 1, 2]

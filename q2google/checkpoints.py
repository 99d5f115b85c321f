"""Checkpoints for concurrent callers: one save serves every caller that waited for it.

Four transfers finishing at once used to queue four saves, each waiting for the others: a
checkpoint cost a file several saves of latency. Here a caller returns once a save that
*began after its call* has finished (so it holds the caller's changes); the callers that
arrive while a save runs are all served by the next one (a group commit). A save begun is
finished even when its caller is cancelled (:func:`uninterrupted`): two saves of a session
never run at once, and none lands after its run let the session go.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from q2google.state import SessionState

logger = logging.getLogger(__name__)
T = TypeVar("T")

SOON_EVERY = 16
"""Changes asked to be saved :meth:`~Checkpoints.soon` wait for this many (or for
:data:`SOON_BYTES`, or any other save, which stores them too): a save costs more CPU than a
small photo's upload."""
SOON_BYTES = 512 * 1024
"""Changes saved :meth:`~Checkpoints.soon` wait for no more than this many bytes of uploads:
what a crash costs again, beyond the uploads in flight."""


async def uninterrupted(work: Awaitable[T]) -> T:
    """Await ``work`` to its end, even when the caller is cancelled meanwhile; the
    cancellation is raised once it has ended (a write begun is never left running behind
    its caller, whose lock or lease would let another begin).

    Raises:
        asyncio.CancelledError: The caller was cancelled meanwhile (``work``'s own error,
            if any, is then only logged).
    """
    future = asyncio.ensure_future(work)
    cancelled = False
    while not future.done():
        try:
            await asyncio.wait([future])
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        if not future.cancelled() and future.exception() is not None:
            logger.warning("interrupted while it ended: %s", future.exception())
        raise asyncio.CancelledError
    return future.result()


class Checkpoints:
    """Serialized saves of sessions, shared by the callers waiting meanwhile.

    Args:
        save: Writes a session's changes (blocking: it runs in a thread).

    Attributes:
        lock: Held while a save runs; hold it to write something else between two saves.
    """

    def __init__(self, save: Callable[[SessionState], None]) -> None:
        self._save = save
        self.lock = asyncio.Lock()
        self._asked: dict[int, int] = {}
        self._saved: dict[int, int] = {}
        self._soon: dict[int, tuple[int, int, SessionState]] = {}  # changes, bytes waiting
        self._background: set[asyncio.Future[None]] = set()

    async def save(self, state: SessionState) -> None:
        """Return once ``state`` is saved with every change made before this call.

        Raises:
            Exception: What the save raised (to the caller whose save it was; a caller served
                by that save tries its own).
        """
        key = id(state)
        asked = self._asked[key] = self._asked.get(key, 0) + 1
        async with self.lock:
            if self._saved.get(key, 0) >= asked:
                return  # a save that began after this call has finished
            covers = self._asked[key]  # every call made so far: their changes are in memory
            self._soon.pop(key, None)  # and those that wait for a save
            await uninterrupted(asyncio.to_thread(self._save, state))
            self._saved[key] = covers
            state.settle_saved()  # here, not in the save's thread: the run reads the session

    def soon(self, state: SessionState, size: int = 0) -> None:
        """Save ``state`` soon, without waiting: for changes a crash may lose because the
        next run redoes them (a small file's upload of ``size`` bytes).

        The save starts at the :data:`SOON_EVERY`-th such call since the last save began, or
        once they add up to :data:`SOON_BYTES`; any save before it stores the changes too. A
        failed save is logged: its changes stay to save, and the next save writes them or
        fails to its caller."""
        key = id(state)
        calls, sizes, _ = self._soon.get(key, (0, 0, state))
        calls, sizes = calls + 1, sizes + size
        if calls < SOON_EVERY and sizes < SOON_BYTES:
            self._soon[key] = (calls, sizes, state)
            return
        self._soon.pop(key, None)
        self._start(state)

    async def drain(self) -> None:
        """Save the changes still waiting for a save (:meth:`soon`) and wait for the saves
        started that way (before a run lets its session go)."""
        waiting, self._soon = self._soon, {}
        for _, _, state in waiting.values():
            self._start(state)
        await self.settle()

    async def settle(self) -> None:
        """Wait for the saves :meth:`soon` started (not for the changes still waiting)."""
        while self._background:
            await uninterrupted(asyncio.gather(*self._background, return_exceptions=True))

    def _start(self, state: SessionState) -> None:
        saving = asyncio.ensure_future(self.save(state))
        self._background.add(saving)
        saving.add_done_callback(self._settled)

    def _settled(self, saving: asyncio.Future[None]) -> None:
        self._background.discard(saving)
        if not saving.cancelled() and saving.exception() is not None:
            logger.warning(
                "a checkpoint failed (the next one saves its changes): %s", saving.exception()
            )

"""Albums hold the whole window: files another session delivered join this session's album.

The cross-session ledger spares their upload (they are in Google Photos already); here they
are added to the session's album by their media item id, with
``albums/{id}:batchAddMediaItems``, at most 50 per call. Each file records the album it went
into (:attr:`~q2google.state.ItemState.added_to_album`), so a later run does not add it again.
An album the user deleted is made again under its title; a full one goes on in the next,
"Title (2)": :func:`switch_album`, which create uses too.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from q2google.gphotos.answers import album_refusal
from q2google.gphotos.limits import MAX_BATCH_CREATE_ITEMS
from q2google.gphotos.models import GoogleAPIError
from q2google.photos import GooglePhotoLibraryPort
from q2google.state import ItemState, SessionState, StageStatus

logger = logging.getLogger(__name__)

Persist = Callable[[SessionState], Awaitable[None]]

ALBUM_SWITCHES = 3
"""Albums tried for one call (found again after a deletion, or the next one when full)."""


def delivered_elsewhere(state: SessionState) -> list[ItemState]:
    """Files of the session that another session delivered, not yet in the session's album."""
    return [
        item
        for item in state.items.values()
        if item.create_status is StageStatus.COMPLETED
        and item.transfer_status is StageStatus.SKIPPED  # not created here: found in the ledger
        and item.exclusion is None
        and item.media_item_id
        and item.added_to_album is None
    ]


async def add_to_session_album(
    photos: GooglePhotoLibraryPort, state: SessionState, persist: Persist
) -> int:
    """Add the files another session delivered to this session's album, once each.

    Returns:
        How many files were added.

    Raises:
        GoogleAPIError: The album kept refusing (after finding or making it again).
        QuotaExhaustedError: The daily quota is used up (what was added is saved).
    """
    if not state.album_title:
        return 0
    todo = delivered_elsewhere(state)
    added = 0
    for start in range(0, len(todo), MAX_BATCH_CREATE_ITEMS):
        chunk = todo[start : start + MAX_BATCH_CREATE_ITEMS]
        added += await _add_chunk(photos, state, chunk, persist)
        await persist(state)
    if added:
        logger.info("added %d files delivered by another session to the album", added)
    return added


async def _add_chunk(
    photos: GooglePhotoLibraryPort, state: SessionState, chunk: list[ItemState], persist: Persist
) -> int:
    """Add one call's worth; a refusal that blames no album is tried file by file."""
    ids = [str(item.media_item_id) for item in chunk]
    try:
        album_id = await _add(photos, state, ids, persist)
    except GoogleAPIError as refused:
        if len(chunk) == 1 or album_refusal(refused.error) is not None:
            logger.warning("could not add %s to the album: %s", chunk[0].file_name, refused)
            return 0
        return sum([await _add_chunk(photos, state, [item], persist) for item in chunk])
    for item in chunk:
        item.added_to_album = album_id
    return len(chunk)


async def _add(
    photos: GooglePhotoLibraryPort, state: SessionState, ids: list[str], persist: Persist
) -> str:
    """Add ``ids`` to the session's album (found or made again, or the next one when full);
    return the album they went into."""
    assert state.album_title is not None
    for switch in range(ALBUM_SWITCHES + 1):
        if state.album_id is None:
            state.album_id = await photos.find_or_create_album(
                album_title(state.album_title, state.album_part)
            )
            await persist(state)
        try:
            await photos.add_to_album(state.album_id, ids)
        except GoogleAPIError as refused:
            problem = album_refusal(refused.error)
            if problem is None or switch == ALBUM_SWITCHES:
                raise
        else:
            return state.album_id
        await switch_album(photos, state, problem, persist)
    raise AssertionError("unreachable")  # pragma: no cover


async def switch_album(
    photos: GooglePhotoLibraryPort, state: SessionState, problem: str, persist: Persist
) -> None:
    """Go on in the album found or made again (``problem`` "gone": the user deleted it), or
    in the next one, "Title (2)"... (``problem`` "full"); checkpoint the choice."""
    assert state.album_title is not None
    if problem == "full":
        state.album_part += 1
    title = album_title(state.album_title, state.album_part)
    logger.info("the album is %s: going on in %r", problem, title)
    state.album_id = await photos.find_or_create_album(title, fresh=True)
    await persist(state)


def album_title(title: str, part: int) -> str:
    """The title of the session's album number ``part``: "Title", "Title (2)", ..."""
    return title if part <= 1 else f"{title} ({part})"

"""CreateStage over an in-memory Google Photos that never merges identical uploads.

The end-to-end behaviour is tested against the sandbox (tests/test_sync_exactly_once.py);
these pin the create stage's decisions one by one.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from q2google.errors import StorageFullError
from q2google.gphotos.models import (
    CreateOutcomeUnknownError,
    GoogleAPIError,
    GoogleErrorBody,
    MediaItem,
    NewMediaItemResult,
    Status,
)
from q2google.photos import NewItemSpec
from q2google.stages.album import album_title
from q2google.stages.create import CreateStage
from q2google.stages.marker import item_key_in
from q2google.state import ItemState, SessionState, StageStatus, new_session

NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)


@dataclass
class FakePhotos:
    """Google Photos as the create stage sees it; every create makes a new item."""

    items: list[MediaItem] = field(default_factory=list)
    used: set[str] = field(default_factory=set)
    albums: dict[str, str] = field(default_factory=dict)  # id -> title
    album_items: dict[str, list[str]] = field(default_factory=dict)
    album_capacity: int = 20_000
    lose_answer: str | None = None  # "after-commit" or "before-commit", once
    refuse: set[str] = field(default_factory=set)
    storage_full: bool = False
    storage_full_at: int | None = None  # whole calls refused once the library holds this many
    calls: int = 0

    async def create_media_items(
        self, specs: Sequence[NewItemSpec], *, album_id: str | None = None
    ) -> list[NewMediaItemResult]:
        self.calls += 1
        if album_id is not None and album_id not in self.albums:
            raise GoogleAPIError(
                "batchCreate",
                GoogleErrorBody(code=400, status="INVALID_ARGUMENT", message="Invalid album ID"),
            )
        if (
            album_id is not None
            and len(self.album_items[album_id]) + len(specs) > self.album_capacity
        ):
            raise GoogleAPIError(
                "batchCreate",
                GoogleErrorBody(code=400, status="INVALID_ARGUMENT", message="The album is full."),
            )
        if self.storage_full_at is not None and len(self.items) >= self.storage_full_at:
            raise GoogleAPIError(
                "batchCreate",
                GoogleErrorBody(
                    code=400,
                    status="INVALID_ARGUMENT",
                    message="The remaining storage in the user's account is not enough to "
                    "perform this operation.",
                ),
            )
        lost, self.lose_answer = self.lose_answer, None
        if lost == "before-commit":
            raise CreateOutcomeUnknownError("batchCreate: HTTP 503")
        results = [self._one(spec, album_id) for spec in specs]
        if lost == "after-commit":
            raise CreateOutcomeUnknownError("batchCreate: ReadError after the request was sent")
        return results

    def _one(self, spec: NewItemSpec, album_id: str | None) -> NewMediaItemResult:
        if self.storage_full:
            return NewMediaItemResult(
                upload_token=spec.upload_token,
                status=Status(code=8, message="The user's storage quota has been exceeded."),
            )
        if spec.upload_token in self.used or spec.file_name in self.refuse:
            return NewMediaItemResult(
                upload_token=spec.upload_token,
                status=Status(
                    code=3,
                    message="Failed: There was an error while trying to create this media item.",
                ),
            )
        self.used.add(spec.upload_token)
        item = MediaItem(
            id="G" + secrets.token_hex(6),
            description=spec.description or "",
            filename=spec.file_name,
        )
        self.items.insert(0, item)  # newest first
        if album_id is not None:
            self.album_items[album_id].append(item.id)
        return NewMediaItemResult(upload_token=spec.upload_token, media_item=item)

    async def upload(self, source: Any, *, size: int, file_name: str, **_: Any) -> str:
        """Take the bytes and hand out a fresh token (the create stage never calls it)."""
        async for _piece in source(0):
            pass
        return f"token-{file_name}-{secrets.token_hex(4)}"

    async def find_or_create_album(self, title: str, *, fresh: bool = False) -> str:
        for album_id, known in self.albums.items():
            if known == title:
                return album_id
        album_id = "A" + secrets.token_hex(4)
        self.albums[album_id] = title
        self.album_items[album_id] = []
        return album_id

    async def app_created_items(self, album_id: str | None = None) -> AsyncIterator[MediaItem]:
        in_album = set(self.album_items.get(album_id, [])) if album_id else None
        for item in list(self.items):
            if in_album is None or item.id in in_album:
                yield item

    def keys(self) -> list[str]:
        return sorted(item_key_in(item.description) or "" for item in self.items)

    async def add_to_album(self, album_id: str, media_item_ids: Sequence[str]) -> None:
        if album_id not in self.albums:
            raise GoogleAPIError(
                "albums.batchAddMediaItems",
                GoogleErrorBody(
                    code=400,
                    status="INVALID_ARGUMENT",
                    message="The provided ID does not match any albums.",
                ),
            )
        self.album_items[album_id] += list(media_item_ids)


def uploaded_session(count: int, *, token_age: timedelta = timedelta(minutes=5)) -> SessionState:
    state = new_session(
        "s",
        start_date_iso="2024-01-01",
        end_date_iso="2025-01-01",
        batch_size=50,
        album_title="Trip",
    )
    for index in range(count):
        state.add_item(
            ItemState(
                media_id=f"m{index}",
                file_name=f"GOPR{index % 2:04d}.JPG",  # names collide, keys do not
                media_type="Photo",
                discovery_status=StageStatus.COMPLETED,
                transfer_status=StageStatus.COMPLETED,
                upload_token=f"token-{index}",
                upload_token_created_at=(NOW - token_age).isoformat(),
            )
        )
    return state


async def run(stage: CreateStage, state: SessionState) -> None:
    await stage.recover(state)
    for item in stage.ready_items(state):
        await stage.add(state, item)
    await stage.drain()  # the batches sent while items were added (as after the uploads)
    for _ in range(2):
        await stage.flush(state)
        await stage.settle(state)
    await stage.flush(state)


def stage_for(photos: FakePhotos) -> CreateStage:
    async def keep(_: SessionState) -> None:
        return None

    return CreateStage(photos, keep, library_batch_size=10, clock=lambda: NOW)


async def prepared(photos: FakePhotos, state: SessionState) -> CreateStage:
    state.album_id = await photos.find_or_create_album("Trip")
    return stage_for(photos)


@pytest.mark.parametrize("when", ["after-commit", "before-commit"])
async def test_a_lost_answer_is_settled_from_the_library_never_resent_blindly(when: str) -> None:
    photos = FakePhotos(lose_answer=when)
    state = uploaded_session(25)
    await run(await prepared(photos, state), state)
    assert photos.keys() == sorted(item.item_key for item in state.items.values()), "each once"
    assert {item.create_status for item in state.items.values()} == {StageStatus.COMPLETED}
    by_id = {item.id for item in photos.items}
    assert {item.media_item_id for item in state.items.values()} == by_id


async def test_a_crash_inside_create_is_settled_on_resume() -> None:
    photos = FakePhotos(lose_answer="after-commit")
    state = uploaded_session(12)
    stage = await prepared(photos, state)
    for item in stage.ready_items(state):
        await stage.add(state, item)
    await stage.flush(state)  # the answer of the first batch is lost: then the process dies
    resumed = stage_for(photos)
    await run(resumed, state)
    assert photos.keys() == sorted(item.item_key for item in state.items.values())


async def test_a_fresh_token_refused_is_a_permanent_failure_with_googles_words() -> None:
    photos = FakePhotos(refuse={"GOPR0001.JPG"})
    state = uploaded_session(4)
    stage = await prepared(photos, state)
    await run(stage, state)
    failed = [item for item in state.items.values() if item.create_status is StageStatus.FAILED]
    assert [item.media_id for item in failed] == ["m1", "m3"]
    error = failed[0].errors[next(iter(failed[0].errors))]
    assert "There was an error while trying to create this media item" in error.message
    assert not error.retryable
    assert stage.resend == [], "not uploaded again"
    assert len(photos.items) == 2


async def test_an_old_or_used_token_means_upload_again_at_most_twice() -> None:
    photos = FakePhotos()
    state = uploaded_session(3, token_age=timedelta(hours=20))
    photos.used |= {"token-0", "token-1", "token-2"}  # Google says: used or expired
    stage = await prepared(photos, state)
    await run(stage, state)
    assert sorted(item.media_id for item in stage.resend) == ["m0", "m1", "m2"]
    assert {item.transfer_status for item in state.items.values()} == {StageStatus.PENDING}


async def test_a_deleted_album_is_found_or_made_again_and_a_full_one_continues_in_the_next() -> (
    None
):
    photos = FakePhotos(album_capacity=10)
    state = uploaded_session(25)
    stage = await prepared(photos, state)
    del photos.albums[str(state.album_id)]  # the user deleted it
    await run(stage, state)
    assert sorted(photos.albums.values()) == ["Trip", "Trip (2)", "Trip (3)"]
    in_albums = [item_id for ids in photos.album_items.values() for item_id in ids]
    assert sorted(in_albums) == sorted(item.id for item in photos.items)
    assert len(photos.items) == 25
    assert state.album_part == 3
    assert album_title("Trip", state.album_part) == "Trip (3)"


async def test_full_storage_stops_the_run_and_fails_no_file() -> None:
    photos = FakePhotos(storage_full=True)
    state = uploaded_session(5)
    stage = await prepared(photos, state)
    with pytest.raises(StorageFullError, match="storage is full"):
        await run(stage, state)
    assert {item.create_status for item in state.items.values()} == {StageStatus.PENDING}
    photos.storage_full = False
    await run(stage_for(photos), state)
    assert len(photos.items) == 5


async def test_a_partial_batch_does_not_wait_for_company_with_old_tokens() -> None:
    photos = FakePhotos()
    state = uploaded_session(3, token_age=timedelta(hours=2))
    stage = await prepared(photos, state)
    for item in stage.ready_items(state):
        await stage.add(state, item)  # 3 of 10: a partial batch, but its tokens are old
    await stage.drain()  # sent while uploads go on
    assert len(photos.items) == 3


async def test_storage_full_while_filling_an_album_keeps_what_was_created() -> None:
    photos = FakePhotos(album_capacity=7, storage_full_at=5)
    state = uploaded_session(10)
    stage = await prepared(photos, state)
    with pytest.raises(StorageFullError):
        await run(stage, state)
    created = [i for i in state.items.values() if i.create_status is StageStatus.COMPLETED]
    assert len(created) == len(photos.items) == 5, "what Google created is recorded so"
    assert not [i for i in state.items.values() if i.create_status is StageStatus.FAILED]
    photos.storage_full_at = None
    await run(stage_for(photos), state)
    assert photos.keys() == sorted(item.item_key for item in state.items.values()), "each once"


async def test_files_delivered_elsewhere_join_an_album_made_again_after_its_deletion() -> None:
    from q2google.stages.album import add_to_session_album

    photos = FakePhotos()
    state = uploaded_session(3)
    for index, item in enumerate(state.items.values()):  # found in the ledger
        item.media_item_id, item.upload_token = f"G{index}", None
        item.transfer_status, item.create_status = StageStatus.SKIPPED, StageStatus.COMPLETED
    state.album_id = await photos.find_or_create_album("Trip")
    del photos.albums[state.album_id]  # the user deleted it

    async def keep(_: SessionState) -> None:
        return None

    assert await add_to_session_album(photos, state, keep) == 3
    assert list(photos.albums.values()) == ["Trip"]
    assert photos.album_items[str(state.album_id)] == ["G0", "G1", "G2"]
    assert await add_to_session_album(photos, state, keep) == 0, "added once"


async def test_a_batch_that_failed_while_uploads_went_on_stops_the_next_add_and_the_run() -> None:
    photos = FakePhotos(storage_full_at=0)  # every batchCreate refused: the account is full
    state = uploaded_session(25)
    stage = await prepared(photos, state)
    items = list(stage.ready_items(state))
    for item in items[:10]:
        await stage.add(state, item)  # the tenth fills a batch: sent while uploads go on
    for _ in range(100):  # let the batch be sent, and refused (no I/O: a few loop turns)
        await asyncio.sleep(0)
    for item in items[10:]:  # the next add says so, and every one after it: no other batch
        with pytest.raises(StorageFullError):
            await stage.add(state, item)
    assert photos.calls == 1
    with pytest.raises(StorageFullError):
        await stage.drain()  # the run's own wait says so too
    await stage.drain()  # said once
    assert not [i for i in state.items.values() if i.create_status is StageStatus.COMPLETED]

"""Rebuilding the ledger from Google Photos, page by page, against the sandbox over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Iterator
from pathlib import Path

import pytest

from q2google.config import Q2GoogleSettings
from q2google.errors import EXIT_TRY_LATER, QuotaExhaustedError
from q2google.ledger_rebuild import rebuild_from
from q2google.photos import GooglePhotosClient, NewItemSpec
from q2google.sandbox import Sandbox
from q2google.stages.marker import description_for
from q2google.state import (
    LEDGER_SESSION_ID,
    DeliveryLedger,
    ItemState,
    JsonFileBackend,
    SessionState,
    StageStatus,
    SyncStateBackend,
)
from q2google.state.mongo import MongoBackend
from q2google.testing import ManualClock
from q2google.testing.ledger_contract import delivered_file, recorded
from tests.test_sync import assert_exactly_once, run_sync

MARKED = 230
"""Marked media items: three pages of mediaItems.list (100 a page)."""


@pytest.fixture(params=["json", "mongodb"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SyncStateBackend]:
    if request.param == "json":
        yield JsonFileBackend(tmp_path / "never-created" / "state")
        return
    mongo = MongoBackend(request.getfixturevalue("mongo_uri"))
    yield mongo
    mongo.close()


def _settings(sandbox: Sandbox, tmp_path: Path, **values: object) -> Q2GoogleSettings:
    return Q2GoogleSettings(
        photos_api_url=sandbox.url,
        google_token_file=sandbox.write_token_file(tmp_path / "token.json"),
        state_dir=tmp_path / "unused",
        **values,  # type: ignore[arg-type]
    )


async def _create(sandbox: Sandbox, tmp_path: Path, specs: list[tuple[str, str | None]]) -> None:
    """Put media items in the sandbox as this app: (file name, description) each."""
    async with GooglePhotosClient.from_settings(_settings(sandbox, tmp_path)) as photos:
        new = []
        for number, (name, description) in enumerate(specs):
            data = f"{name} {number}".encode()

            async def source(offset: int, data: bytes = data) -> AsyncIterator[bytes]:
                yield data[offset:]

            token = await photos.upload(
                source, size=len(data), file_name=name, mime_type="image/jpeg"
            )
            new.append(NewItemSpec(token, name, description))
        results = await photos.create_media_items(new)
    assert all(result.ok for result in results)


def _marked(count: int) -> list[tuple[str, str | None]]:
    return [
        (f"GOPR{n:04d}.JPG", description_for(f"media{n:04d}-{n % 3}", "Photo"))
        for n in range(count)
    ]


async def test_every_page_is_listed_marked_items_recorded_the_rest_counted(
    sandbox: Sandbox, tmp_path: Path, backend: SyncStateBackend
) -> None:
    copies = [("GOPR0007.JPG", description_for("media0007-1", "Photo"))]
    unmarked = [("holiday.jpg", None), ("edited.jpg", "my own words")]
    await _create(sandbox, tmp_path, _marked(MARKED) + copies + unmarked)
    recorded(backend, delivered_file("media0005", "kept-as-it-was", 2))  # known already
    lines: list[str] = []
    clock = ManualClock()
    settings = _settings(sandbox, tmp_path)
    async with GooglePhotosClient.from_settings(settings, clock=clock) as photos:
        original = photos.api.list_media_items

        async def slow_pages(*args: object, **kwargs: object) -> object:
            clock.advance(6.0)  # a page takes six seconds: a progress line every other page
            return await original(*args, **kwargs)  # type: ignore[arg-type]

        photos.api.list_media_items = slow_pages  # type: ignore[method-assign,assignment]
        report = await rebuild_from(photos, backend, on_progress=lines.append, clock=clock)

    assert report.listed == MARKED + 3
    assert report.found == MARKED
    assert (report.added, report.already_known) == (MARKED - 1, 1)
    assert (report.unmarked, report.copies) == (2, 1)
    assert report.requests == sandbox.stats.google_calls["mediaItems.list"] == 3
    assert "230 files found, 229 added, 1 already known, 2 media items without" in report.line()
    assert "about 1 request of" in lines[0], "the ledger held one file: about one page"
    assert any("media items listed" in line for line in lines[1:]), lines
    in_google: dict[str, set[str]] = {}
    for item in sandbox.snapshot()["mediaItems"]:
        in_google.setdefault(item["description"], set()).add(item["id"])
    keys = [f"media{n:04d}-{n % 3}" for n in range(MARKED)]
    delivered = DeliveryLedger(backend).delivered_many(keys)
    assert len(delivered) == MARKED
    assert delivered.pop("media0005-2") == "kept-as-it-was", "an entry there is kept"
    for key, media_item_id in delivered.items():
        assert media_item_id in in_google[description_for(key, "Photo")], key


async def test_the_quota_running_out_keeps_what_was_found(
    sandbox: Sandbox, tmp_path: Path, backend: SyncStateBackend
) -> None:
    await _create(sandbox, tmp_path, _marked(MARKED))
    settings = _settings(sandbox, tmp_path, daily_request_limit=2)
    async with GooglePhotosClient.from_settings(settings, counts=None) as photos:
        with pytest.raises(QuotaExhaustedError) as raised:
            await rebuild_from(photos, backend)
    message = str(raised.value)
    assert "\n" not in message
    assert "after 200 media items; the 200 files found so far are in the ledger" in message
    assert "run `q2google ledger rebuild` again then" in message
    assert raised.value.exit_code == EXIT_TRY_LATER
    keys = [f"media{n:04d}-{n % 3}" for n in range(MARKED)]
    assert len(DeliveryLedger(backend).delivered_many(keys)) == 200


class _WatchedBackend(JsonFileBackend):
    """The JSON backend, counting the loads of the whole ledger and its entry lookups."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(state_dir)
        self.whole_loads = 0
        self.keys_asked: list[str] = []

    def load(self, session_id: str) -> SessionState | None:
        self.whole_loads += session_id == LEDGER_SESSION_ID
        return super().load(session_id)

    def delivered_entries(self, item_keys: Collection[str]) -> dict[str, ItemState]:
        self.keys_asked += item_keys
        return super().delivered_entries(item_keys)


async def test_a_sync_asks_the_ledger_about_its_own_files_only(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    store = _WatchedBackend(tmp_path / "state")
    recorded(store, *(delivered_file(f"elsewhere{n}", f"google-{n}") for n in range(50)))
    store.whole_loads, store.keys_asked = 0, []
    await run_sync(sandbox, tmp_path, session="s1", backend=store)
    first = store.load("s1")
    assert first is not None
    assert sorted(set(store.keys_asked)) == sorted(first.items), "this session's files only"
    uploads = sandbox.stats.upload_requests
    store.keys_asked.clear()
    await run_sync(sandbox, tmp_path, session="s2", backend=store)
    assert sandbox.stats.upload_requests == uploads, "delivered by s1: not sent again"
    second = store.load("s2")
    assert second is not None
    assert all(
        item.create_status is StageStatus.COMPLETED
        for item in second.items.values()
        if item.exclusion is None
    )
    assert store.whole_loads == 0, "the ledger was loaded whole"
    assert_exactly_once(sandbox)

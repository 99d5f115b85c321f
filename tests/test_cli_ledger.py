"""`q2google ledger rebuild` as a user runs it: the state lost, the ledger made again from the
markers of what q2google created in Google Photos, and nothing sent again."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from q2google.config import Q2GoogleSettings
from q2google.sandbox import Sandbox
from q2google.state import LEDGER_SESSION_ID, JsonFileBackend, StageStatus, build_backend
from tests.cli import q2google

WINDOW = ("--start", "2023-01-01", "--end", "2024-12-31")
REBUILD = "q2google ledger rebuild"


def _lose_the_state(env: dict[str, str], tmp_path: Path) -> None:
    """Everything q2google stored is gone: the state directory, or the MongoDB database."""
    uri = env.get("Q2GOOGLE_STATE_URI")
    if uri:
        client: MongoClient[dict[str, Any]] = MongoClient(uri)
        client.drop_database(client.get_default_database().name)
        client.close()
    else:
        shutil.rmtree(tmp_path / "sessions")


def _google_only(env: dict[str, str]) -> dict[str, str]:
    """The environment without anything of the GoPro cloud: a rebuild needs Google only."""
    return {name: value for name, value in env.items() if "GOPRO" not in name and "GP_" not in name}


@pytest.mark.parametrize("store", ["json", "mongodb"])
def test_a_lost_state_is_rebuilt_from_google_photos_and_nothing_is_sent_again(
    sandbox: Sandbox,
    user_env: dict[str, str],
    tmp_path: Path,
    store: str,
    request: pytest.FixtureRequest,
) -> None:
    env = dict(user_env)
    if store == "mongodb":
        env["Q2GOOGLE_STATE_URI"] = request.getfixturevalue("mongo_uri")
    first = q2google("sync", *WINDOW, "--session", "before", env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    total = len(sandbox.library.deliverables())
    uploads, sent = sandbox.stats.upload_requests, sandbox.stats.upload_bytes_received
    _lose_the_state(env, tmp_path)

    rebuilt = q2google("ledger", "rebuild", env=_google_only(env), cwd=tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert rebuilt.stdout.count("\n") == 1, rebuilt.stdout
    assert (
        f"{total} files found, {total} added, 0 already known, 0 media items without a "
        "q2google marker ignored" in rebuilt.stdout
    )
    assert "per 100 media items" in rebuilt.stderr, "what the listing costs"
    assert sandbox.stats.google_calls["mediaItems.list"] == 1

    after = q2google("sync", *WINDOW, "--session", "after", "--json", env=env, cwd=tmp_path)
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout)["by_status"]["completed"] == total
    assert sandbox.stats.upload_requests == uploads, "nothing uploaded again"
    assert sandbox.stats.upload_bytes_received == sent
    in_google = {item["id"] for item in sandbox.snapshot()["mediaItems"]}
    assert len(in_google) == total, "nothing created again"
    settings = Q2GoogleSettings(
        state_dir=tmp_path / "sessions", state_uri=env.get("Q2GOOGLE_STATE_URI")
    )
    state = build_backend(settings).load("after")
    assert state is not None
    delivered = [item for item in state.items.values() if item.exclusion is None]
    assert len(delivered) == total
    for item in delivered:
        assert item.create_status is StageStatus.COMPLETED, item.item_key
        assert item.transfer_status is StageStatus.SKIPPED, "delivered earlier, not sent"
        assert item.media_item_id in in_google

    again = q2google("ledger", "rebuild", env=_google_only(env), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"{total} files found, 0 added, {total} already known" in again.stdout
    if store == "mongodb":
        assert not (tmp_path / "sessions").exists(), "nothing went to the JSON backend"


def test_a_rebuild_on_a_state_directory_that_does_not_exist(
    sandbox: Sandbox, user_env: dict[str, str], tmp_path: Path
) -> None:
    rebuilt = q2google("ledger", "rebuild", env=_google_only(user_env), cwd=tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "0 files found, 0 added, 0 already known" in rebuilt.stdout
    assert not (tmp_path / "sessions" / LEDGER_SESSION_ID).exists(), "nothing to record"


def test_a_rebuild_without_a_google_token_is_one_line_exit_2(
    user_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**user_env, "Q2GOOGLE_GOOGLE_TOKEN_FILE": str(tmp_path / "absent.json")}
    result = q2google("ledger", "rebuild", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "no Google token at" in result.stderr
    assert "q2google auth google" in result.stderr
    assert not (tmp_path / "sessions").exists(), "nothing written"


def test_a_corrupt_ledger_is_named_with_the_fix_and_the_rebuild_mends_it(
    sandbox: Sandbox, user_env: dict[str, str], tmp_path: Path
) -> None:
    first = q2google("sync", *WINDOW, "--session", "first", env=user_env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    total = len(sandbox.library.deliverables())
    uploads = sandbox.stats.upload_requests
    ledger = tmp_path / "sessions" / LEDGER_SESSION_ID
    entry = next(iter(sorted((ledger / "items").glob("*.json"))))

    entry.unlink()  # one name of the entries' shared file, given a damaged file of its own:
    entry.write_text("{ torn")  # an unreadable entry: a run that reads it names it and the fix
    same = q2google("sync", "--session", "first", env=user_env, cwd=tmp_path)
    assert same.returncode == 0, same.stderr
    assert str(entry) not in same.stderr, "a resume asks the ledger about no finished file"
    assert sandbox.stats.upload_requests == uploads

    preview = q2google(
        "sync", *WINDOW, "--session", "second", "--dry-run", "--json", env=user_env, cwd=tmp_path
    )
    assert preview.returncode == 0, preview.stderr
    assert json.loads(preview.stdout)["already_delivered"] == total - 1
    assert REBUILD in preview.stderr

    (ledger / "meta.json").write_text("[1, 2")  # an unreadable meta.json: one line, exit 2
    stopped = q2google("sync", *WINDOW, "--session", "second", env=user_env, cwd=tmp_path)
    assert stopped.returncode == 2, stopped.stderr
    errors = [line for line in stopped.stderr.splitlines() if "error" in line]
    assert len(errors) == 1, stopped.stderr
    assert str(ledger / "meta.json") in errors[0]
    assert REBUILD in errors[0]
    assert sandbox.stats.upload_requests == uploads

    rebuilt = q2google("ledger", "rebuild", env=user_env, cwd=tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert rebuilt.stdout.count("\n") == 1, rebuilt.stdout
    assert f"{total} files found, 1 added, {total - 1} already known" in rebuilt.stdout
    assert "2 unreadable ledger records set aside" in rebuilt.stdout
    assert len(list(ledger.rglob(".*.unreadable"))) == 2, "kept for a person to look at"

    second = q2google("sync", *WINDOW, "--session", "second", env=user_env, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert sandbox.stats.upload_requests == uploads, "nothing sent again"
    state = JsonFileBackend(tmp_path / "sessions").load("second")
    assert state is not None
    assert all(item.media_item_id for item in state.items.values() if item.exclusion is None)

"""`q2google sessions list|show|retry|delete` and `sync --dry-run`, through the console script."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from q2google.sandbox import Sandbox
from q2google.state import LEDGER_SESSION_ID, JsonFileBackend
from tests.cli import q2google, state_snapshot

WINDOW = ("--start", "2023-01-01", "--end", "2024-12-31")


def _sync(env: dict[str, str], cwd: Path, session: str, *extra: str) -> tuple[int, str, str]:
    result = q2google("sync", *WINDOW, "--session", session, *extra, env=env, cwd=cwd)
    return result.returncode, result.stdout, result.stderr


@pytest.mark.sandbox(faults="item-failure=1")
def test_failed_files_are_listed_shown_retried_and_the_session_deleted(
    sandbox: Sandbox, user_env: dict[str, str], tmp_path: Path
) -> None:
    total = len(sandbox.library.deliverables())
    code, out, err = _sync(user_env, tmp_path, "trip")
    assert code == 1, err
    assert f"0 of {total} files in Google Photos, {total} failed" in out
    assert out.count("  failed: ") == total
    assert "Internal error" in out
    assert "q2google sessions retry trip" in out
    assert sandbox.snapshot()["mediaItems"] == []

    listed = q2google("sessions", "list", env=user_env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split() == [
        "SESSION",
        "STATUS",
        "WINDOW",
        "DONE/FILES",
        "NEW",
        "FAILED",
        "SKIPPED",
        "GONE",
        "SIZE",
        "UPDATED",
    ]
    new, failed, skipped, gone_count = str(total + 1), str(total), "1", "0"
    assert row.split()[:8] == [
        "trip",
        "failed",
        "2023-01-01..2024-12-31",
        f"0/{total}",
        *(new, failed, skipped, gone_count),
    ]
    assert LEDGER_SESSION_ID not in listed.stdout

    shown = q2google("sessions", "show", "trip", env=user_env, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    shown_files = (  # + an edit
        f"  files      {total + 1}: 0 completed, {total} failed, 0 pending, 1 skipped, "
        "0 deferred, 0 gone"
    )
    assert shown_files in shown.stdout
    assert f"  new        {total + 1} since the last run" in shown.stdout
    assert f"  create     {total} failed, 1 skipped" in shown.stdout
    assert "  window     2023-01-01 to 2024-12-31 (end exclusive)" in shown.stdout
    assert f"failed files ({total}):" in shown.stdout
    assert "create: Internal error: try again later." in shown.stdout
    as_json = json.loads(q2google("sessions", "show", "trip", "--json", env=user_env).stdout)
    assert as_json["status"] == "failed"
    assert len(as_json["failures"]) == total

    sandbox.set_faults("")
    sent_before = sandbox.stats.upload_bytes_received
    retried = q2google("sessions", "retry", "trip", "--json", env=user_env, cwd=tmp_path)
    assert retried.returncode == 0, retried.stderr
    summary = json.loads(retried.stdout)
    assert summary["retried"] == total
    assert summary["status"] == "completed"
    assert summary["by_status"] == {
        "completed": total,
        "failed": 0,
        "pending": 0,
        "skipped": 1,  # the demo library's edit project
        "deferred": 0,
        "gone": 0,
    }
    assert sandbox.stats.upload_bytes_received == sent_before, "tokens were reused, no resend"
    after_retry = json.loads(q2google("sessions", "list", "--json", env=user_env).stdout)
    assert [(entry["status"], entry["by_status"]) for entry in after_retry] == [
        ("completed", summary["by_status"])
    ], "the stored summary follows the retry"
    assert [item["createCalls"] for item in sandbox.snapshot()["mediaItems"]] == [1] * total

    kept = q2google("sessions", "delete", "trip", env=user_env, cwd=tmp_path, stdin="n\n")
    assert kept.returncode == 1
    assert "not deleted" in kept.stderr
    assert (tmp_path / "sessions" / "trip" / "meta.json").is_file()

    gone = q2google("sessions", "delete", "trip", "--yes", env=user_env, cwd=tmp_path)
    assert gone.returncode == 0, gone.stderr
    assert "deleted session trip" in gone.stdout
    assert not (tmp_path / "sessions" / "trip").exists()
    assert q2google("sessions", "list", "--json", env=user_env).stdout.strip() == "[]"

    again = q2google("sessions", "show", "trip", env=user_env, cwd=tmp_path)
    assert again.returncode == 2
    assert "no session 'trip'" in again.stderr
    assert again.stderr.count("\n") == 1

    # The files stay delivered: a new session over the same window sends nothing again.
    code, out, err = _sync(user_env, tmp_path, "trip-again")
    assert code == 0, err
    assert sandbox.stats.upload_bytes_received == sent_before
    assert len(sandbox.snapshot()["mediaItems"]) == total


def test_retry_describes_again_a_media_discovery_could_not(
    sandbox: Sandbox, user_env: dict[str, str], tmp_path: Path
) -> None:
    burst = next(media for media in sandbox.library.media if len(media.deliverables) > 1)
    total = len(sandbox.library.deliverables())
    sandbox.set_ready(burst.media_id, "failure")  # the GoPro cloud failed to process it
    code, out, err = _sync(user_env, tmp_path, "gap")
    assert code == 1, err
    assert "discovery: processing failed in the GoPro cloud" in out
    assert len(sandbox.snapshot()["mediaItems"]) == total - len(burst.deliverables)

    sandbox.set_ready(burst.media_id)  # processed again, now ready
    retried = q2google("sessions", "retry", "gap", env=user_env, cwd=tmp_path)
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert "retried 1 failed files" in retried.stdout
    assert f"{total} of {total} files in Google Photos" in retried.stdout
    assert [item["createCalls"] for item in sandbox.snapshot()["mediaItems"]] == [1] * total


def test_dry_run_reports_what_would_move_and_writes_nothing(
    sandbox: Sandbox, user_env: dict[str, str], tmp_path: Path
) -> None:
    library = sandbox.library
    result = q2google("sync", *WINDOW, "--session", "peek", "--dry-run", "--json", env=user_env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["dry_run"] is True
    assert report["files"] == len(library.deliverables())
    assert report["bytes"] == library.total_bytes
    by_type: dict[str, dict[str, int]] = {}
    for media, _, asset in library.deliverables():
        kind = by_type.setdefault(media.type, {"files": 0, "bytes": 0})
        kind["files"] += 1
        kind["bytes"] += asset.size
    assert report["by_type"] == by_type
    assert not (tmp_path / "sessions").exists(), "a dry run writes no state"
    assert sandbox.stats.upload_bytes_received == 0

    text = q2google("sync", *WINDOW, "--session", "peek", "--dry-run", env=user_env)
    assert f"{report['files']} files would move" in text.stdout
    assert "Video" in text.stdout

    code, _, err = _sync(user_env, tmp_path, "peek")
    assert code == 0, err
    before = state_snapshot(tmp_path / "sessions")
    after = q2google("sync", "--session", "peek", "--dry-run", "--json", env=user_env)
    report = json.loads(after.stdout)
    assert (report["files"], report["already_delivered"]) == (0, len(library.deliverables()))
    assert state_snapshot(tmp_path / "sessions") == before


def test_sessions_commands_refuse_bad_ids_and_unknown_sessions(
    user_env: dict[str, str], tmp_path: Path
) -> None:
    for args, message in [
        (["show", "../etc"], "invalid session id"),
        (["retry", "nothing-here"], "no session 'nothing-here'"),
        (["delete", "nothing-here", "--yes"], "no session 'nothing-here'"),
        (["delete", LEDGER_SESSION_ID, "--yes"], "reserved"),
    ]:
        result = q2google("sessions", *args, env=user_env, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr
        assert result.stderr.count("\n") == 1
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "sessions").exists()
    empty = q2google("sessions", "list", env=user_env, cwd=tmp_path)
    assert empty.returncode == 0
    assert "no sessions in" in empty.stdout


def test_an_interrupted_delete_leaves_the_session_whole_or_gone(tmp_path: Path) -> None:
    from q2google.testing import sample_session

    backend = JsonFileBackend(tmp_path)
    backend.save(sample_session("half"))
    (tmp_path / ".deleted-old.1234abcd").mkdir()  # what a delete killed midway leaves
    assert backend.session_ids() == ["half"]
    assert backend.delete("half")
    assert list(tmp_path.iterdir()) == []


def test_dry_run_lists_files_it_cannot_size_and_still_reports_the_rest(
    sandbox: Sandbox, user_env: dict[str, str]
) -> None:
    video = next(m for m in sandbox.library.media if m.type == "Video" and len(m.deliverables) > 1)
    gone = video.deliverables[1]  # a chapter: the search row does not size it, the CDN must
    sandbox.library._assets.pop(gone.asset_id)  # described by GoPro, missing from its CDN
    result = q2google("sync", *WINDOW, "--session", "peek", "--dry-run", "--json", env=user_env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["files"] == len(sandbox.library.deliverables()) - 1
    assert report["bytes"] == sandbox.library.total_bytes - gone.size
    assert [failure["item"] for failure in report["failures"]] == [f"{video.media_id}-1"]
    assert "size check" in report["failures"][0]["error"]


def test_a_corrupt_session_is_listed_as_such_and_can_be_deleted(
    user_env: dict[str, str], tmp_path: Path
) -> None:
    for session in ("good", "bad", "torn-item", "torn-summary"):
        code, _, err = _sync(user_env, tmp_path, session)
        assert code == 0, err
    sessions = tmp_path / "sessions"
    (sessions / "bad" / "meta.json").write_text("{ torn")
    torn_item = sessions / "torn-item" / "journal.jsonl"  # a damaged line before the last commit
    lines = torn_item.read_bytes().splitlines(keepends=True)
    torn_item.write_bytes(b"".join([lines[0], b'{"item": {"media_id": \n', *lines[2:]]))
    (sessions / "torn-item" / "summary.json").unlink()  # as 0.1.0 left it: read from its items
    (sessions / "torn-summary" / "summary.json").write_text('{"files": ')
    listed = q2google("sessions", "list", env=user_env)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line.split()[1] for line in listed.stdout.splitlines()[1:]}
    assert rows == {
        "bad": "corrupt",
        "good": "completed",
        "torn-item": "corrupt",
        "torn-summary": "completed",  # a summary is derived data: rebuilt, not reported
    }
    corrupt = [line for line in listed.stderr.splitlines() if " is corrupt: " in line]
    assert len(corrupt) == 2, listed.stderr
    assert "meta.json" in corrupt[0]
    assert corrupt[0].endswith("remove it with: q2google sessions delete bad")
    assert torn_item.name in corrupt[1]
    assert corrupt[1].endswith("remove it with: q2google sessions delete torn-item")

    as_json = json.loads(q2google("sessions", "list", "--json", env=user_env).stdout)
    shown = json.loads(q2google("sessions", "show", "good", "--json", env=user_env).stdout)
    shown.pop("google_requests")
    assert [entry["session_id"] for entry in as_json] == sorted(rows)
    assert all(set(entry) == set(shown) for entry in as_json), "one shape for every session"
    assert as_json[1] == shown, "`list --json` says what `show --json` says"
    assert as_json[0]["status"] == "corrupt"
    assert "meta.json" in as_json[0]["error"]

    code, _, err = _sync(user_env, tmp_path, "good")  # the others run as before
    assert code == 0, err
    gone = q2google("sessions", "delete", "bad", "--yes", env=user_env)
    assert gone.returncode == 0, gone.stderr
    assert not (tmp_path / "sessions" / "bad").exists()
    assert (tmp_path / "sessions" / "good" / "meta.json").is_file()


def test_delete_first_tells_the_ledger_what_the_session_delivered(
    sandbox: Sandbox, user_env: dict[str, str], tmp_path: Path
) -> None:
    code, _, err = _sync(user_env, tmp_path, "first")
    assert code == 0, err
    backend = JsonFileBackend(tmp_path / "sessions")
    backend.delete(LEDGER_SESSION_ID)  # as if the run died before the ledger's checkpoint
    sent = sandbox.stats.upload_bytes_received
    assert q2google("sessions", "delete", "first", "--yes", env=user_env).returncode == 0
    code, _, err = _sync(user_env, tmp_path, "second")
    assert code == 0, err
    assert sandbox.stats.upload_bytes_received == sent, "nothing sent again"

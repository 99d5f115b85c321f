"""`q2google auth google|status` and credential failures at sync, through the console script."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
from pathlib import Path

import httpx

from q2google.sandbox import Sandbox
from tests.cli import q2google, state_snapshot

WINDOW = ("--start", "2023-01-01", "--end", "2024-12-31")


def test_sign_in_with_the_installed_app_flow_then_status_is_ready(
    sandbox: Sandbox, user_env: dict[str, str], tmp_path: Path
) -> None:
    secrets_file = sandbox.write_client_secrets(tmp_path / "client.json")
    token_file = tmp_path / "fresh" / "token.json"
    env = {**user_env, "Q2GOOGLE_GOOGLE_TOKEN_FILE": str(token_file)}
    executable = shutil.which("q2google")
    assert executable
    with subprocess.Popen(
        [executable, "auth", "google", "--client-secrets", str(secrets_file), "--headless"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as child:
        assert child.stdout is not None
        url = ""
        for line in child.stdout:
            if line.startswith("http"):
                url = line.strip()
                break
        assert url.startswith(f"{sandbox.url}/o/oauth2/auth?"), url
        assert "photoslibrary.appendonly" in url
        # The user's browser: consent, then the redirect to q2google's loopback listener.
        landed = httpx.get(url, follow_redirects=True, timeout=30)
        assert landed.status_code == 200
        assert "signed in" in landed.text
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
    assert "token written to" in out
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    stored = json.loads(token_file.read_text())
    assert stored["refresh_token"] in sandbox.google.refresh_tokens
    assert stored["refresh_token"] not in out + err, "tokens never printed"

    status = q2google("auth", "status", env=env)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "ok   GoPro   the GoPro cloud accepts GP_ACCESS_TOKEN" in status.stdout
    assert "ok   Google  the Google token is present and refreshable" in status.stdout
    assert "photoslibrary.appendonly" in status.stdout
    assert stored["token"] not in status.stdout + status.stderr

    code = q2google("sync", *WINDOW, "--session", "after-login", env=env, cwd=tmp_path)
    assert code.returncode == 0, code.stderr


def test_status_says_what_is_not_ready_and_exits_1(
    sandbox: Sandbox, user_env: dict[str, str], tmp_path: Path
) -> None:
    env = {
        **user_env,
        "GP_ACCESS_TOKEN": "expired-token",
        "Q2GOOGLE_GOOGLE_TOKEN_FILE": str(tmp_path / "missing.json"),
    }
    status = q2google("auth", "status", "--json", env=env)
    assert status.returncode == 1
    report = json.loads(status.stdout)
    assert report["ready"] is False
    assert report["gopro"]["ready"] is False
    assert "rejected GP_ACCESS_TOKEN" in report["gopro"]["message"]
    assert report["gopro"]["http_status"] == 401
    assert "no Google token" in report["google"]["message"]
    assert "expired-token" not in status.stdout

    sandbox.call(sandbox.google.revoke_refresh_tokens)
    revoked = q2google("auth", "status", env=user_env)
    assert revoked.returncode == 1
    assert "FAIL Google  Google refused to refresh the token" in revoked.stdout
    assert "q2google auth google" in revoked.stdout


def test_rejected_or_revoked_tokens_stop_a_sync_before_it_touches_state(
    sandbox: Sandbox, user_env: dict[str, str], tmp_path: Path
) -> None:
    ok = q2google("sync", *WINDOW, "--session", "keep", env=user_env, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    before = state_snapshot(tmp_path / "sessions")

    rejected = q2google(
        "sync", "--session", "keep", env={**user_env, "GP_ACCESS_TOKEN": "stale"}, cwd=tmp_path
    )
    assert rejected.returncode == 2
    assert rejected.stderr == (
        "q2google: error: the GoPro cloud rejected GP_ACCESS_TOKEN: export a fresh "
        "GP_ACCESS_TOKEN (README, 'Real accounts')\n"
    )
    fresh = q2google(
        "sync", *WINDOW, "--session", "new", env={**user_env, "GP_ACCESS_TOKEN": "x"}, cwd=tmp_path
    )
    assert fresh.returncode == 2
    assert state_snapshot(tmp_path / "sessions") == before, "no session was started"

    # Revoked while its access token still looks valid: found before anything is written.
    sandbox.call(sandbox.google.revoke_refresh_tokens)
    for args in (["--session", "keep"], [*WINDOW, "--session", "another"]):
        revoked = q2google("sync", *args, env=user_env, cwd=tmp_path)
        assert revoked.returncode == 2
        assert revoked.stderr.count("\n") == 1
        assert "Google refused to refresh the token" in revoked.stderr
        assert "invalid_grant" in revoked.stderr
        assert "q2google auth google" in revoked.stderr
        assert state_snapshot(tmp_path / "sessions") == before


def test_an_unreachable_gopro_cloud_is_try_later_exit_75(
    user_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**user_env, "Q2GOOGLE_GOPRO_API_URL": "http://127.0.0.1:9"}
    for extra in ([], ["--dry-run"]):
        result = q2google("sync", *WINDOW, "--session", "s", *extra, env=env, cwd=tmp_path)
        assert result.returncode == 75, result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
        assert "http://127.0.0.1:9 did not answer the token check" in result.stderr
    assert not (tmp_path / "sessions").exists()


def test_sign_in_needs_a_client_secrets_file(user_env: dict[str, str], tmp_path: Path) -> None:
    missing = q2google("auth", "google", env=user_env)
    assert missing.returncode == 2
    assert "--client-secrets" in missing.stderr
    bad = tmp_path / "client.json"
    bad.write_text("{}")
    invalid = q2google("auth", "google", "--client-secrets", str(bad), env=user_env)
    assert invalid.returncode == 2
    assert "is not an OAuth client secrets file" in invalid.stderr
    assert invalid.stderr.count("\n") == 1

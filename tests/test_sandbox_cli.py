"""`q2google sandbox serve`, run as a user would in another terminal."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import httpx

from q2google.config import Q2GoogleSettings
from q2google.gopro import GoProCloudClient
from q2google.sandbox.process import parse_exports

WINDOW = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def test_serve_prints_and_writes_sourceable_exports_then_stops_on_ctrl_c(tmp_path: Path) -> None:
    executable = shutil.which("q2google")
    assert executable
    env_file = tmp_path / "sandbox.env"
    server = subprocess.Popen(
        [
            executable,
            "sandbox",
            "serve",
            "--env-file",
            str(env_file),
            "--library",
            "photos=5,videos=1,bursts=1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        printed = ""
        while "# q2google sandbox on" not in printed:
            line = server.stdout.readline()
            assert line, f"serve exited early: {server.stderr.read() if server.stderr else ''}"
            printed += line
        env = parse_exports(printed)
        assert env == parse_exports(env_file.read_text())
        assert env_file.stat().st_mode & 0o777 == 0o600
        token_file = Path(env["Q2GOOGLE_GOOGLE_TOKEN_FILE"])
        assert token_file.stat().st_mode & 0o777 == 0o600

        async def count_media() -> int:
            settings = Q2GoogleSettings(gopro_api_url=env["Q2GOOGLE_GOPRO_API_URL"])
            async with GoProCloudClient.from_settings(
                settings, access_token=env["GP_ACCESS_TOKEN"], max_items=1000
            ) as client:
                return len(await client.list_media_items(*WINDOW))

        assert asyncio.run(count_media()) == 7
        assert httpx.get(f"{env['Q2GOOGLE_PHOTOS_API_URL']}/_sandbox/stats").status_code == 200
    finally:
        server.send_signal(signal.SIGINT)
        _, stderr = server.communicate(timeout=20)
    assert server.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert not token_file.exists(), "the temporary token file is removed on exit"


def test_serve_rejects_a_bad_library_spec_in_one_line() -> None:
    executable = shutil.which("q2google")
    assert executable
    result = subprocess.run(
        [executable, "sandbox", "serve", "--library", "photos=many"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr == "q2google: error: library spec photos=many: not a number\n"

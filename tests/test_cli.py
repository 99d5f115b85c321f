"""The CLI shell: version, help, one-line errors, and a light import for fast start-up."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

from q2google import __version__
from q2google.cli import app, main
from q2google.errors import ConfigError


def _q2google(*args: str) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("q2google")
    assert executable, "the console script is installed with the package"
    return subprocess.run(
        [executable, *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_version() -> None:
    result = _q2google("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"q2google {__version__}"


def test_help_and_no_arguments() -> None:
    result = _q2google("--help")
    assert result.returncode == 0
    assert "GoPro" in result.stdout
    bare = _q2google()
    assert "Usage" in bare.stdout + bare.stderr


def test_python_dash_m_runs_the_same_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "q2google", "--version"], capture_output=True, text=True, check=False
    )
    assert result.stdout.strip() == f"q2google {__version__}"


@pytest.fixture
def failing_command() -> Iterator[None]:
    @app.command("explode")
    def explode() -> None:
        raise ConfigError("Q2GOOGLE_TRANSFER_CONCURRENCY: must be at least 1")

    yield
    app.registered_commands.pop()


@pytest.mark.usefixtures("failing_command")
def test_known_errors_are_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["explode"])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err == "q2google: error: Q2GOOGLE_TRANSFER_CONCURRENCY: must be at least 1\n"


@pytest.mark.usefixtures("failing_command")
def test_debug_shows_the_traceback() -> None:
    with pytest.raises(ConfigError):
        main(["--debug", "explode"])


def test_cli_import_stays_light() -> None:
    heavy = "{'pydantic', 'httpx', 'aiohttp'}"
    code = f"import sys, q2google.cli; print(sorted({heavy} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_the_public_api_resolves() -> None:
    import q2google

    missing = [name for name in q2google.__all__ if getattr(q2google, name, None) is None]
    assert missing == []
    from q2google import GoProToPhotosSync

    assert GoProToPhotosSync.__module__ == "q2google.sync"

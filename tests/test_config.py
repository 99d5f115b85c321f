"""Settings: defaults, environment and .env, and one-line errors naming the variable."""

from __future__ import annotations

from pathlib import Path

import platformdirs
import pytest

from q2google.config import (
    LEGACY_STATE_DIR,
    Q2GoogleSettings,
    default_google_token_file,
    get_settings,
    legacy_state_notice,
)
from q2google.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No Q2GOOGLE_* variable and no .env from the developer's machine leak in."""
    import os

    for name in list(os.environ):
        if name.startswith("Q2GOOGLE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults() -> None:
    settings = get_settings()
    assert settings.state_dir == platformdirs.user_data_path("q2google") / "sessions"
    assert legacy_state_notice(settings) is None
    assert settings.state_uri is None
    assert settings.gopro_api_url == "https://api.gopro.com"
    assert settings.photos_api_url == "https://photoslibrary.googleapis.com"
    assert settings.google_token_file == default_google_token_file()
    assert settings.google_token_file.name == "google-token.json"
    assert settings.google_client_secrets_file is None
    assert settings.photos_library_batch_size == 50
    assert settings.transfer_concurrency == 4
    assert settings.upload_chunk_size_bytes % (256 * 1024) == 0
    assert settings.fail_fast is False


def test_environment_and_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "Q2GOOGLE_TRANSFER_CONCURRENCY=7\nQ2GOOGLE_FAIL_FAST=true\nGP_ACCESS_TOKEN=ignored\n"
    )
    monkeypatch.setenv("Q2GOOGLE_PHOTOS_API_URL", "http://127.0.0.1:8080/")
    monkeypatch.setenv("Q2GOOGLE_STATE_URI", "")
    settings = get_settings()
    assert settings.transfer_concurrency == 7
    assert settings.fail_fast is True
    assert settings.photos_api_url == "http://127.0.0.1:8080"
    assert settings.state_uri is None


def test_overrides_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("Q2GOOGLE_TRANSFER_CONCURRENCY", "7")
    assert get_settings(transfer_concurrency=2).transfer_concurrency == 2


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("Q2GOOGLE_TRANSFER_CONCURRENCY", "0", "greater than or equal to 1"),
        ("Q2GOOGLE_TRANSFER_CONCURRENCY", "four", "valid integer"),
        ("Q2GOOGLE_PHOTOS_LIBRARY_BATCH_SIZE", "51", "less than or equal to 50"),
        ("Q2GOOGLE_UPLOAD_CHUNK_SIZE_BYTES", "300000", "multiple of 262144"),
        ("Q2GOOGLE_GOPRO_API_URL", "ftp://example.com", "http:// or https://"),
        ("Q2GOOGLE_PHOTOS_API_URL", "https://x.test/?key=1", "query"),
        ("Q2GOOGLE_FAIL_FAST", "maybe", "valid boolean"),
    ],
)
def test_invalid_value_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        get_settings()
    text = str(caught.value)
    assert variable in text
    assert message in text
    assert "\n" not in text
    assert caught.value.exit_code == 2


def test_values_are_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("Q2GOOGLE_TRANSFER_CONCURRENCY", "hunter2-secret")
    with pytest.raises(ConfigError) as caught:
        get_settings()
    assert "hunter2" not in str(caught.value)


def test_settings_class_is_usable_directly() -> None:
    assert Q2GoogleSettings(transfer_concurrency=3).transfer_concurrency == 3


def test_a_state_directory_at_the_old_default_is_used_with_a_notice(tmp_path: Path) -> None:
    (tmp_path / LEGACY_STATE_DIR).mkdir()  # the working directory is tmp_path
    settings = get_settings()
    assert settings.state_dir == LEGACY_STATE_DIR
    notice = legacy_state_notice(settings)
    assert notice is not None
    assert "old default" in notice
    assert "\n" not in notice


def test_the_state_directory_variable_still_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / LEGACY_STATE_DIR).mkdir()
    monkeypatch.setenv("Q2GOOGLE_STATE_DIR", str(tmp_path / "elsewhere"))
    settings = get_settings()
    assert settings.state_dir == tmp_path / "elsewhere"
    assert legacy_state_notice(settings) is None


def test_the_old_default_in_the_home_directory_is_found_from_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from q2google.config import default_state_dir

    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    (home / ".q2google_sessions").mkdir(parents=True)
    elsewhere.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(elsewhere)  # a cron job that once ran from home, run from elsewhere now
    assert default_state_dir() == home / ".q2google_sessions"

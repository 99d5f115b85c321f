"""build_backend: the URI scheme picks the backend, lazily; third parties add schemes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from q2google.config import Q2GoogleSettings
from q2google.errors import BackendUnavailableError, UnknownBackendError
from q2google.state import BACKENDS, ENTRY_POINT_GROUP, build_backend, known_schemes
from q2google.state.local import JsonFileBackend


def test_unset_uri_means_json_files_in_state_dir(tmp_path: Path) -> None:
    backend = build_backend(Q2GoogleSettings(state_dir=tmp_path / "s"))
    assert isinstance(backend, JsonFileBackend)
    assert backend.state_dir == tmp_path / "s"


def test_file_uri(tmp_path: Path) -> None:
    backend = build_backend(Q2GoogleSettings(state_uri=f"file://{tmp_path}/elsewhere"))
    assert isinstance(backend, JsonFileBackend)
    assert backend.state_dir == tmp_path / "elsewhere"


def test_unknown_scheme_names_it_and_the_known_ones_but_not_the_uri() -> None:
    with pytest.raises(UnknownBackendError) as caught:
        build_backend(Q2GoogleSettings(state_uri="redis://admin:hunter2@cache:6379/0"))
    message = str(caught.value)
    assert "'redis'" in message
    assert "file://" in message
    assert "mongodb://" in message
    assert "hunter2" not in message
    assert "\n" not in message
    assert caught.value.exit_code == 2


def test_a_bare_path_is_not_a_uri() -> None:
    with pytest.raises(UnknownBackendError, match="not a URI"):
        build_backend(Q2GoogleSettings(state_uri="/var/lib/q2google"))


def test_missing_dependency_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(BACKENDS, "mongodb", "q2google.state.no_such_module:MongoBackend")
    with pytest.raises(BackendUnavailableError, match=r"pip install 'q2google\[mongo\]'"):
        build_backend(Q2GoogleSettings(state_uri="mongodb://localhost:27017/q2google"))


def test_pymongo_is_not_imported_for_json_state(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        from q2google import build_backend, get_settings
        build_backend(get_settings(state_dir={str(tmp_path)!r})).load("absent")
        print("pymongo" in sys.modules)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


@pytest.fixture
def third_party(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed distribution registering `memory://` and `broken://` through entry points."""
    (tmp_path / "memory_backend.py").write_text(
        textwrap.dedent(
            """
        class MemoryBackend:
            def __init__(self, uri):
                self.uri, self.sessions = uri, {}

            @classmethod
            def from_settings(cls, settings):
                return cls(settings.state_uri)

            def load(self, session_id):
                return self.sessions.get(session_id)

            def save(self, state):
                self.sessions[state.session_id] = state

        def not_a_backend(settings):
            return object()
        """
        )
    )
    dist = tmp_path / "memory_backend-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: memory-backend\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nmemory = memory_backend:MemoryBackend\n"
        "broken = memory_backend:not_a_backend\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


@pytest.mark.usefixtures("third_party")
def test_entry_point_adds_a_scheme() -> None:
    assert "memory" in known_schemes()
    backend = build_backend(Q2GoogleSettings(state_uri="memory://anything"))
    assert type(backend).__name__ == "MemoryBackend"
    assert backend.load("x") is None


@pytest.mark.usefixtures("third_party")
def test_entry_point_that_is_not_a_backend_is_refused() -> None:
    with pytest.raises(BackendUnavailableError, match="no load/save"):
        build_backend(Q2GoogleSettings(state_uri="broken://x"))

"""The contract suite is reusable: a user's own ten-line backend runs it unchanged."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from q2google.state import SyncStateBackend
from q2google.testing import BackendSpec, SyncStateBackendContract
from tests.sqlite_backend import SqliteBackend


class TestUserSqliteBackendContract(SyncStateBackendContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> SyncStateBackend:
        return SqliteBackend(str(tmp_path / "state.db"))

    @pytest.fixture
    def reopen_backend(self, tmp_path: Path) -> Callable[[], SyncStateBackend]:
        return lambda: SqliteBackend(str(tmp_path / "state.db"))

    @pytest.fixture
    def backend_spec(self, tmp_path: Path) -> BackendSpec:
        root = str(Path(__file__).resolve().parent.parent)
        return BackendSpec(
            "tests.sqlite_backend:SqliteBackend",
            {"path": str(tmp_path / "state.db")},
            env={"PYTHONPATH": root},
        )


def test_it_satisfies_the_protocol(tmp_path: Path) -> None:
    assert isinstance(SqliteBackend(str(tmp_path / "x.db")), SyncStateBackend)

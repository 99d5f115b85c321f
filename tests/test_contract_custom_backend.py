"""The contract suite is reusable: a user's own ten-line backend runs it unchanged, and the
same backend grown the optional lease and claim protocols runs their part of it too."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from q2google.state import LedgerClaims, SessionLeasing, SyncStateBackend
from q2google.testing import BackendSpec, SyncStateBackendContract
from tests.sqlite_backend import LeasingSqliteBackend, SqliteBackend

ROOT = str(Path(__file__).resolve().parent.parent)


class TestUserSqliteBackendContract(SyncStateBackendContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> SyncStateBackend:
        return SqliteBackend(str(tmp_path / "state.db"))

    @pytest.fixture
    def reopen_backend(self, tmp_path: Path) -> Callable[[], SyncStateBackend]:
        return lambda: SqliteBackend(str(tmp_path / "state.db"))

    @pytest.fixture
    def backend_spec(self, tmp_path: Path) -> BackendSpec:
        return BackendSpec(
            "tests.sqlite_backend:SqliteBackend",
            {"path": str(tmp_path / "state.db")},
            env={"PYTHONPATH": ROOT},
        )


class TestUserLeasingSqliteBackendContract(SyncStateBackendContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> SyncStateBackend:
        return LeasingSqliteBackend(str(tmp_path / "state.db"))

    @pytest.fixture
    def reopen_backend(self, tmp_path: Path) -> Callable[[], SyncStateBackend]:
        return lambda: LeasingSqliteBackend(str(tmp_path / "state.db"))

    @pytest.fixture
    def backend_spec(self, tmp_path: Path) -> BackendSpec:
        return BackendSpec(
            "tests.sqlite_backend:LeasingSqliteBackend",
            {"path": str(tmp_path / "state.db")},
            env={"PYTHONPATH": ROOT},
        )


def test_it_satisfies_the_protocol(tmp_path: Path) -> None:
    plain = SqliteBackend(str(tmp_path / "x.db"))
    assert isinstance(plain, SyncStateBackend)
    assert not isinstance(plain, SessionLeasing), "the optional protocols stay optional"
    assert not isinstance(plain, LedgerClaims)


def test_the_grown_one_satisfies_the_optional_protocols(tmp_path: Path) -> None:
    grown = LeasingSqliteBackend(str(tmp_path / "y.db"))
    assert isinstance(grown, SessionLeasing)
    assert isinstance(grown, LedgerClaims)

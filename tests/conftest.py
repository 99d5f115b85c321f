"""Shared fixtures: the sandbox (GoPro cloud + Google Photos emulators) on 127.0.0.1."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from q2google.sandbox import FaultConfig, Sandbox, SandboxLibrary


@pytest.fixture
def sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    """A running sandbox; set its library and faults with ``@pytest.mark.sandbox(...)``.

    ``faults`` is a :class:`FaultConfig` or a spec such as ``"5xx=0.1,reset=0.05"``; change
    them mid-test with ``sandbox.set_faults(...)``.
    """
    marker = request.node.get_closest_marker("sandbox")
    options = marker.kwargs if marker else {}
    faults = options.get("faults")
    if isinstance(faults, str):
        faults = FaultConfig.parse(faults)
    instance = Sandbox(options.get("library") or SandboxLibrary.demo(), faults)
    with instance.running_in_thread():
        yield instance


@pytest.fixture
def http(sandbox: Sandbox) -> Iterator[httpx.Client]:
    """A plain HTTP client with the sandbox as base URL."""
    with httpx.Client(base_url=sandbox.url, timeout=30) as client:
        yield client


@pytest.fixture
def bearer(sandbox: Sandbox) -> dict[str, str]:
    """An Authorization header with a valid Google access token."""
    token, _ = sandbox.call(sandbox.google.issue_access_token)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def user_env(sandbox: Sandbox, tmp_path: Path) -> dict[str, str]:
    """A user's shell after `source sandbox.env`, state in ``tmp_path / "sessions"``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("Q2GOOGLE_", "GP_")) and name != "NO_COLOR"
    }
    env.update(sandbox.environment(sandbox.write_token_file(tmp_path / "google-token.json")))
    env["Q2GOOGLE_STATE_DIR"] = str(tmp_path / "sessions")
    return env


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real MongoDB wire-protocol server (SecantusDB) on 127.0.0.1."""
    from secantus import SecantusDBServer

    server = SecantusDBServer(storage_path=str(tmp_path_factory.mktemp("secantus")))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mongo_uri(mongo_server: Any, request: pytest.FixtureRequest) -> str:
    """A fresh database per test on the shared server."""
    name = "t_" + "".join(ch for ch in request.node.name if ch.isalnum())[-50:]
    host, port = mongo_server.address
    return f"mongodb://{host}:{port}/{name}"

"""Shared fixtures: the sandbox (GoPro cloud + Google Photos emulators) on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

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

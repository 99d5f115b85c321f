"""The contract's lease and ledger-claim part: one owner per session, no file twice.

Part of :class:`~q2google.testing.SyncStateBackendContract` (which every backend subclasses),
kept here for size. The lease tests run for a backend that implements
:class:`~q2google.state.SessionLeasing`, the claim tests for one that also implements
:class:`~q2google.state.LedgerClaims`; others skip them (both protocols are optional). The
tests that need other processes use the contract's ``backend_spec``: a child builds the
backend from it, takes a lease, claims or records, and is killed or released by the test.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any, cast

import pytest

from q2google.errors import EXIT_TRY_LATER, SessionBusyError
from q2google.state import (
    BulkClaims,
    DeliveryLedger,
    ItemState,
    LedgerClaims,
    SessionCatalog,
    SessionLeasing,
    SyncStateBackend,
    make_item_key,
)

TAKEOVER_WITHIN_SECONDS = 30.0
"""A dead owner's lease must be free by then (a lease record's TTL should be short in tests)."""
_POLL_SECONDS = 0.05
_CHILD_CODE = "import sys; from q2google.testing.lease_contract import child_main; child_main()"


def leasing(backend: SyncStateBackend) -> SessionLeasing:
    """The backend as a :class:`SessionLeasing`, or skip the test."""
    if not isinstance(backend, SessionLeasing):
        pytest.skip("the backend does not lease sessions (optional)")
    return backend


def claiming(backend: SyncStateBackend) -> SessionLeasing:
    """The backend, which must lease sessions and claim ledger files, or skip the test."""
    if not isinstance(backend, LedgerClaims):
        pytest.skip("the backend does not claim ledger files (optional)")
    return leasing(backend)


class Child:
    """A process that builds the backend from a spec and leases, claims or records in it.

    Args:
        spec: The contract's ``BackendSpec``.
        session_id: The session it works for.
        lease: Hold the session's lease from start to end.
        claim: Item keys to claim, in order.
        bulk: Claim them 8 at a time (``DeliveryLedger.claim_many``), not one by one.
        record: ``(media id, Google media item id)`` pairs to record, one save each.
        wait: Wait for :meth:`go` before claiming and recording.
    """

    def __init__(
        self,
        spec: Any,
        session_id: str,
        *,
        lease: bool = False,
        claim: list[str] | None = None,
        bulk: bool = False,
        record: list[tuple[str, str]] | None = None,
        wait: bool = False,
    ) -> None:
        request = {
            "factory": spec.factory,
            "kwargs": spec.kwargs,
            "session_id": session_id,
            "lease": lease,
            "claim": claim or [],
            "bulk": bulk,
            "record": record or [],
            "wait": wait,
        }
        self.process = subprocess.Popen(
            [sys.executable, "-c", _CHILD_CODE, json.dumps(request)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **spec.env},
        )
        self.pid = self.process.pid

    def _line(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode()
        if not line:
            self.process.kill()
            _, stderr = self.process.communicate()
            pytest.fail(f"the child process failed: {stderr.decode(errors='replace')}")
        return line

    def ready(self) -> None:
        """Wait until it holds its lease (if asked) and waits or works."""
        assert self._line().startswith("ready")

    def go(self) -> None:
        """Let it claim and record."""
        assert self.process.stdin is not None
        self.process.stdin.write(b"go\n")
        self.process.stdin.flush()

    def result(self) -> list[str]:
        """Wait until it has claimed and recorded; return the keys it won."""
        won: list[str] = json.loads(self._line())["won"]
        return won

    def kill(self) -> None:
        """SIGKILL it (nothing of it runs on: no release, no clean-up)."""
        self.process.kill()
        self.process.communicate()

    def finish(self) -> None:
        """Let it release its lease and exit."""
        self.process.communicate(timeout=30)
        assert self.process.returncode == 0, self.process.returncode


def child_main() -> None:
    """The child's side of :class:`Child` (``sys.argv[1]`` is its request)."""
    request = json.loads(sys.argv[1])
    module_name, _, attribute = request["factory"].partition(":")
    factory: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        factory = getattr(factory, part)
    backend = factory(**request["kwargs"])
    session_id = request["session_id"]
    with ExitStack() as stack:
        if request["lease"]:
            stack.enter_context(backend.lease(session_id))
        print("ready", flush=True)
        if request["wait"]:
            sys.stdin.readline()
        ledger = DeliveryLedger(backend)
        keys = request["claim"]
        if request["bulk"]:
            won = [
                k
                for at in range(0, len(keys), 8)
                for k in ledger.claim_many(keys[at : at + 8], session_id)
            ]
        else:
            won = [key for key in keys if ledger.claim(key, session_id)]
        for media_id, media_item_id in request["record"]:
            ledger.record(
                ItemState(
                    media_id=media_id, file_name=f"{media_id}.JPG", media_item_id=media_item_id
                )
            )
            ledger.save()
        print(json.dumps({"won": won}), flush=True)
        sys.stdin.read()  # hold the lease and the claims until the test lets go


def eventually(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until it holds, failing after :data:`TAKEOVER_WITHIN_SECONDS`."""
    deadline = time.monotonic() + TAKEOVER_WITHIN_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {TAKEOVER_WITHIN_SECONDS:.0f} s")
        time.sleep(_POLL_SECONDS)


def can_lease(backend: SessionLeasing, session_id: str) -> bool:
    """Whether ``session_id`` can be leased now (the lease is let go at once)."""
    try:
        with backend.lease(session_id):
            return True
    except SessionBusyError:
        return False


class LeaseContract:
    """Leases and ledger claims; mixed into ``SyncStateBackendContract``."""

    def test_a_second_lease_of_a_session_is_refused_naming_its_holder(
        self, backend: SyncStateBackend
    ) -> None:
        leases = leasing(backend)
        with leases.lease("lease-one") as holder:
            assert (holder.pid, holder.host) == (os.getpid(), socket.gethostname())
            with pytest.raises(SessionBusyError) as refused, leases.lease("lease-one"):
                pytest.fail("one session was leased twice at once")
            message = str(refused.value)
            assert message == (
                f"session 'lease-one' is busy: another q2google run (pid {os.getpid()} on "
                f"{socket.gethostname()}) holds it since {holder.since}; try again later"
            )
            assert refused.value.exit_code == EXIT_TRY_LATER
            seen = leases.lease_holder("lease-one")
            assert seen is not None
            assert (seen.pid, seen.host, seen.since) == (holder.pid, holder.host, holder.since)
            with leases.lease("lease-two"):  # another session is free
                assert leases.lease_holder("lease-two") is not None
        assert leases.lease_holder("lease-one") is None
        assert leases.lease_holder("lease-two") is None

    def test_a_released_lease_can_be_taken_again(
        self, backend: SyncStateBackend, reopen_backend: Callable[[], SyncStateBackend]
    ) -> None:
        leases = leasing(backend)
        with leases.lease("again"):
            pass
        with leases.lease("again"):
            pass
        with leasing(reopen_backend()).lease("again"):
            assert not can_lease(leases, "again")
        assert can_lease(leases, "again")

    def test_a_lease_never_changes_the_stored_session(
        self, backend: SyncStateBackend, reopen_backend: Callable[[], SyncStateBackend]
    ) -> None:
        from q2google.testing.contract import sample_session

        leases = leasing(backend)
        backend.save(sample_session("leased"))
        stored = reopen_backend().load("leased")
        assert stored is not None
        listed = backend.session_ids() if isinstance(backend, SessionCatalog) else []
        with leases.lease("leased"):
            assert not can_lease(leases, "leased")
        with leases.lease("never-saved"):
            pass
        again = reopen_backend().load("leased")
        assert again is not None
        assert again.to_dict() == stored.to_dict()
        assert reopen_backend().load("never-saved") is None, "a lease is not a session"
        if isinstance(backend, SessionCatalog):
            assert backend.session_ids() == listed

    def test_a_dead_owners_lease_and_claims_are_taken_over(
        self, backend: SyncStateBackend, backend_spec: Any
    ) -> None:
        leases = leasing(backend)
        if backend_spec is None:
            pytest.skip("no backend_spec: this backend cannot be rebuilt in a child process")
        claims = isinstance(backend, LedgerClaims)
        child = Child(backend_spec, "dead-owner", lease=True, claim=["shared-0"] if claims else [])
        ledger = DeliveryLedger(backend)
        try:
            child.ready()
            assert child.result() == (["shared-0"] if claims else [])
            with (
                pytest.raises(SessionBusyError, match=rf"\(pid {child.pid} on "),
                leases.lease("dead-owner"),
            ):
                pytest.fail("a live owner's lease was taken")
            if claims:
                assert not ledger.claim("shared-0", "survivor"), "a live session's claim was taken"
        finally:
            child.kill()
        eventually(lambda: can_lease(leases, "dead-owner"), "a dead owner's lease was not free")
        if claims:
            assert ledger.claim("shared-0", "survivor"), "a dead session's claim was not free"

    def test_claims_let_one_running_session_deliver_a_file(
        self, backend: SyncStateBackend, reopen_backend: Callable[[], SyncStateBackend]
    ) -> None:
        leases = claiming(backend)
        ledger, other = DeliveryLedger(backend), DeliveryLedger(reopen_backend())
        with leases.lease("claim-a"), leasing(reopen_backend()).lease("claim-b"):
            assert ledger.claim("m-0", "claim-a")
            assert ledger.claim("m-0", "claim-a"), "a session's own claim is its own"
            assert not other.claim("m-0", "claim-b"), "a running session's claim was taken"
            assert other.claim("m-1", "claim-b")
            ledger.release("m-0", "claim-a")
            assert other.claim("m-0", "claim-b")
            delivered = ItemState(media_id="m", file_index=2, file_name="x.JPG", media_item_id="g2")
            assert ledger.claim(delivered.item_key, "claim-a")
            ledger.record(delivered)
            ledger.save()  # recorded, then released
            assert not other.claim(delivered.item_key, "claim-b"), "a delivered file is claimed"
            assert not ledger.claim(delivered.item_key, "claim-a")
            assert other.delivered(delivered.item_key) == "g2"
            assert other.release_all("claim-b") == 2
            assert ledger.claim("m-1", "claim-a")
        # claim-a's run is over: its claims are free for another session
        assert other.claim("m-1", "claim-b")

    @pytest.mark.parametrize("bulk", [False, True], ids=["one-by-one", "in-bulk"])
    def test_two_running_sessions_never_claim_the_same_file(
        self, backend: SyncStateBackend, backend_spec: Any, bulk: bool
    ) -> None:
        claiming(backend)
        if backend_spec is None:
            pytest.skip("no backend_spec: this backend cannot be rebuilt in a child process")
        keys = [make_item_key(f"race{number}", 0) for number in range(40)]
        children = [
            Child(backend_spec, f"race-{n}", lease=True, claim=keys, bulk=bulk, wait=True)
            for n in (1, 2)
        ]
        try:
            for child in children:
                child.ready()
            for child in children:
                child.go()
            first, second = (child.result() for child in children)
        finally:
            for child in children:
                child.kill()
        assert not set(first) & set(second), "two running sessions claimed the same file"
        assert sorted(first + second) == sorted(keys), "a file nobody else held was refused"

    def test_concurrent_ledger_records_lose_nothing(
        self,
        backend: SyncStateBackend,
        reopen_backend: Callable[[], SyncStateBackend],
        backend_spec: Any,
    ) -> None:
        claiming(backend)
        if backend_spec is None:
            pytest.skip("no backend_spec: this backend cannot be rebuilt in a child process")
        shared = [(f"both{n}", f"g-both{n}") for n in range(8)]
        plans = [[(f"{who}{n}", f"g-{who}{n}") for n in range(20)] + shared for who in ("x", "y")]
        children = [
            Child(backend_spec, f"rec-{n}", record=plan, wait=True) for n, plan in enumerate(plans)
        ]
        try:  # both start with no ledger: creating it must not race either
            for child in children:
                child.ready()
            for child in children:
                child.go()
            for child in children:
                child.result()
        finally:
            for child in children:
                child.kill()
        ledger = DeliveryLedger(reopen_backend())
        expected = {make_item_key(media, 0): google for plan in plans for media, google in plan}
        assert {key: ledger.media_item_id(key) for key in expected} == expected
        assert len(ledger) == len(expected)

    def test_many_files_are_claimed_and_released_as_one_at_a_time(
        self, backend: SyncStateBackend
    ) -> None:
        leases = claiming(backend)
        if not isinstance(backend, BulkClaims):
            pytest.skip("the backend does not claim files in bulk (optional)")
        claims = cast(LedgerClaims, backend)
        with leases.lease("bulk-holder"), leases.lease("bulk"):
            assert claims.claim_item("busy-0", "bulk-holder")
            won = backend.claim_items(["free-0", "busy-0", "free-1", "free-0"], "bulk")
            assert won == ["free-0", "free-1", "free-0"]  # a running session's claim holds
            assert not claims.claim_item("free-1", "bulk-holder")  # the claims are bulk's
            assert backend.claim_items(["free-1"], "bulk") == ["free-1"]  # already its own
            backend.release_items(["free-0", "busy-0"], "bulk")  # busy-0 is not its own
            assert claims.claim_item("free-0", "bulk-holder")
            assert not claims.claim_item("busy-0", "bulk")
            assert backend.claim_items([], "bulk") == []
        # bulk's run is over: its claims are taken over, in bulk too
        assert backend.claim_items(["free-1", "new-0"], "bulk-holder") == ["free-1", "new-0"]
        assert claims.claim_item("free-0", "bulk")  # bulk-holder's run is over: taken over

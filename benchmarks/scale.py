"""How q2google scales with the library: memory, start-up and listing for N files.

Usage::

    uv run python benchmarks/scale.py 5000 [--state-uri mongodb://...] [--state-only]

Builds a sandbox library of N tiny photos (served from this process), then runs the real
``q2google`` command in child processes, as a user's cron job would, and prints:

- the first run (skipped with ``--state-only``, which writes the finished session and its
  ledger straight through the backend instead): seconds, seconds per file, peak RSS;
- a no-op resume of the finished session (process start included): seconds, peak RSS;
- ``q2google sessions list``: seconds, peak RSS;
- the state's size (on disk for JSON, MongoDB's ``dataSize`` otherwise).

Each step also prints the CPU seconds q2google's process used and, with ``--mongo``, those
the database server used meanwhile: where the time of a step goes.

Peak RSS is the child's own (``wait4`` in a small launcher process, so neither the sandbox
nor a database in this process counts).
Children run with Python's compiled-module cache on (as a user's installation has it), warmed
by one ``q2google --help`` before the first measured run.
``--state-uri`` picks the backend as ``Q2GOOGLE_STATE_URI`` does (JSON files when unset);
``--mongo`` starts the test suite's MongoDB wire-protocol server (SecantusDB) for it, in a
process of its own (so that its CPU is told apart, and it does not share this process's
interpreter with the sandbox).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from q2google.config import Q2GoogleSettings
from q2google.gopro import GoProCloudClient, GoProLibrary
from q2google.sandbox import Sandbox, SandboxLibrary
from q2google.state import (
    BatchState,
    DeliveryLedger,
    ItemState,
    StageName,
    StageStatus,
    build_backend,
    new_session,
)

SESSION = "scale"
START, END = "2020-01-01", "2100-01-01"
PHOTO_BYTES = 2048


@dataclass
class Measure:
    """One child process: what it took."""

    seconds: float
    peak_rss_mib: float
    cpu_seconds: float
    code: int
    stderr: str
    server_cpu_seconds: float | None = None


_LAUNCHER = """
import os, subprocess, sys, time
started = time.perf_counter()
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
seconds = time.perf_counter() - started
with open(sys.argv[1], "w") as out:
    out.write(f"{usage.ru_maxrss} {seconds} {usage.ru_utime + usage.ru_stime}")
sys.exit(os.waitstatus_to_exitcode(status))
"""
"""Runs and measures the command from a small process: Linux counts a child's peak RSS from
its fork, so a child forked by this process (a sandbox of N files, perhaps a database)
would report at least this process's size."""


def run_child(
    args: list[str], env: dict[str, str], cwd: Path, server: MongoServer | None = None
) -> Measure:
    """Run ``q2google ARGS`` and measure its wall time, its own peak RSS and CPU, and the
    CPU ``server`` used meanwhile."""
    executable = shutil.which("q2google")
    if executable is None:
        sys.exit("q2google is not installed in this environment: `uv sync` first")
    server_cpu = server.cpu_seconds() if server is not None else None
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as report:
        child = subprocess.run(
            [sys.executable, "-c", _LAUNCHER, report.name, executable, *args],
            env=env,
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        rss_kib, seconds, cpu = report.read().split()
    server_after = server.cpu_seconds() if server is not None else None
    if server_cpu is not None and server_after is not None:
        server_cpu = server_after - server_cpu
    return Measure(
        float(seconds),
        int(rss_kib) / 1024,
        float(cpu),
        child.returncode,
        child.stderr[-2000:],
        server_cpu,
    )


class MongoServer:
    """SecantusDB (the tests' MongoDB wire-protocol server) in a process of its own."""

    def __init__(self) -> None:
        self.storage = tempfile.mkdtemp(prefix="q2google-scale-db-")
        with socket.socket() as probe:  # a free port
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "secantus", "--host", "127.0.0.1"),
                *("--port", str(self.port), "--storage-path", self.storage),
                *("--log-level", "WARNING"),
            ],
            stdout=subprocess.DEVNULL,
        )
        self.uri = f"mongodb://127.0.0.1:{self.port}/scale"
        deadline = time.monotonic() + 30
        client: MongoClient[dict[str, Any]]
        while True:  # until it answers
            with MongoClient(self.uri, serverSelectionTimeoutMS=500) as client:
                try:
                    client.admin.command("ping")
                    break
                except PyMongoError:
                    if time.monotonic() > deadline or self.process.poll() is not None:
                        self.stop()
                        sys.exit("the MongoDB server did not start")

    def cpu_seconds(self) -> float | None:
        """CPU the server has used so far (Linux: from /proc), or ``None``."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        """Stop it and delete its data."""
        self.process.terminate()
        self.process.wait(timeout=30)
        shutil.rmtree(self.storage, ignore_errors=True)


def write_finished_state(settings: Q2GoogleSettings, library: SandboxLibrary) -> None:
    """The finished session of ``library`` and its ledger, written through the backend, with
    a finished batch per 50 files, as a first run leaves them."""
    backend = build_backend(settings)
    state = new_session(
        SESSION,
        start_date_iso=datetime.fromisoformat(START).replace(tzinfo=UTC).isoformat(),
        end_date_iso=datetime.fromisoformat(END).replace(tzinfo=UTC).isoformat(),
        batch_size=50,
    )
    for number, (media, index, asset) in enumerate(library.deliverables()):
        item = ItemState(
            media_id=media.media_id,
            file_index=index,
            file_name=asset.file_name,
            media_type=media.type,
            captured_at=media.captured_at.isoformat(),
            size_bytes=asset.size,
            discovery_status=StageStatus.COMPLETED,
            transfer_status=StageStatus.COMPLETED,
            create_status=StageStatus.COMPLETED,
            media_item_id=f"scale-item-{number}",
        )
        state.add_item(item)
    keys = list(state.items)
    for index, start in enumerate(range(0, len(keys), 50)):
        batch = BatchState(batch_index=index, item_keys=tuple(keys[start : start + 50]), attempts=1)
        batch.status = StageStatus.COMPLETED
        batch.responses = tuple(
            {"status": {"message": "Success"}, "mediaItem": {"id": state.items[key].media_item_id}}
            for key in batch.item_keys
        )
        state.add_batch(batch)
    for stage in StageName:
        state.set_stage(stage, StageStatus.COMPLETED)
    state.listings = 1
    backend.save(state)
    ledger = DeliveryLedger(backend)
    for item in state.items.values():
        ledger.record(item)
    ledger.save()


def warm_search(sandbox: Sandbox) -> None:
    """Page through the window once, as the skipped first run would have: the sandbox renders
    each search row once, as a cloud serves its warm index."""

    async def walk() -> None:
        async with GoProCloudClient(sandbox.url, access_token=sandbox.gopro_token) as client:
            library, page, pages = GoProLibrary(client), 1, 1
            start, end = (datetime.fromisoformat(day).replace(tzinfo=UTC) for day in (START, END))
            while page <= pages:
                pages, page = (await library.search(start, end, page)).total_pages, page + 1

    asyncio.run(walk())


def state_size(settings: Q2GoogleSettings) -> str:
    """The state's size: bytes on disk (JSON: a file under several names counted once) or
    MongoDB's ``dataSize``."""
    if settings.state_uri and settings.state_uri.startswith("mongodb"):
        import pymongo

        client: Any = pymongo.MongoClient(settings.state_uri)
        stats = client.get_default_database().command("dbStats")
        return f"{stats.get('dataSize', 0) / 2**20:.1f} MiB (dataSize)"
    sizes = {
        (status.st_dev, status.st_ino): status.st_size
        for status in (path.stat() for path in settings.state_dir.rglob("*") if path.is_file())
    }
    names = sum(1 for path in settings.state_dir.rglob("*") if path.is_file())
    return f"{sum(sizes.values()) / 2**20:.1f} MiB in {len(sizes)} files ({names} names)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", type=int, nargs="?", default=5000, help="photos in the library")
    parser.add_argument("--state-uri", default=None, help="Q2GOOGLE_STATE_URI (JSON if unset)")
    parser.add_argument("--mongo", action="store_true", help="start a local MongoDB server")
    parser.add_argument(
        "--state-only", action="store_true", help="write the finished state, skip the first run"
    )
    parser.add_argument(
        "--resumes", type=int, default=1, help="no-op resumes to measure (the first may be cold)"
    )
    options = parser.parse_args()
    server = MongoServer() if options.mongo else None
    if server is not None:
        options.state_uri = server.uri
    library = SandboxLibrary.generated(photos=options.files, photo_size=PHOTO_BYTES, seed=3)
    files = len(library.deliverables())
    try:
        with (
            tempfile.TemporaryDirectory(prefix="q2google-scale-") as scratch,
            Sandbox(library).running_in_thread() as sandbox,
        ):
            root = Path(scratch)
            env = {k: v for k, v in os.environ.items() if not k.startswith(("Q2GOOGLE_", "GP_"))}
            # As on a user's machine: Python keeps its compiled modules (a CI box may say not
            # to), and they exist before the first measured start.
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            run_child(["--help"], env, root)
            env.update(sandbox.environment(sandbox.write_token_file(root / "token.json")))
            env["Q2GOOGLE_STATE_DIR"] = str(root / "sessions")
            # What scales is measured here, not Google's daily quota (10,000 requests: a
            # 20,000-file first run would stop halfway, as it should for a user).
            env["Q2GOOGLE_DAILY_REQUEST_LIMIT"] = str(10 * files + 10_000)
            if options.state_uri:
                env["Q2GOOGLE_STATE_URI"] = options.state_uri
            settings = Q2GoogleSettings(
                state_dir=root / "sessions", state_uri=options.state_uri or None
            )
            backend_name = "MongoDB" if options.state_uri else "JSON files"
            print(f"{files} files, {backend_name}, {os.cpu_count()} cores")
            sync = ["sync", "--session", SESSION, "--json"]
            if options.state_only:
                started = time.perf_counter()
                write_finished_state(settings, library)
                print(f"  state written directly in {time.perf_counter() - started:.1f} s")
                warm_search(sandbox)
            else:
                first = run_child([*sync, "--start", START, "--end", END], env, root, server)
                report("first run", first, per_file=files)
            for _ in range(options.resumes):
                resume = run_child(sync, env, root, server)
                report("no-op resume", resume)
            listing = run_child(["sessions", "list"], env, root, server)
            report("sessions list", listing)
            print(f"  state size: {state_size(settings)}")
    finally:
        if server is not None:
            server.stop()


def report(what: str, measure: Measure, *, per_file: int = 0) -> None:
    """Print one measured step (and what went wrong, if it did)."""
    rate = f", {measure.seconds / per_file * 1000:.1f} ms per file" if per_file else ""
    cpu = f"; CPU: q2google {measure.cpu_seconds:.2f} s"
    if measure.server_cpu_seconds is not None:
        cpu += f", server {measure.server_cpu_seconds:.2f} s"
    print(f"  {what}: {measure.seconds:.2f} s{rate}, peak RSS {measure.peak_rss_mib:.0f} MiB{cpu}")
    if measure.code != 0:
        print(f"    exit {measure.code}: {measure.stderr.strip().splitlines()[-1:]}")


if __name__ == "__main__":
    main()

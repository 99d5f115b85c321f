"""How long one checkpoint takes in a large session: one item changes, the state is saved.

Usage::

    uv run python benchmarks/checkpoint.py [--items 20000] [--checkpoints 500] [--dir PATH]
        [--backend json|mongo|both] [--drop-caches]

Prints the time of the first (full) save, of a load (warm, and for the JSON backend cold: its
files evicted from the page cache first), of the full garbage collection that follows it (the
JSON backend pauses Python's collector while it loads: the first collection after the load
scans what it built, once), percentiles of a one-item checkpoint (durable: the journal's
append and fsync), of one that changes the session's summary too (a file done), and of a
few-items checkpoint with the session metadata (and a summary), then how large the session's
files are. Put ``--dir`` on the disk you will run on: fsync cost is the disk's. A cold load
evicts the session's files with ``posix_fadvise`` (their data; inodes stay cached);
``--drop-caches`` (root only) drops every cache of the machine instead, as after a reboot.
``--backend mongo`` runs the same against MongoDB (a local SecantusDB server, the tests' own)
and also counts the wire-protocol round trips of each checkpoint (goal: one).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from q2google.state import StageName, StageStatus, SyncStateBackend
from q2google.state.local import JsonFileBackend
from q2google.testing import sample_session


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)

    def pick(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    return (
        f"mean {statistics.fmean(ordered) * 1000:.2f} ms, p50 {pick(0.5) * 1000:.2f} ms, "
        f"p95 {pick(0.95) * 1000:.2f} ms, max {ordered[-1] * 1000:.2f} ms"
    )


def evict(directory: Path, *, drop_caches: bool = False) -> None:
    """Make the next read of the files under ``directory`` come from the disk.

    Args:
        directory: Whose files to evict from the page cache (``posix_fadvise``).
        drop_caches: Drop the whole machine's page, inode and directory caches instead (root).
    """
    os.sync()
    if drop_caches:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return
    if not hasattr(os, "posix_fadvise"):  # macOS: the "cold" load is a warm one
        return
    for path in directory.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def run(
    backend: SyncStateBackend,
    label: str,
    items: int,
    checkpoints: int,
    *,
    round_trips: list[str] | None = None,
    cold: Callable[[], None] | None = None,
) -> None:
    """Measure one backend and print its figures (``cold`` evicts its files from the cache)."""
    state = sample_session("bench", items=items)
    started = time.perf_counter()
    backend.save(state)
    print(f"[{label}] first save of {items} items: {time.perf_counter() - started:.2f} s")

    for temperature in ("warm", "cold") if cold is not None else ("warm",):
        if temperature == "cold" and cold is not None:
            cold()
        started = time.perf_counter()
        loaded = backend.load("bench")
        elapsed = time.perf_counter() - started
        print(f"[{label}] load of {items} items ({temperature}): {elapsed:.2f} s")
    assert loaded is not None
    started = time.perf_counter()  # not inside the checkpoints timed below: one of them
    gc.collect()  # would pay it (the JSON backend loads with the collector paused)
    print(f"[{label}] a full garbage collection after it: {time.perf_counter() - started:.2f} s")
    keys = list(loaded.items)

    def one_offset(number: int) -> None:
        loaded.items[keys[(number * 7919) % len(keys)]].upload_offset = (number + 1) * 262_144

    def one_done(number: int) -> None:  # the most common checkpoint of a run
        item = loaded.items[keys[(number * 104_729 + 1) % len(keys)]]
        item.transfer_status = StageStatus.COMPLETED

    def with_metadata(number: int) -> None:
        for offset in range(3):
            item = loaded.items[keys[(number * 31 + offset) % len(keys)]]
            item.create_status = StageStatus.COMPLETED
        loaded.discovery_next_page = number + 2
        loaded.set_stage(StageName.CREATE, StageStatus.RUNNING)

    for name, change, count in (
        (f"one-item checkpoint ({checkpoints}x)", one_offset, checkpoints),
        ("one-item checkpoint, summary changed", one_done, checkpoints),
        ("three items + metadata checkpoint", with_metadata, max(1, checkpoints // 5)),
    ):
        durations, trips = [], []
        for number in range(count):
            change(number)
            if round_trips is not None:
                round_trips.clear()
            started = time.perf_counter()
            backend.save(loaded)
            durations.append(time.perf_counter() - started)
            if round_trips is not None:
                trips.append(len(round_trips))
        print(f"[{label}] {name}: {_percentiles(durations)}")
        if trips:
            print(
                f"[{label}] round trips: min {min(trips)}, max {max(trips)}, "
                f"mean {statistics.fmean(trips):.2f}"
            )
    if isinstance(backend, JsonFileBackend):
        files = [path for path in backend.session_dir("bench").rglob("*") if path.is_file()]
        size = sum(path.stat().st_size for path in files)
        print(f"[{label}] stored: {len(files)} files, {size / 1e6:.1f} MB")


def main() -> None:
    """Parse arguments and run the benchmark on the JSON backend."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--checkpoints", type=int, default=500)
    parser.add_argument("--dir", type=Path, default=None, help="where to put the state")
    parser.add_argument("--backend", choices=["json", "mongo", "both"], default="both")
    parser.add_argument(
        "--drop-caches", action="store_true", help="cold load after dropping all caches (root)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="q2google-bench-") as directory:
        if args.backend in ("json", "both"):
            backend = JsonFileBackend(directory)
            run(
                backend,
                "json",
                args.items,
                args.checkpoints,
                cold=lambda: evict(backend.session_dir("bench"), drop_caches=args.drop_caches),
            )
        if args.backend in ("mongo", "both"):
            run_mongo(Path(directory) / "mongo", args.items, args.checkpoints)


def run_mongo(storage: Path, items: int, checkpoints: int) -> None:
    """Start a local SecantusDB server and run the benchmark on MongoBackend."""
    from pymongo import MongoClient, monitoring
    from secantus import SecantusDBServer

    from q2google.state.mongo import MongoBackend

    commands: list[str] = []

    class Counter(monitoring.CommandListener):
        def started(self, event: monitoring.CommandStartedEvent) -> None:
            commands.append(event.command_name)

        def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
            pass

        def failed(self, event: monitoring.CommandFailedEvent) -> None:
            pass

    server = SecantusDBServer(storage_path=str(storage))
    server.start()
    try:
        host, port = server.address
        uri = f"mongodb://{host}:{port}/bench"
        client: Any = MongoClient(uri, event_listeners=[Counter()])
        run(MongoBackend(uri, client=client), "mongo", items, checkpoints, round_trips=commands)
    finally:
        server.stop()


if __name__ == "__main__":
    main()

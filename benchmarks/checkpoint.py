"""How long one checkpoint takes in a large session: one item changes, the state is saved.

Usage::

    uv run python benchmarks/checkpoint.py [--items 10000] [--checkpoints 500] [--dir PATH]
        [--backend json|mongo|both]

Prints the time of the first (full) save, of a load, and percentiles of a one-item checkpoint
(durable: fsync of the file and of its directory), plus a few-items checkpoint with the
session metadata. Put ``--dir`` on the disk you will run on: fsync cost is the disk's.
``--backend mongo`` runs the same against MongoDB (a local SecantusDB server, the tests' own)
and also counts the wire-protocol round trips of each checkpoint (goal: one).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
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


def run(
    backend: SyncStateBackend,
    label: str,
    items: int,
    checkpoints: int,
    round_trips: list[str] | None = None,
) -> None:
    """Measure one backend and print its figures."""
    state = sample_session("bench", items=items)
    started = time.perf_counter()
    backend.save(state)
    print(f"[{label}] first save of {items} items: {time.perf_counter() - started:.2f} s")

    started = time.perf_counter()
    loaded = backend.load("bench")
    print(f"[{label}] load of {items} items: {time.perf_counter() - started:.2f} s")
    assert loaded is not None
    keys = list(loaded.items)

    one_item, trips = [], []
    for number in range(checkpoints):
        item = loaded.items[keys[(number * 7919) % len(keys)]]
        item.upload_offset = (number + 1) * 262_144
        if round_trips is not None:
            round_trips.clear()
        started = time.perf_counter()
        backend.save(loaded)
        one_item.append(time.perf_counter() - started)
        if round_trips is not None:
            trips.append(len(round_trips))
    print(f"[{label}] one-item checkpoint ({checkpoints}x): {_percentiles(one_item)}")
    if trips:
        print(
            f"[{label}] round trips per checkpoint: min {min(trips)}, max {max(trips)}, "
            f"mean {statistics.fmean(trips):.2f}"
        )

    with_meta, meta_trips = [], []
    for number in range(max(1, checkpoints // 5)):
        for offset in range(3):
            loaded.items[
                keys[(number * 31 + offset) % len(keys)]
            ].create_status = StageStatus.COMPLETED
        loaded.discovery_next_page = number + 2
        loaded.set_stage(StageName.CREATE, StageStatus.RUNNING)
        if round_trips is not None:
            round_trips.clear()
        started = time.perf_counter()
        backend.save(loaded)
        with_meta.append(time.perf_counter() - started)
        if round_trips is not None:
            meta_trips.append(len(round_trips))
    print(f"[{label}] three items + metadata checkpoint: {_percentiles(with_meta)}")
    if meta_trips:
        print(f"[{label}] round trips (three items + metadata): max {max(meta_trips)}")


def main() -> None:
    """Parse arguments and run the benchmark on the JSON backend."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--checkpoints", type=int, default=500)
    parser.add_argument("--dir", type=Path, default=None, help="where to put the state")
    parser.add_argument("--backend", choices=["json", "mongo", "both"], default="both")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="q2google-bench-") as directory:
        if args.backend in ("json", "both"):
            run(JsonFileBackend(directory), "json", args.items, args.checkpoints)
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

"""How long one checkpoint takes in a large session: one item changes, the state is saved.

Usage::

    uv run python benchmarks/checkpoint.py [--items 10000] [--checkpoints 500] [--dir PATH]

Prints the time of the first (full) save, of a load, and percentiles of a one-item checkpoint
(durable: fsync of the file and of its directory), plus a few-items checkpoint with the
session metadata. Put ``--dir`` on the disk you will run on: fsync cost is the disk's.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

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


def run(backend: SyncStateBackend, label: str, items: int, checkpoints: int) -> None:
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

    one_item = []
    for number in range(checkpoints):
        item = loaded.items[keys[(number * 7919) % len(keys)]]
        item.upload_offset = (number + 1) * 262_144
        started = time.perf_counter()
        backend.save(loaded)
        one_item.append(time.perf_counter() - started)
    print(f"[{label}] one-item checkpoint ({checkpoints}x): {_percentiles(one_item)}")

    with_meta = []
    for number in range(max(1, checkpoints // 5)):
        for offset in range(3):
            loaded.items[
                keys[(number * 31 + offset) % len(keys)]
            ].create_status = StageStatus.COMPLETED
        loaded.discovery_next_page = number + 2
        loaded.set_stage(StageName.CREATE, StageStatus.RUNNING)
        started = time.perf_counter()
        backend.save(loaded)
        with_meta.append(time.perf_counter() - started)
    print(f"[{label}] three items + metadata checkpoint: {_percentiles(with_meta)}")


def main() -> None:
    """Parse arguments and run the benchmark on the JSON backend."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--checkpoints", type=int, default=500)
    parser.add_argument("--dir", type=Path, default=None, help="where to put the JSON state")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="q2google-bench-") as directory:
        run(JsonFileBackend(directory), "json", args.items, args.checkpoints)


if __name__ == "__main__":
    main()

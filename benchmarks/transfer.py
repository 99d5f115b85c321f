"""The whole pipeline under a per-connection bandwidth cap: wall time against the ideal.

Usage::

    uv run python benchmarks/transfer.py [--cap 50MiB] [--cases video:1GiB,video:4GiB,photos]

For each case, starts ``q2google sandbox serve`` (its own process) with the cap on every
connection, runs a real sync into it (JSON state in a temporary directory), and prints the
wall time, the ideal (total bytes / cap, divided by the transfers that can run in parallel:
one for a single video, ``transfer_concurrency`` for many photos), MB/s and this process's peak
RSS. Streaming overlaps download and upload, so the wall time approaches the ideal.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from q2google.config import Q2GoogleSettings
from q2google.gopro import GoProCloudClient
from q2google.photos import GooglePhotosClient
from q2google.sandbox.library import SandboxLibrary, parse_size
from q2google.sandbox.process import serve_process
from q2google.state.local import JsonFileBackend
from q2google.sync import GoProToPhotosSync
from q2google.testing.memory import peak_rss_mib

PHOTOS = "photos=400,photo_size=1MiB,seed=5"


async def sync_library(env: dict[str, str], state_dir: Path, concurrency: int) -> None:
    """One q2google sync of the whole sandbox library (``env``: the sandbox's variables)."""
    settings = Q2GoogleSettings(
        gopro_api_url=env["Q2GOOGLE_GOPRO_API_URL"],
        photos_api_url=env["Q2GOOGLE_PHOTOS_API_URL"],
        google_token_file=Path(env["Q2GOOGLE_GOOGLE_TOKEN_FILE"]),
        state_dir=state_dir,
        transfer_concurrency=concurrency,
    )
    async with (
        GoProCloudClient.from_settings(settings, access_token=env["GP_ACCESS_TOKEN"]) as gopro,
        GooglePhotosClient.from_settings(settings) as photos,
    ):
        sync = GoProToPhotosSync(gopro, photos, JsonFileBackend(state_dir), settings)
        await sync.sync_date_range(
            datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC), session_id="bench"
        )


def run_case(case: str, cap: str, concurrency: int) -> None:
    """Run one case and print its line."""
    library = PHOTOS if case == "photos" else case
    total = SandboxLibrary.from_spec(library).total_bytes
    parallel = 1 if case.startswith("video:") else concurrency
    ideal = total / parse_size(cap) / parallel
    with (
        serve_process(library, f"bandwidth={cap}") as served,
        tempfile.TemporaryDirectory(prefix="q2google-bench-") as state_dir,
    ):
        started = time.perf_counter()
        asyncio.run(sync_library(served.env, Path(state_dir), concurrency))
        wall = time.perf_counter() - started
    print(
        f"{case:>12}: {total / 1024**2:8.0f} MiB in {wall:6.1f} s, ideal {ideal:6.1f} s "
        f"(wall/ideal {wall / ideal:.2f}), {total / wall / 1e6:6.1f} MB/s, "
        f"peak RSS {peak_rss_mib():.0f} MiB",
        flush=True,
    )


def main() -> None:
    """Parse the arguments and run the cases."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cap", default="50MiB", help="per-connection bandwidth cap")
    parser.add_argument("--cases", default="video:1GiB,video:4GiB,photos")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    print(f"per-connection cap {args.cap}, {args.concurrency} in flight")
    for case in args.cases.split(","):
        run_case(case.strip(), args.cap, args.concurrency)


if __name__ == "__main__":
    main()

"""What exactly once costs against a Google Photos that never merges identical uploads.

Usage::

    uv run python benchmarks/exactly_once.py [--photos 200] [--runs 4]

For each fault scenario, runs the same session against the sandbox (in this process) until
every file is in Google Photos, at most ``--runs`` times, and prints: the runs it took, the
items in the library per file (1.00: none doubled), the bytes uploaded per byte of the
library, and the Google requests per file, split into uploads, batchCreate calls and the
listings that find what a lost answer did.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from q2google.config import Q2GoogleSettings
from q2google.gopro import GoProCloudClient
from q2google.photos import GooglePhotosClient
from q2google.sandbox import FaultConfig, Sandbox, SandboxLibrary
from q2google.sessions import summarize
from q2google.state.local import JsonFileBackend
from q2google.sync import GoProToPhotosSync

SCENARIOS = {
    "no fault": "",
    "a fifth of create answers lost": "lost-create=0.2,seed=7",
    "half of create answers lost": "lost-create=0.5,seed=7",
    "lost answers, 5xx and resets": "lost-create=0.3,5xx=0.05,reset=0.03,retry-after=0,seed=7",
}
WINDOW = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


async def _run_once(sandbox: Sandbox, state_dir: Path) -> str:
    settings = Q2GoogleSettings(
        gopro_api_url=sandbox.url,
        photos_api_url=sandbox.url,
        state_dir=state_dir,
        google_token_file=sandbox.write_token_file(state_dir / "token.json"),
    )
    backend = JsonFileBackend(state_dir)
    async with (
        GoProCloudClient.from_settings(settings, access_token=sandbox.gopro_token) as gopro,
        GooglePhotosClient.from_settings(settings) as photos,
    ):
        sync = GoProToPhotosSync(gopro, photos, backend, settings)
        await sync.sync_date_range(*WINDOW, session_id="bench", album_title="Bench")
    state = backend.load("bench")
    assert state is not None
    return summarize(state).status


async def scenario(library: SandboxLibrary, faults: str, runs: int) -> str:
    """Run one scenario to completion (or ``runs`` runs) and describe its cost."""
    async with Sandbox(library, FaultConfig.parse(faults)) as sandbox:
        with tempfile.TemporaryDirectory(prefix="q2google-bench-") as scratch:
            used = 0
            for used in range(1, runs + 1):  # noqa: B007 - reported below
                if await _run_once(sandbox, Path(scratch)) == "completed":
                    break
        files = len(library.deliverables())
        stored = Counter(item["sha256"] for item in sandbox.snapshot()["mediaItems"])
        calls = sandbox.stats.google_calls
        uploads = sandbox.stats.upload_requests
        listings = calls["mediaItems.list"] + calls["mediaItems.search"]
        return (
            f"{used} run(s); items per file {sum(stored.values()) / files:.2f} "
            f"(doubled: {sum(count - 1 for count in stored.values())}); bytes "
            f"{sandbox.stats.upload_bytes_received / library.total_bytes:.2f} x; requests per "
            f"file: uploads {uploads / files:.2f}, batchCreate {calls['batchCreate'] / files:.3f}, "
            f"listings {listings / files:.3f}"
        )


def main() -> None:
    """Parse the arguments and print one line per scenario."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--runs", type=int, default=4)
    args = parser.parse_args()
    library = SandboxLibrary.generated(
        photos=args.photos, chaptered=2, videos=2, photo_size=64 * 1024, video_size=256 * 1024
    )
    print(f"library: {len(library.deliverables())} files, {library.total_bytes / 1024**2:.1f} MiB")
    for name, faults in SCENARIOS.items():
        print(f"{name:>32}: {asyncio.run(scenario(library, faults, args.runs))}", flush=True)


if __name__ == "__main__":
    main()

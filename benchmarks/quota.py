"""What a sync costs in requests: GoPro API calls per media, Google requests per file.

Usage::

    uv run python benchmarks/quota.py [--photos 500] [--chaptered 3] [--chapters 3]
        [--videos 2] [--photo-size 300KiB] [--video-size 8MiB] [--concurrency 4]

Builds a photo-heavy sandbox library (photos of a few hundred KiB, a few recordings in
chapters, a few single videos), syncs it against the sandbox (in this process) once per
scenario, checks that every file landed once, byte for byte, and prints per scenario: GoPro
API calls per media (search pages, download metadata, any other), CDN requests per file (GET,
HEAD), and Google requests per delivered file (uploads, batchCreate, any other). Scenarios:
``fresh`` (no fault) and ``expired`` (every CDN URL discovery stored has expired when the
transfer starts: each is resolved again, once per media).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from q2google.config import Q2GoogleSettings
from q2google.gopro import GoProCloudClient
from q2google.photos import GooglePhotosClient
from q2google.sandbox import FaultConfig, Sandbox, SandboxLibrary
from q2google.sandbox.library import parse_size
from q2google.state.local import JsonFileBackend
from q2google.sync import GoProToPhotosSync

WINDOW = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
EXPIRED = "url-ttl=-1"
"""Every CDN URL is signed already expired (the ``expired`` scenario, during discovery)."""
SCENARIOS = ("fresh", "expired")

Row = dict[str, float]


async def scenario(library: SandboxLibrary, name: str, concurrency: int) -> dict[str, Row]:
    """Sync ``library`` once under scenario ``name``; return its counts, per media or file."""
    faults = FaultConfig.parse(EXPIRED if name == "expired" else "")
    async with Sandbox(library, faults) as sandbox:
        with tempfile.TemporaryDirectory(prefix="q2google-bench-") as scratch:
            await _sync(sandbox, Path(scratch), concurrency, expire=name == "expired")
        stored = Counter(item["sha256"] for item in sandbox.snapshot()["mediaItems"])
        expected = Counter(asset.sha256() for _, _, asset in library.deliverables())
        if stored != expected:
            raise SystemExit(f"{name}: the library in Google Photos is not the GoPro library")
        stats = sandbox.stats
    media, files = len(library.media), len(library.deliverables())
    gopro = stats.gopro_calls
    google = stats.google_calls
    batch_create = google["batchCreate"]
    return {
        "gopro": {
            "search": gopro["search"] / media,
            "metadata": gopro["download"] / media,
            "other": gopro["other"] / media,
            "total": sum(gopro.values()) / media,
        },
        "cdn": {
            "GET": stats.cdn_requests["GET"] / files,
            "HEAD": stats.cdn_requests["HEAD"] / files,
        },
        "google": {
            "uploads": stats.upload_requests / files,
            "batchCreate": batch_create / files,
            "other": (sum(google.values()) - batch_create) / files,
            "total": (stats.upload_requests + sum(google.values())) / files,
        },
    }


async def _sync(sandbox: Sandbox, scratch: Path, concurrency: int, *, expire: bool) -> None:
    settings = Q2GoogleSettings(
        gopro_api_url=sandbox.url,
        photos_api_url=sandbox.url,
        state_dir=scratch / "state",
        google_token_file=sandbox.write_token_file(scratch / "token.json"),
        transfer_concurrency=concurrency,
    )

    async def after(stage: str, *_: Any) -> None:
        if stage == "discovery" and expire:  # URLs resolved from now on are valid
            sandbox.set_faults("")

    async with (
        GoProCloudClient.from_settings(settings, access_token=sandbox.gopro_token) as gopro,
        GooglePhotosClient.from_settings(settings) as photos,
    ):
        sync = GoProToPhotosSync(gopro, photos, JsonFileBackend(settings.state_dir), settings)
        await sync.sync_date_range(
            *WINDOW, session_id="bench", album_title="Bench", on_stage_complete=after
        )


def _table(title: str, rows: dict[str, Row], shown: Callable[[float], str]) -> None:
    columns = list(next(iter(rows.values())))
    print(f"{title:<36}" + "".join(f"{column:>12}" for column in columns))
    for name, row in rows.items():
        print(f"  {name:<34}" + "".join(f"{shown(row[column]):>12}" for column in columns))


def main() -> None:
    """Parse the arguments, run every scenario and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=500)
    parser.add_argument("--chaptered", type=int, default=3)
    parser.add_argument("--chapters", type=int, default=3)
    parser.add_argument("--videos", type=int, default=2)
    parser.add_argument("--photo-size", default="300KiB")
    parser.add_argument("--video-size", default="8MiB")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    library = SandboxLibrary.generated(
        photos=args.photos,
        chaptered=args.chaptered,
        chapters=args.chapters,
        videos=args.videos,
        photo_size=parse_size(args.photo_size),
        video_size=parse_size(args.video_size),
        seed=16,
    )
    print(
        f"library: {len(library.deliverables())} files in {len(library.media)} media "
        f"({args.photos} photos, {args.chaptered} recordings of {args.chapters} chapters, "
        f"{args.videos} videos), {library.total_bytes / 1024**2:.1f} MiB\n"
    )
    results = {name: asyncio.run(scenario(library, name, args.concurrency)) for name in SCENARIOS}
    _table(
        "GoPro API calls per media", {n: r["gopro"] for n, r in results.items()}, "{:.3f}".format
    )
    _table("CDN requests per file", {n: r["cdn"] for n, r in results.items()}, "{:.3f}".format)
    _table(
        "Google requests per delivered file",
        {n: r["google"] for n, r in results.items()},
        "{:.3f}".format,
    )
    print("\nevery file landed once, byte for byte, in each scenario")


if __name__ == "__main__":
    main()

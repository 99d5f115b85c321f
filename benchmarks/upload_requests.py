"""Raw against resumable uploads: Google requests per file, throughput, bytes resent.

Usage::

    uv run python benchmarks/upload_requests.py [--sizes 256KiB,1MiB,4MiB,16MiB,64MiB]
        [--total 96MiB] [--concurrency 4] [--scenarios local,wan,breaks]

Starts ``q2google sandbox serve`` in its own process and uploads, for each size, files of that
size (at least four, about ``--total`` bytes in all, ``--concurrency`` at a time) once by the
raw protocol and once by the resumable one, then registers them (one batchCreate per 50).
Scenarios: ``local`` (no faults), ``wan`` (the sandbox answers 50 ms late and caps each
connection at 16 MiB/s: a fast home uplink) and ``breaks`` (the ``wan`` link, and one body in
ten breaks at a random point: raw sends the whole file again, resumable continues from
Google's offset). Prints, per scenario, size and protocol: Google requests per file (uploads
plus batchCreate), MB/s of file bytes, and bytes received by Google / file bytes (what breaks
cost). The default of ``Q2GOOGLE_RAW_UPLOAD_MAX_BYTES`` was chosen from this table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from q2google.config import Q2GoogleSettings
from q2google.photos import GooglePhotosClient, NewItemSpec
from q2google.retry import RetryPolicy
from q2google.sandbox.library import parse_size
from q2google.sandbox.process import serve_process

SCENARIOS = {
    "local": "",
    "wan": "latency=0.05,bandwidth=16MiB",
    "breaks": "latency=0.05,bandwidth=16MiB",
}
BREAK_RATE = 0.1
"""In ``breaks``: the chance that a body breaks at a random point (the sandbox's ``reset`` acts
on resumable chunks only, so the break is made on this side, in the byte source)."""
FAST = RetryPolicy(attempts=20, initial_seconds=0.05, max_seconds=0.5, jitter_seconds=0.05)


def _source(data: bytes, dice: random.Random | None) -> Any:
    async def read(offset: int) -> AsyncIterator[bytes]:
        stop = len(data)
        if dice is not None and dice.random() < BREAK_RATE:
            stop = offset + int((len(data) - offset) * dice.uniform(0.1, 0.9))
        for start in range(offset, stop, 256 * 1024):
            yield data[start : min(stop, start + 256 * 1024)]
        if stop < len(data):
            raise httpx.ReadError("the link broke midway (benchmark)")

    return read


async def measure(
    env: dict[str, str],
    size: int,
    count: int,
    *,
    raw: bool,
    concurrency: int,
    breaks: bool = False,
) -> dict[str, float]:
    """Upload ``count`` files of ``size`` bytes by one protocol and register them.

    Returns:
        Requests per file, MB/s and bytes received per file byte.
    """
    base = env["Q2GOOGLE_PHOTOS_API_URL"]
    settings = Q2GoogleSettings(
        photos_api_url=base,
        google_token_file=Path(env["Q2GOOGLE_GOOGLE_TOKEN_FILE"]),
        raw_upload_max_bytes=size if raw else 0,
    )
    data = os.urandom(size)
    dice = random.Random(size) if breaks else None
    async with httpx.AsyncClient(timeout=60) as http:
        before = (await http.get(f"{base}/_sandbox/stats")).json()
        gate = asyncio.Semaphore(concurrency)
        started = time.perf_counter()
        async with GooglePhotosClient.from_settings(settings) as client:
            client.policy = client.api.policy = FAST

            async def one(number: int) -> NewItemSpec:
                name = f"F{size}-{int(raw)}-{number:04d}.JPG"
                async with gate:
                    token = await client.upload(
                        _source(data, dice), size=size, file_name=name, mime_type="image/jpeg"
                    )
                return NewItemSpec(token, name)

            specs = await asyncio.gather(*(one(number) for number in range(count)))
            results = await client.create_media_items(specs)
        elapsed = time.perf_counter() - started
        after = (await http.get(f"{base}/_sandbox/stats")).json()
    assert all(result.ok for result in results)
    calls = sum(after["google_calls"].values()) - sum(before["google_calls"].values())
    uploads = after["upload_requests"] - before["upload_requests"]
    received = after["upload_bytes_received"] - before["upload_bytes_received"]
    return {
        "requests": (uploads + calls) / count,
        "mbps": size * count / elapsed / 1e6,
        "received": received / (size * count),
    }


async def run(env: dict[str, str], args: argparse.Namespace, *, breaks: bool) -> None:
    """Measure every size with both protocols under the served sandbox's faults."""
    for text in args.sizes.split(","):
        size = parse_size(text)
        count = max(4, parse_size(args.total) // size)
        for raw in (True, False):
            got = await measure(
                env, size, count, raw=raw, concurrency=args.concurrency, breaks=breaks
            )
            print(
                f"  {text:>7} x{count:<4} {'raw' if raw else 'resumable':<9} "
                f"{got['requests']:5.2f} req/file  {got['mbps']:7.1f} MB/s  "
                f"received {got['received']:.2f} x",
                flush=True,
            )


def main() -> None:
    """Start the sandbox per scenario and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256KiB,1MiB,4MiB,16MiB,64MiB")
    parser.add_argument("--total", default="96MiB")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--scenarios", default="local,wan,breaks")
    args = parser.parse_args()
    for name in args.scenarios.split(","):
        print(f"{name}: faults {SCENARIOS[name] or 'none'}", flush=True)
        with serve_process("video:1KiB", SCENARIOS[name]) as served:
            asyncio.run(run(served.env, args, breaks=name == "breaks"))


if __name__ == "__main__":
    main()

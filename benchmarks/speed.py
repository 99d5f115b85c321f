"""q2google's sync against a minimal streaming reference, on the same sandbox library.

Usage::

    uv run python benchmarks/speed.py [--cases mixed,small] [--cap 5MiB] [--concurrency 4]
        [--files 5000] [--small-cap none] [--repeat 1]

For each case, starts ``q2google sandbox serve`` (its own process) with a per-connection
bandwidth cap, then in this process runs (1) q2google's sync (JSON state in a temporary
directory) and (2) a reference of about a hundred lines (:func:`reference`), twice: in the
listing's order, then largest first. It lists the media through the GoPro API, and for each
one GETs its original from the CDN and streams it into one Google upload (raw up to
q2google's raw limit, else one resumable ``upload, finalize`` request), ``--concurrency`` at
a time under a plain :class:`asyncio.Semaphore`, registering the uploads by batchCreate in
50s as they fill. All go through the same capped links, so the ideal is the same:
``max(total bytes / (N x cap), largest file / cap)`` (the largest file has one connection each
way, capped). Every run's items are checked byte for byte afterwards. Prints a table: wall
seconds and wall/ideal of each run, and q2google's wall over the better reference's.
``--repeat N`` runs the three N times in turn on the same sandbox and adds a row of medians:
a shared machine's speed drifts by 10-20 % within minutes, more than the gap measured.

Cases:

* ``mixed``: one large video (about 100 MiB) and 200 photos of about 1 MiB, capped at
  ``--cap``: the large file should start early, or it ends the run alone.
* ``small``: ``--files`` photos of about 64 KiB, capped at ``--small-cap`` (none by default):
  per-file overhead (requests, checkpoints) against the bare protocol.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, NamedTuple

import httpx
from transfer import sync_library  # benchmarks/ is the script's directory

from q2google.config import DEFAULT_RAW_UPLOAD_MAX_BYTES
from q2google.sandbox.library import SandboxLibrary, parse_size
from q2google.sandbox.process import serve_process

BATCH = 50
"""Items per batchCreate (Google's most)."""


class Case(NamedTuple):
    """A benchmark case: a sandbox library and the cap on each connection."""

    name: str
    library: str
    cap: int | None


async def reference(
    env: dict[str, str],
    concurrency: int,
    google_token: dict[str, Any],
    *,
    largest_first: bool = False,
) -> int:
    """Move every original the plain way: list, stream CDN to upload, batchCreate in 50s.

    Args:
        env: The sandbox's variables (URLs, ``GP_ACCESS_TOKEN``).
        concurrency: Files in flight.
        google_token: The sandbox's Google token file, read (its refresh token is used).
        largest_first: Start the media in decreasing ``file_size``, not in the listing's order.

    Returns:
        The items created.
    """
    gopro, google = env["Q2GOOGLE_GOPRO_API_URL"], env["Q2GOOGLE_PHOTOS_API_URL"]
    async with httpx.AsyncClient(timeout=600) as http:
        bearer = {"Authorization": f"Bearer {await _access_token(http, google_token)}"}
        rows: list[dict[str, Any]] = []
        page, pages = 1, 1
        while page <= pages:
            answer = await http.get(
                f"{gopro}/media/search",
                params={"page": page, "per_page": 200, "fields": "id,file_size"},
                headers={"Authorization": f"Bearer {env['GP_ACCESS_TOKEN']}"},
            )
            body = answer.raise_for_status().json()
            rows += body["_embedded"]["media"]
            page, pages = page + 1, body["_pages"]["total_pages"]
        if largest_first:
            rows.sort(key=lambda row: row.get("file_size") or 0, reverse=True)

        slots = asyncio.Semaphore(concurrency)
        ready: list[dict[str, Any]] = []
        created = 0

        async def create(items: list[dict[str, Any]]) -> None:
            nonlocal created
            answer = await http.post(
                f"{google}/v1/mediaItems:batchCreate",
                json={"newMediaItems": items},
                headers=bearer,
            )
            results = answer.raise_for_status().json()["newMediaItemResults"]
            created += sum(result["status"].get("message") == "Success" for result in results)

        async def move(media_id: str) -> None:
            async with slots:
                answer = await http.get(
                    f"{gopro}/media/{media_id}/download",
                    headers={"Authorization": f"Bearer {env['GP_ACCESS_TOKEN']}"},
                )
                body = answer.raise_for_status().json()
                name = body["filename"]
                (url,) = [
                    v["url"] for v in body["_embedded"]["variations"] if v["label"] == "source"
                ]
                async with http.stream("GET", url) as cdn:
                    size = int(cdn.raise_for_status().headers["Content-Length"])
                    token = await _upload(
                        http, cdn, google=google, bearer=bearer, size=size, name=name
                    )
            ready.append({"simpleMediaItem": {"uploadToken": token, "fileName": name}})
            if len(ready) >= BATCH:
                batch = ready[:BATCH]
                del ready[:BATCH]
                await create(batch)

        await asyncio.gather(*(move(row["id"]) for row in rows))
        if ready:
            await create(ready)
    return created


async def _access_token(http: httpx.AsyncClient, stored: dict[str, Any]) -> str:
    """A fresh Google access token from the sandbox token file's refresh token."""
    answer = await http.post(
        stored["token_uri"],
        data={
            "grant_type": "refresh_token",
            "refresh_token": stored["refresh_token"],
            "client_id": stored["client_id"],
            "client_secret": stored["client_secret"],
        },
    )
    return str(answer.raise_for_status().json()["access_token"])


async def _upload(
    http: httpx.AsyncClient,
    cdn: httpx.Response,
    *,
    google: str,
    bearer: dict[str, str],
    size: int,
    name: str,
) -> str:
    """Stream the CDN body into one upload request; return the upload token."""
    headers = {
        **bearer,
        "Content-Length": str(size),
        "X-Goog-Upload-Content-Type": cdn.headers.get("Content-Type", "application/octet-stream"),
        "X-Goog-Upload-File-Name": name,
    }
    if size <= DEFAULT_RAW_UPLOAD_MAX_BYTES:
        target = f"{google}/v1/uploads"
        headers["X-Goog-Upload-Protocol"] = "raw"
    else:
        started = await http.post(
            f"{google}/v1/uploads",
            headers={
                **bearer,
                "X-Goog-Upload-Protocol": "resumable",
                "X-Goog-Upload-Command": "start",
                "X-Goog-Upload-Raw-Size": str(size),
                "X-Goog-Upload-File-Name": name,
            },
        )
        target = started.raise_for_status().headers["X-Goog-Upload-URL"]
        headers.update({"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "0"})
        del headers["Authorization"]  # the session URL is the secret
    answer = await http.post(target, content=cdn.aiter_raw(), headers=headers)
    return answer.raise_for_status().text


def _check(env: dict[str, str], library: SandboxLibrary, runs: int) -> None:
    """Every deliverable is in the sandbox's Google library ``runs`` times, byte for byte."""
    stored = httpx.get(f"{env['Q2GOOGLE_PHOTOS_API_URL']}/_sandbox/library", timeout=60).json()
    got = Counter(item["sha256"] for item in stored["mediaItems"])
    expected = Counter(
        asset.sha256() for _, _, asset in library.deliverables() for _ in range(runs)
    )
    if got != expected:
        raise SystemExit(f"wrong items in Google: {sum(got.values())}, {sum(expected.values())}")


def run_case(case: Case, concurrency: int, repeat: int = 1) -> list[str]:
    """Run q2google, then the reference twice, ``repeat`` times on one sandbox; return the
    table's rows (one per round, then their medians when there are several)."""
    library = SandboxLibrary.from_spec(case.library)
    sizes = [asset.size for _, _, asset in library.deliverables()]
    total = sum(sizes)
    ideal = max(total / (concurrency * case.cap), max(sizes) / case.cap) if case.cap else None
    faults = f"bandwidth={case.cap}" if case.cap else ""
    rounds: list[list[float]] = []
    with (
        serve_process(case.library, faults) as served,
        tempfile.TemporaryDirectory(prefix="q2google-speed-") as state_dirs,
    ):
        token = json.loads(Path(served.env["Q2GOOGLE_GOOGLE_TOKEN_FILE"]).read_text())
        for number in range(repeat):  # each round's state is kept until the case ends
            walls = [_timed(sync_library(served.env, Path(state_dirs, str(number)), concurrency))]
            for largest_first in (False, True):
                run = reference(served.env, concurrency, token, largest_first=largest_first)
                walls.append(_timed(run, expected=len(sizes)))
            rounds.append(walls)
        _check(served.env, library, runs=3 * repeat)

    def row(label: str, walls: list[float]) -> str:
        shown = [f"{wall:7.1f} {f'({wall / ideal:.2f}x)' if ideal else '':>8}" for wall in walls]
        cap = f"{case.cap / 1024**2:.0f}MiB/s" if case.cap else "none"
        return (
            f"{label:<9} {len(sizes):>6} {total / 1024**2:>7.0f} {concurrency:>3} {cap:>8} "
            f"{f'{ideal:.1f}' if ideal else '-':>7} | "
            + " | ".join(shown)
            + f" | {walls[0] / min(walls[1:]):>7.2f}"
        )

    rows = [
        row(f"{case.name}{f' #{n + 1}' if repeat > 1 else ''}", w) for n, w in enumerate(rounds)
    ]
    if repeat > 1:
        medians = [statistics.median(column) for column in zip(*rounds, strict=True)]
        rows.append(row(f"{case.name} med", medians))
    return rows


def _timed(run: Coroutine[Any, Any, Any], expected: int | None = None) -> float:
    """Seconds ``run`` took; when ``expected`` is given, it must return that many items."""
    started = time.perf_counter()
    created = asyncio.run(run)
    wall = time.perf_counter() - started
    if expected is not None and created != expected:
        raise SystemExit(f"the reference created {created} of {expected} items")
    return wall


def main() -> None:
    """Parse the arguments, run the cases, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="mixed,small")
    parser.add_argument("--cap", default="5MiB", help="per-connection cap of the mixed case")
    parser.add_argument("--concurrency", type=int, default=4, help="files in flight (both)")
    parser.add_argument("--files", type=int, default=5000, help="photos of the small case")
    parser.add_argument("--small-cap", default="none", help="cap of the small case, or none")
    parser.add_argument("--repeat", type=int, default=1, help="rounds per case (medians shown)")
    args = parser.parse_args()
    small_cap = None if args.small_cap == "none" else parse_size(args.small_cap)
    cases = {
        "mixed": Case(
            "mixed",
            "videos=1,video_size=100MiB,photos=200,photo_size=1MiB,seed=5",
            parse_size(args.cap),
        ),
        "small": Case("small", f"photos={args.files},photo_size=64KiB,seed=6", small_cap),
    }
    print(
        f"{'case':<9} {'files':>6} {'MiB':>7} {'N':>3} {'cap':>8} {'ideal s':>7} | "
        f"{'q2google s':<16} | {'reference s':<16} | {'ref largest 1st':<16} | q2g/ref",
        flush=True,
    )
    for name in args.cases.split(","):
        for row in run_case(cases[name.strip()], args.concurrency, args.repeat):
            print(row, flush=True)


if __name__ == "__main__":
    main()

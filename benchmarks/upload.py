"""Streaming upload of one large file into the sandbox: throughput and the client's memory.

Usage::

    uv run python benchmarks/upload.py [--size 1GiB] [--chunk 64MiB] [--faults ""]

Starts ``q2google sandbox serve`` in its own process, then streams an asset from the sandbox
CDN (httpx, ``Range`` from any offset) straight into a resumable upload, and prints MB/s, the
number of upload requests, and this process's peak RSS (VmHWM): flat whatever size and chunk.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from q2google.config import Q2GoogleSettings
from q2google.photos import GooglePhotosClient, NewItemSpec
from q2google.sandbox.library import parse_size


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def run(env: dict[str, str], chunk: int) -> None:
    """Stream the sandbox's single video into Google Photos (the sandbox) and report."""
    base, token = env["Q2GOOGLE_GOPRO_API_URL"], env["GP_ACCESS_TOKEN"]
    async with httpx.AsyncClient(timeout=120) as http:
        meta = (
            await http.get(
                f"{base}/media/bigvideo/download", headers={"Cookie": f"gp_access_token={token}"}
            )
        ).json()
        variation = meta["_embedded"]["variations"][0]
        url = variation["url"]
        size = int((await http.head(url)).headers["content-length"])

        async def source(offset: int) -> AsyncIterator[bytes]:
            headers = {"Range": f"bytes={offset}-"}
            async with http.stream("GET", url, headers=headers) as response:
                response.raise_for_status()
                async for piece in response.aiter_bytes():
                    yield piece

        settings = Q2GoogleSettings(
            photos_api_url=env["Q2GOOGLE_PHOTOS_API_URL"],
            google_token_file=Path(env["Q2GOOGLE_GOOGLE_TOKEN_FILE"]),
            upload_chunk_size_bytes=chunk,
        )
        before = _peak_rss_mib()
        started = time.perf_counter()
        async with GooglePhotosClient.from_settings(settings) as client:
            upload_token = await client.upload(
                source, size=size, file_name="GX019999.MP4", mime_type="video/mp4"
            )
            (result,) = await client.create_media_items([NewItemSpec(upload_token, "GX019999.MP4")])
        elapsed = time.perf_counter() - started
        stats = (await http.get(f"{base}/_sandbox/stats")).json()
    print(
        f"uploaded {size / 1024**3:.2f} GiB in {elapsed:.1f} s: {size / elapsed / 1e6:.0f} MB/s,"
        f" created={result.ok}, upload requests={stats['upload_requests']}, "
        f"bytes received={stats['upload_bytes_received'] / size:.3f} x the file"
    )
    print(
        f"client peak RSS: {before:.0f} MiB before, {_peak_rss_mib():.0f} MiB after "
        f"(chunk {chunk / 1024**2:.0f} MiB)"
    )


def main() -> None:
    """Start the sandbox, run the upload, stop the sandbox."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1GiB")
    parser.add_argument("--chunk", default="64MiB")
    parser.add_argument("--faults", default="")
    args = parser.parse_args()
    executable = shutil.which("q2google") or "q2google"
    server = subprocess.Popen(
        [
            executable,
            "sandbox",
            "serve",
            "--library",
            f"video:{args.size}",
            "--faults",
            args.faults,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        env: dict[str, str] = {}
        for line in server.stdout:
            if line.startswith("export "):
                name, _, value = line.removeprefix("export ").partition("=")
                env[name] = shlex.split(value)[0]
            if line.startswith("# q2google sandbox on"):
                break
        asyncio.run(run(env, parse_size(args.chunk)))
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()

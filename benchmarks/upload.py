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
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from q2google.config import Q2GoogleSettings
from q2google.photos import GooglePhotosClient, NewItemSpec
from q2google.sandbox.library import parse_size
from q2google.sandbox.process import serve_process
from q2google.testing.memory import peak_rss_mib


async def run(env: dict[str, str], chunk: int) -> None:
    """Stream the sandbox's single video into Google Photos (the sandbox) and report."""
    base, token = env["Q2GOOGLE_GOPRO_API_URL"], env["GP_ACCESS_TOKEN"]
    async with httpx.AsyncClient(timeout=120) as http:
        meta = (
            await http.get(
                f"{base}/media/bigvideo/download", headers={"Cookie": f"gp_access_token={token}"}
            )
        ).json()
        variation = next(v for v in meta["_embedded"]["variations"] if v["label"] == "source")
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
        before = peak_rss_mib()
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
        f"client peak RSS: {before:.0f} MiB before, {peak_rss_mib():.0f} MiB after "
        f"(chunk {chunk / 1024**2:.0f} MiB)"
    )


def main() -> None:
    """Start the sandbox, run the upload, stop the sandbox."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1GiB")
    parser.add_argument("--chunk", default="64MiB")
    parser.add_argument("--faults", default="")
    args = parser.parse_args()
    with serve_process(f"video:{args.size}", args.faults) as served:
        asyncio.run(run(served.env, parse_size(args.chunk)))


if __name__ == "__main__":
    main()

"""The sandbox CDN serving one large asset: throughput and the server's peak memory.

Usage::

    uv run python benchmarks/sandbox_cdn.py [--size 4GiB] [--bandwidth 0]

Starts ``q2google sandbox serve --library video:SIZE`` in its own process, streams the whole
asset through it with httpx (hashing it), and prints MB/s and the server's peak RSS (VmHWM),
which stays flat whatever the size: the bytes are generated per block, never stored.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import httpx

from q2google.sandbox.process import serve_process


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="4GiB")
    parser.add_argument("--bandwidth", default="", help="per-connection cap, e.g. 200MiB")
    args = parser.parse_args()
    faults = f"bandwidth={args.bandwidth}" if args.bandwidth else ""
    with serve_process(f"video:{args.size}", faults) as served:
        base, token = served.env["Q2GOOGLE_GOPRO_API_URL"], served.env["GP_ACCESS_TOKEN"]
        with httpx.Client(base_url=base, timeout=60) as http:
            body = http.get(
                "/media/bigvideo/download", headers={"Cookie": f"gp_access_token={token}"}
            ).json()
            variations = body["_embedded"]["variations"]
            url = next(v["url"] for v in variations if v["label"] == "source")
            idle = _peak_rss_mib(served.pid)
            digest, size, started = hashlib.sha256(), 0, time.perf_counter()
            with http.stream("GET", url) as response:
                for piece in response.iter_bytes(1024 * 1024):
                    digest.update(piece)
                    size += len(piece)
            elapsed = time.perf_counter() - started
        print(
            f"streamed {size / 1024**3:.2f} GiB in {elapsed:.1f} s: "
            f"{size / elapsed / 1e6:.0f} MB/s (client hashing included)"
        )
        print(f"sandbox peak RSS: {idle:.0f} MiB before, {_peak_rss_mib(served.pid):.0f} MiB after")


if __name__ == "__main__":
    main()

"""Google requests per delivered file: small files go by one raw upload request each."""

from __future__ import annotations

from pathlib import Path

import pytest

from q2google.config import DEFAULT_RAW_UPLOAD_MAX_BYTES
from q2google.sandbox import Sandbox, SandboxLibrary
from q2google.sandbox.library import KIB, MIB
from tests.test_sync import assert_exactly_once, run_sync

PHOTO_HEAVY = SandboxLibrary.generated(
    photos=60, videos=2, photo_size=300 * KIB, video_size=8 * MIB, seed=16
)


def google_requests(sandbox: Sandbox) -> int:
    """Every request that counts against Google's daily quota: uploads and Library calls."""
    return sandbox.stats.upload_requests + sum(sandbox.stats.google_calls.values())


@pytest.mark.sandbox(library=PHOTO_HEAVY)
async def test_a_photo_heavy_library_costs_at_most_1_1_requests_per_file(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    assert 8 * MIB <= DEFAULT_RAW_UPLOAD_MAX_BYTES, "every file here is under the default"
    await run_sync(sandbox, tmp_path)
    assert_exactly_once(sandbox)
    delivered = len(PHOTO_HEAVY.deliverables())
    per_file = google_requests(sandbox) / delivered
    assert sandbox.stats.upload_requests == delivered, "one raw request per file"
    assert sandbox.stats.upload_bytes_received == PHOTO_HEAVY.total_bytes
    assert per_file <= 1.1, f"{per_file:.3f} Google requests per file"


@pytest.mark.sandbox(library=PHOTO_HEAVY)
async def test_files_over_the_threshold_go_resumable(sandbox: Sandbox, tmp_path: Path) -> None:
    await run_sync(sandbox, tmp_path, raw_upload_max_bytes=1 * MIB)
    assert_exactly_once(sandbox)
    sizes = [asset.size for _, _, asset in PHOTO_HEAVY.deliverables()]
    # run_sync's chunk is 1 MiB: a video is a start, then one request per MiB
    expected = sum(1 if size <= MIB else 1 + -(-size // MIB) for size in sizes)
    assert sandbox.stats.upload_requests == expected
    assert sum(size > MIB for size in sizes) == 2

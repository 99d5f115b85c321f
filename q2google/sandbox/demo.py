"""``q2google demo``: a real sync, end to end, against the local emulators. No accounts."""

from __future__ import annotations

import asyncio
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import typer

from q2google.config import get_settings
from q2google.progress import choose_mode
from q2google.run import run_session
from q2google.sandbox.assets import SOURCE
from q2google.sandbox.library import SandboxLibrary
from q2google.sandbox.server import Sandbox


def run_demo() -> bool:
    """Sync the sample library into the emulated Google Photos and check it; True if exact."""
    library = SandboxLibrary.demo()
    kinds = Counter(media.type for media in library.media)
    typer.echo(
        f"q2google demo: a GoPro library of {len(library.media)} media ("
        + ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
        + f"), {len(library.deliverables())} files, "
        f"{library.total_bytes / 1024**2:.1f} MiB"
    )
    sandbox = Sandbox(library)
    with (
        tempfile.TemporaryDirectory(prefix="q2google-demo-") as scratch,
        sandbox.running_in_thread(),
    ):
        settings = get_settings(
            gopro_api_url=sandbox.url,
            photos_api_url=sandbox.url,
            state_uri=None,
            state_dir=Path(scratch) / "sessions",
            google_token_file=sandbox.write_token_file(Path(scratch) / "google-token.json"),
        )
        summary = asyncio.run(
            run_session(
                settings,
                session_id="demo",
                start=datetime(2023, 1, 1, tzinfo=UTC),
                end=datetime(2025, 1, 1, tzinfo=UTC),
                album="GoPro demo",
                gopro_token=sandbox.gopro_token,
                progress=choose_mode(),
            )
        )
        stored = Counter(item["sha256"] for item in sandbox.snapshot()["mediaItems"])
        by_label = sandbox.call(lambda: dict(sandbox.stats.cdn_bytes_by_label))
    expected = Counter(asset.sha256() for _, _, asset in library.deliverables())
    not_originals = {label: sent for label, sent in by_label.items() if label != SOURCE and sent}
    exact = stored == expected and summary.ok and not not_originals
    typer.echo(
        f"synced {summary.by_status.get('completed', 0)} of {summary.to_deliver} files "
        f"({summary.files - summary.to_deliver} held back on purpose), "
        f"{summary.bytes_uploaded / 1024**2:.1f} MiB streamed in {summary.seconds:.1f} s"
    )
    typer.echo(
        "check: every file is in Google Photos exactly once, byte for byte"
        if exact
        else f"check FAILED: {sum((expected - stored).values())} missing, "
        f"{sum((stored - expected).values())} extra"
    )
    typer.echo(
        "check: no proxy, cover or other non-original bytes were downloaded from GoPro"
        if not not_originals
        else "check FAILED: downloaded what is not an original: "
        + ", ".join(f"{label} {sent} bytes" for label, sent in sorted(not_originals.items()))
    )
    return exact

"""What the ``q2google`` commands share: settings, session ids, running, reporting a run."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from q2google.errors import EXIT_INTERRUPTED

if TYPE_CHECKING:
    from q2google.config import Q2GoogleSettings
    from q2google.progress import ProgressMode
    from q2google.run import RunSummary
    from q2google.state import SyncStateBackend

T = TypeVar("T")


def load_settings(**overrides: object) -> Q2GoogleSettings:
    """Settings, saying once on stderr when the JSON state is at the old default place."""
    from q2google.config import get_settings, legacy_state_notice

    settings = get_settings(**overrides)
    notice = legacy_state_notice(settings)
    if notice and notice not in _shown:
        _shown.add(notice)
        typer.echo(f"q2google: {notice}", err=True)
    return settings


_shown: set[str] = set()
"""Notices already printed by this process."""


def command_backend(context: typer.Context, settings: Q2GoogleSettings) -> SyncStateBackend:
    """The state backend ``settings`` select, closed when the command of ``context`` ends."""
    from q2google.state import opened_backend

    return context.with_resource(opened_backend(settings))


def checked_session_id(session: str) -> str:
    """The session id, refused (one line, exit 2) unless it is a safe name and not reserved."""
    from q2google.state import validate_session_id
    from q2google.state.ledger import refuse_reserved

    return refuse_reserved(validate_session_id(session))


def run_interruptibly(work: Coroutine[Any, Any, T], session: str) -> T:
    """Run ``work``; on Ctrl-C say that progress is saved and how to resume (exit 130)."""
    import asyncio

    try:
        return asyncio.run(work)
    except KeyboardInterrupt:
        typer.echo(
            f"q2google: interrupted; progress is saved. Resume with: "
            f"q2google sync --session {session}",
            err=True,
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None


def report_run(summary: RunSummary, as_json: bool) -> None:
    """Print a run's summary (text or one JSON object) and exit 0, or 1 when files failed."""
    import dataclasses
    import json

    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(summary)))
    else:
        from q2google.progress import human_bytes

        counts = summary.by_status
        others = {name: count for name, count in counts.items() if name != "completed"}
        typer.echo(
            f"session {summary.session_id}: {counts.get('completed', 0)} of {summary.to_deliver} "
            f"files in Google Photos"
            + (", " + count_words(others) if any(others.values()) else "")
            + f"; {human_bytes(summary.bytes_uploaded)} sent in {summary.seconds:.1f} s"
        )
        if summary.listings > 1:
            typer.echo(
                f"{summary.new_since_last_run} new since last run "
                f"(window {summary.window.get('start')} to {summary.window.get('end')})"
            )
        if summary.stopped_early:
            typer.echo("stopped at the first failure (--fail-fast)")
        for failure in summary.failures:
            typer.echo(f"  failed: {failure['file']} ({failure['item']}): {failure['error']}")
        if summary.failures:
            typer.echo(f"retry them with: q2google sessions retry {summary.session_id}")
        for line in held_back_reasons(summary.held_back):
            typer.echo(line)
        if counts.get("pending") and not counts.get("failed"):
            typer.echo(f"run the same command again to finish the {counts['pending']} to do")
        if counts.get("deferred"):
            typer.echo(f"run the same command later to deliver the {counts['deferred']} deferred")
    raise typer.Exit(run_exit_code(summary))


def run_exit_code(summary: RunSummary) -> int:
    """0 when every file is where it belongs; 1 when some failed for good; 75 when nothing
    failed but some are still to do (an answer Google lost, settled by the next run)."""
    from q2google.errors import EXIT_FILES_FAILED, EXIT_OK, EXIT_TRY_LATER

    if summary.ok:
        return EXIT_OK
    return EXIT_FILES_FAILED if summary.by_status.get("failed") else EXIT_TRY_LATER


def count_words(counts: dict[str, int]) -> str:
    """``"12 completed, 1 failed, 3 skipped"``: the non-zero counts (completed always)."""
    shown = [f"{count} {name}" for name, count in counts.items() if count or name == "completed"]
    return ", ".join(shown)


def held_back_reasons(held_back: list[dict[str, str]]) -> list[str]:
    """One line per outcome and reason, with how many files it holds back."""
    from collections import Counter

    groups = Counter((held["outcome"], held["reason"]) for held in held_back)
    return [f"  {outcome}: {count} x {reason}" for (outcome, reason), count in groups.items()]


def progress_mode(as_json: bool) -> ProgressMode:
    from q2google.progress import ProgressMode, choose_mode

    return ProgressMode.PLAIN if as_json else choose_mode()


AsJson = Annotated[
    bool, typer.Option("--json", help="Print one JSON summary on stdout, nothing else.")
]
Concurrency = Annotated[
    int | None, typer.Option(min=1, max=64, help="Files in flight (default 4).")
]

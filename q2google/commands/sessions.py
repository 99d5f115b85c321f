"""``q2google sessions list | show | retry | delete``: look after stored sessions."""

from __future__ import annotations

from contextlib import nullcontext
from typing import TYPE_CHECKING, Annotated, Any

import typer

from q2google.commands.common import (
    AsJson,
    Concurrency,
    checked_session_id,
    command_backend,
    load_settings,
    progress_mode,
    report_run,
    run_interruptibly,
)
from q2google.errors import Q2GoogleError

if TYPE_CHECKING:
    from q2google.sessions import SessionSummary

sessions_app = typer.Typer(
    help="List, inspect, retry and delete the sessions in the state backend.",
    no_args_is_help=True,
)


@sessions_app.command("list")
def sessions_list(context: typer.Context, as_json: AsJson = False) -> None:
    """List stored sessions with their status, file counts and size."""
    import json

    from q2google.sessions import catalogue, list_sessions, to_deliver
    from q2google.units import human_bytes

    backend, ids = catalogue(command_backend(context, load_settings()))
    summaries = list_sessions(backend, ids)
    if as_json:
        typer.echo(json.dumps([summary.to_dict() for summary in summaries]))
        _report_corrupt(summaries)
        return
    if not summaries:
        typer.echo(f"no sessions in {backend!r}")
        return
    header = ("SESSION", "STATUS", "WINDOW", "DONE/FILES", "NEW", "FAILED", "SKIPPED", "GONE")
    rows: list[tuple[str, ...]] = [(*header, "SIZE", "UPDATED")]
    for summary in summaries:
        if summary.error is not None:
            rows.append((summary.session_id, summary.status, *["-"] * (len(rows[0]) - 2)))
            continue
        counts = summary.by_status
        rows.append(
            (
                summary.session_id,
                summary.status,
                f"{summary.window['start']}..{summary.window['end']}",
                f"{counts['completed']}/{to_deliver(summary.files, counts)}",
                str(summary.new_since_last_run),
                str(counts["failed"]),
                str(counts["skipped"]),
                str(counts["gone"]),
                human_bytes(summary.bytes_total),
                summary.updated_at[:16].replace("T", " "),
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    _report_corrupt(summaries)


def _report_corrupt(summaries: list[SessionSummary]) -> None:
    """One line on stderr for each session that cannot be read: what is wrong, and the fix."""
    for summary in summaries:
        if summary.error is not None:
            typer.echo(
                f"q2google: session {summary.session_id} is corrupt: {summary.error}; "
                f"remove it with: q2google sessions delete {summary.session_id}",
                err=True,
            )


@sessions_app.command("show")
def sessions_show(
    context: typer.Context,
    session: Annotated[str, typer.Argument(help="Session id.")],
    as_json: AsJson = False,
) -> None:
    """Show a session: its window, counts per status and stage, and each failed file's error."""
    import json

    from q2google.sessions import load_existing, summarize
    from q2google.stages.quota_watch import quota_report
    from q2google.units import human_bytes

    settings = load_settings()
    backend = command_backend(context, settings)
    state = load_existing(backend, checked_session_id(session))
    summary = summarize(state)
    quota = quota_report(settings, backend, state)
    if as_json:
        typer.echo(json.dumps(summary.to_dict() | {"google_requests": quota}))
        return
    counts = summary.by_status
    lines = [
        f"session {summary.session_id}: {summary.status}",
        _row("window", f"{summary.window['start']} to {summary.window['end']} (end exclusive)"),
        _row("album", summary.album or "-"),
        _row(
            "files", f"{summary.files}: " + ", ".join(f"{n} {name}" for name, n in counts.items())
        ),
        _row("new", f"{summary.new_since_last_run} since the last run"),
        _row(
            "size",
            f"{human_bytes(summary.bytes_completed)} in Google Photos of "
            f"{human_bytes(summary.bytes_total)} known",
        ),
    ]
    for stage, by_status in summary.by_stage.items():
        detail = ", ".join(f"{count} {status}" for status, count in sorted(by_status.items()))
        lines.append(_row(stage, detail or "-"))
    lines.append(_row("google", _quota_line(quota)))
    lines.append(_row("updated", summary.updated_at))
    if summary.failures:
        lines.append(f"failed files ({len(summary.failures)}):")
        lines += [f"  {f['file']} ({f['item']}): {f['error']}" for f in summary.failures]
        lines.append(f"retry them with: q2google sessions retry {summary.session_id}")
    for held in summary.held_back:
        lines.append(f"  {held['outcome']}: {held['file']} ({held['item']}): {held['reason']}")
    typer.echo("\n".join(lines))


def _quota_line(quota: dict[str, Any]) -> str:
    """Google's daily quota in one line: used today, the limit, the reset, what is needed."""
    from datetime import datetime

    from q2google.gphotos.quota import in_words

    resets = datetime.fromisoformat(quota["resets_at"])
    used = "?" if quota["used_today"] is None else f"{quota['used_today']:,}"
    limit = f" of {quota['limit']:,}" if quota["limit"] else ""
    left = in_words((resets - datetime.now(resets.tzinfo)).total_seconds())
    return (
        f"{used}{limit} requests today (resets at {resets.astimezone():%H:%M} your time, in "
        f"{left}); about {quota['needed']:,} needed to finish this session"
    )


def _row(label: str, value: str) -> str:
    """One labelled line of ``sessions show``: the values in one column."""
    return f"  {label:<10} {value}"


@sessions_app.command("retry")
def sessions_retry(
    session: Annotated[str, typer.Argument(help="Session id.")],
    concurrency: Concurrency = None,
    as_json: AsJson = False,
) -> None:
    """Put a session's failed files back to pending and run the session again."""
    from q2google.run import run_session

    overrides: dict[str, object] = {"transfer_concurrency": concurrency} if concurrency else {}
    settings = load_settings(**overrides)
    checked_session_id(session)
    summary = run_interruptibly(
        run_session(
            settings,
            session_id=session,
            start=None,
            end=None,
            retry_failed=True,
            progress=progress_mode(as_json),
        ),
        session,
    )
    if not as_json and summary.retried:
        typer.echo(f"retried {summary.retried} failed files")
    report_run(summary, as_json)


@sessions_app.command("delete")
def sessions_delete(
    context: typer.Context,
    session: Annotated[str, typer.Argument(help="Session id.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a session's state (its files stay in Google Photos and are not sent again)."""
    from q2google.errors import StateCorruptError
    from q2google.sessions import catalogue, delete_session, summarize
    from q2google.state.lease import SessionLeasing

    backend, ids = catalogue(command_backend(context, load_settings()))
    try:
        state = backend.load(checked_session_id(session))
        summary = summarize(state) if state is not None else None
        what = f"{summary.files} files, {summary.status}" if summary else ""
    except StateCorruptError:  # deleting is how a corrupt session is cleaned up
        state, what = None, "corrupt"
    if state is None and session not in ids:
        raise Q2GoogleError(f"no session {session!r} in {backend!r}: `q2google sessions list`")
    if not yes and not typer.confirm(f"delete session {session} ({what})?", default=False):
        typer.echo("not deleted", err=True)
        raise typer.Exit(1)
    owned = backend.lease(session) if isinstance(backend, SessionLeasing) else nullcontext()
    with owned:  # a run of it going on: busy (exit 75), nothing deleted
        delete_session(backend, session, state)
    typer.echo(f"deleted session {session}")

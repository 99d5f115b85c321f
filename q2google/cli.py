"""The ``q2google`` command line, built on Typer.

Commands register on :data:`app`. :func:`main` is the console script: it turns every
:class:`~q2google.errors.Q2GoogleError` into one line on stderr and its exit code, with the
traceback only under ``--debug``. Heavy modules are imported inside commands, not here, so
``q2google --help`` answers quickly.
"""

from __future__ import annotations

import io
import logging
import os
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from q2google import __version__
from q2google.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, Q2GoogleError

if TYPE_CHECKING:
    from q2google.config import Q2GoogleSettings
    from q2google.progress import ProgressMode
    from q2google.run import RunSummary
    from q2google.window import WindowRequest

T = TypeVar("T")

app = typer.Typer(
    name="q2google",
    help="Move your GoPro cloud library into Google Photos: streaming, resumable, exactly once.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"q2google {__version__}")
        raise typer.Exit


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_show_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option("--debug", help="Log debug detail and show tracebacks of errors."),
    ] = False,
) -> None:
    """Move your GoPro cloud library into Google Photos: streaming, resumable, exactly once."""
    if debug:
        os.environ["Q2GOOGLE_DEBUG"] = "1"
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


sandbox_app = typer.Typer(
    help="Local emulators of the GoPro cloud and Google Photos, to try q2google without accounts.",
    no_args_is_help=True,
)
app.add_typer(sandbox_app, name="sandbox")


@sandbox_app.command("serve")
def sandbox_serve(
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port on 127.0.0.1; 0 picks a free one.")
    ] = 0,
    faults: Annotated[
        str,
        typer.Option(
            help="Faults, e.g. '5xx=0.1,429=0.05,reset=0.05,token-ttl=3,bandwidth=10MiB'."
        ),
    ] = "",
    library: Annotated[
        str,
        typer.Option(help="'demo', 'video:4GiB', 'photos=100,videos=3,bursts=2', or a JSON file."),
    ] = "demo",
    env_file: Annotated[
        Path | None, typer.Option(help="Also write the export lines to this file.")
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(help="Where to write the Google token file (default: a temporary one)."),
    ] = None,
) -> None:
    """Serve the emulators until Ctrl-C, printing 'export' lines that point q2google at them."""
    from q2google.sandbox.cli import serve

    serve(port=port, faults=faults, library=library, env_file=env_file, token_file=token_file)


def _settings(**overrides: object) -> Q2GoogleSettings:
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


def _session_id(session: str) -> str:
    from q2google.state import validate_session_id
    from q2google.state.ledger import refuse_reserved

    return refuse_reserved(validate_session_id(session))


def _run_interruptibly(work: Coroutine[Any, Any, T], session: str) -> T:
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


def _report_run(summary: RunSummary, as_json: bool) -> None:
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
            + (", " + _counts(others) if any(others.values()) else "")
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
        for line in _held_back_reasons(summary.held_back):
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


def _counts(counts: dict[str, int]) -> str:
    """``"12 completed, 1 failed, 3 skipped"``: the non-zero counts (completed always)."""
    shown = [f"{count} {name}" for name, count in counts.items() if count or name == "completed"]
    return ", ".join(shown)


def _held_back_reasons(held_back: list[dict[str, str]]) -> list[str]:
    """One line per outcome and reason, with how many files it holds back."""
    from collections import Counter

    groups = Counter((held["outcome"], held["reason"]) for held in held_back)
    return [f"  {outcome}: {count} x {reason}" for (outcome, reason), count in groups.items()]


def _progress_mode(as_json: bool) -> ProgressMode:
    from q2google.progress import ProgressMode, choose_mode

    return ProgressMode.PLAIN if as_json else choose_mode()


AsJson = Annotated[
    bool, typer.Option("--json", help="Print one JSON summary on stdout, nothing else.")
]
Concurrency = Annotated[
    int | None, typer.Option(min=1, max=64, help="Files in flight (default 4).")
]


@app.command()
def sync(
    *,
    session: Annotated[str, typer.Option("--session", help="Session id; run again to resume.")],
    start: Annotated[
        str | None,
        typer.Option(
            help="Window start, inclusive: YYYY-MM-DD (midnight in --tz) or an ISO 8601 time "
            "(new sessions).",
        ),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(help="Window end, exclusive, the same forms; leave it out: up to now."),
    ] = None,
    tz: Annotated[
        str | None,
        typer.Option(
            "--tz", help="IANA time zone of dates and times without offset (default: local)."
        ),
    ] = None,
    album: Annotated[str | None, typer.Option(help="Google Photos album to add to.")] = None,
    widen: Annotated[
        bool,
        typer.Option("--widen", help="Widen a stored session's window to --start/--end."),
    ] = False,
    concurrency: Concurrency = None,
    fail_fast: Annotated[
        bool, typer.Option("--fail-fast", help="Stop at the first permanent failure.")
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Discover only: print what would move, upload nothing."),
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Copy media captured in a window from the GoPro cloud into Google Photos, or resume."""
    from q2google.run import run_session
    from q2google.window import WindowRequest, parse_moment, time_zone

    _session_id(session)
    zone = time_zone(tz)
    request = WindowRequest(
        start=parse_moment(start, "--start", zone) if start else None,
        end=parse_moment(end, "--end", zone) if end else None,
        album=album,
        written_start=start,
        written_end=end,
    )
    overrides: dict[str, object] = {"fail_fast": True} if fail_fast else {}
    if concurrency:
        overrides["transfer_concurrency"] = concurrency
    settings = _settings(**overrides)
    if dry_run:
        _dry_run(settings, session, request, widen, as_json)
    summary = _run_interruptibly(
        run_session(
            settings,
            session_id=session,
            start=request.start,
            end=request.end,
            album=album,
            progress=_progress_mode(as_json),
            widen=widen,
            request=request,
        ),
        session,
    )
    _report_run(summary, as_json)


def _dry_run(
    settings: Q2GoogleSettings,
    session: str,
    request: WindowRequest,
    widen: bool,
    as_json: bool,
) -> None:
    import asyncio
    import dataclasses
    import json

    from q2google.progress import human_bytes
    from q2google.run import dry_run

    report = asyncio.run(
        dry_run(
            settings,
            session_id=session,
            start=request.start,
            end=request.end,
            widen=widen,
            request=request,
        )
    )
    if as_json:
        typer.echo(json.dumps({"dry_run": True, **dataclasses.asdict(report)}))
        raise typer.Exit(0)
    typer.echo(
        f"session {session} (dry run, nothing uploaded): {report.files} files would move, "
        f"{human_bytes(report.bytes)}"
    )
    for kind, counts in sorted(report.by_type.items()):
        typer.echo(f"  {kind:<10} {counts['files']:>6} files  {human_bytes(counts['bytes']):>10}")
    if report.already_delivered:
        typer.echo(f"  already in Google Photos: {report.already_delivered} files")
    for line in _held_back_reasons(report.held_back):
        typer.echo(line)
    for failure in report.failures:
        typer.echo(f"  cannot move: {failure['file']} ({failure['item']}): {failure['error']}")
    raise typer.Exit(0)


sessions_app = typer.Typer(
    help="List, inspect, retry and delete the sessions in the state backend.",
    no_args_is_help=True,
)
app.add_typer(sessions_app, name="sessions")


@sessions_app.command("list")
def sessions_list(as_json: AsJson = False) -> None:
    """List stored sessions with their status, file counts and size."""
    import json

    from q2google.progress import human_bytes
    from q2google.sessions import catalogue, list_sessions, to_deliver
    from q2google.state import build_backend

    backend, ids = catalogue(build_backend(_settings()))
    summaries = list_sessions(backend, ids)
    if as_json:
        typer.echo(json.dumps([summary.to_dict() for summary in summaries]))
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
    for summary in summaries:
        if summary.error is not None:
            typer.echo(f"{summary.session_id}: {summary.error}", err=True)


@sessions_app.command("show")
def sessions_show(
    session: Annotated[str, typer.Argument(help="Session id.")], as_json: AsJson = False
) -> None:
    """Show a session: its window, counts per status and stage, and each failed file's error."""
    import json

    from q2google.progress import human_bytes
    from q2google.sessions import load_existing, summarize
    from q2google.state import build_backend

    summary = summarize(load_existing(build_backend(_settings()), _session_id(session)))
    if as_json:
        typer.echo(json.dumps(summary.to_dict()))
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
    lines.append(_row("updated", summary.updated_at))
    if summary.failures:
        lines.append(f"failed files ({len(summary.failures)}):")
        lines += [f"  {f['file']} ({f['item']}): {f['error']}" for f in summary.failures]
        lines.append(f"retry them with: q2google sessions retry {summary.session_id}")
    for held in summary.held_back:
        lines.append(f"  {held['outcome']}: {held['file']} ({held['item']}): {held['reason']}")
    typer.echo("\n".join(lines))


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
    settings = _settings(**overrides)
    _session_id(session)
    summary = _run_interruptibly(
        run_session(
            settings,
            session_id=session,
            start=None,
            end=None,
            retry_failed=True,
            progress=_progress_mode(as_json),
        ),
        session,
    )
    if not as_json and summary.retried:
        typer.echo(f"retried {summary.retried} failed files")
    _report_run(summary, as_json)


@sessions_app.command("delete")
def sessions_delete(
    session: Annotated[str, typer.Argument(help="Session id.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a session's state (its files stay in Google Photos and are not sent again)."""
    from q2google.errors import StateCorruptError
    from q2google.sessions import catalogue, delete_session, summarize
    from q2google.state import build_backend

    backend, ids = catalogue(build_backend(_settings()))
    try:
        state = backend.load(_session_id(session))
        summary = summarize(state) if state is not None else None
        what = f"{summary.files} files, {summary.status}" if summary else ""
    except StateCorruptError:  # deleting is how a corrupt session is cleaned up
        state, what = None, "corrupt"
    if state is None and session not in ids:
        raise Q2GoogleError(f"no session {session!r} in {backend!r}: `q2google sessions list`")
    if not yes and not typer.confirm(f"delete session {session} ({what})?", default=False):
        typer.echo("not deleted", err=True)
        raise typer.Exit(1)
    delete_session(backend, session, state)
    typer.echo(f"deleted session {session}")


auth_app = typer.Typer(
    help="Sign in to Google Photos and check both clouds' credentials.", no_args_is_help=True
)
app.add_typer(auth_app, name="auth")


@auth_app.command("google")
def auth_google(
    client_secrets: Annotated[
        Path | None,
        typer.Option(
            help="OAuth client (Desktop app) JSON from Google Cloud "
            "(default: Q2GOOGLE_GOOGLE_CLIENT_SECRETS_FILE)."
        ),
    ] = None,
    headless: Annotated[
        bool,
        typer.Option("--headless", help="Print the sign-in URL instead of opening a browser."),
    ] = False,
) -> None:
    """Sign in to Google Photos (installed-app flow) and write the token file, mode 0600."""
    from q2google.errors import ConfigError
    from q2google.gphotos.oauth import GooglePhotosOAuth

    settings = _settings()
    secrets_file = client_secrets or settings.google_client_secrets_file
    if secrets_file is None:
        raise ConfigError(
            "no OAuth client: pass --client-secrets FILE or set "
            "Q2GOOGLE_GOOGLE_CLIENT_SECRETS_FILE (docs: Google Cloud set-up)"
        )
    oauth = GooglePhotosOAuth.from_settings(settings)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # the sign-in URL shows at once, piped too
    oauth.login(secrets_file, headless=headless)
    typer.echo(f"signed in to Google Photos; token written to {oauth.token_file} (mode 0600)")


@auth_app.command("status")
def auth_status(as_json: AsJson = False) -> None:
    """Check both clouds: the GoPro token is accepted, the Google token refreshes. Exit 1 if not."""
    import asyncio
    import json

    from q2google.auth import check_google, check_gopro, gopro_token

    settings = _settings()

    async def both() -> list[Any]:
        return list(
            await asyncio.gather(
                check_gopro(settings, gopro_token()), asyncio.to_thread(check_google, settings)
            )
        )

    statuses = asyncio.run(both())
    ready = all(status.ready for status in statuses)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "ready": ready,
                    **{
                        status.cloud: {
                            "ready": status.ready,
                            "message": status.message,
                            **status.details,
                        }
                        for status in statuses
                    },
                }
            )
        )
    else:
        for status in statuses:
            mark = "ok  " if status.ready else "FAIL"
            name = "GoPro " if status.cloud == "gopro" else "Google"
            typer.echo(f"{mark} {name}  {status.message}")
            scopes = status.details.get("scopes")
            if scopes:
                typer.echo("           scopes: " + ", ".join(s.rsplit("/", 1)[-1] for s in scopes))
    raise typer.Exit(0 if ready else 1)


@app.command()
def demo() -> None:
    """Run a real sync against local emulators of both clouds: no accounts needed."""
    from q2google.sandbox.demo import run_demo

    raise typer.Exit(0 if run_demo() else 1)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI and exit with its code; known errors become one line on stderr.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` when ``None``.
    """
    from q2google.errors import Q2GoogleError

    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    try:
        app(args=argv, prog_name="q2google", standalone_mode=True)
    except Q2GoogleError as error:
        if debug:
            raise
        typer.echo(f"q2google: error: {error}", err=True)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        typer.echo("q2google: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as error:  # a bug, or a library's error q2google failed to translate
        if debug:
            raise
        typer.echo(
            f"q2google: internal error: {type(error).__name__} (progress is saved; run again "
            "with --debug for the traceback, and please report it)",
            err=True,
        )
        sys.exit(EXIT_INTERNAL)

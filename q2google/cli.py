"""The ``q2google`` command line, built on Typer.

Commands register on :data:`app`. :func:`main` is the console script: it turns every
:class:`~q2google.errors.Q2GoogleError` into one line on stderr and its exit code, with the
traceback only under ``--debug``. Heavy modules are imported inside commands, not here, so
``q2google --help`` answers quickly.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from q2google import __version__
from q2google.commands.auth import auth_app
from q2google.commands.common import (
    AsJson,
    Concurrency,
    checked_session_id,
    held_back_reasons,
    load_settings,
    progress_mode,
    report_run,
    run_interruptibly,
)
from q2google.commands.ledger import ledger_app
from q2google.commands.sessions import sessions_app
from q2google.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, Q2GoogleError

if TYPE_CHECKING:
    from q2google.config import Q2GoogleSettings
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
app.add_typer(sessions_app, name="sessions")
app.add_typer(ledger_app, name="ledger")
app.add_typer(auth_app, name="auth")


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
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="At Google's daily request quota, wait for it to reset (midnight Pacific "
            "time) and go on, instead of stopping with exit 75.",
        ),
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Copy media captured in a window from the GoPro cloud into Google Photos, or resume."""
    from q2google.run import run_session
    from q2google.window import WindowRequest, parse_moment, time_zone

    checked_session_id(session)
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
    settings = load_settings(**overrides)
    if dry_run:
        _dry_run(settings, session, request, widen, as_json)
    summary = run_interruptibly(
        run_session(
            settings,
            session_id=session,
            start=request.start,
            end=request.end,
            album=album,
            progress=progress_mode(as_json),
            widen=widen,
            request=request,
            wait=wait,
        ),
        session,
    )
    report_run(summary, as_json)


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

    from q2google.dry_run import dry_run
    from q2google.progress import human_bytes

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
    for line in held_back_reasons(report.held_back):
        typer.echo(line)
    for failure in report.failures:
        typer.echo(f"  cannot move: {failure['file']} ({failure['item']}): {failure['error']}")
    raise typer.Exit(0)


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

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
from typing import Annotated

import typer

from q2google import __version__

EXIT_INTERRUPTED = 130

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


@app.command()
def sync(
    *,
    session: Annotated[str, typer.Option("--session", help="Session id; run again to resume.")],
    start: Annotated[
        str | None, typer.Option(help="First capture day, YYYY-MM-DD (new sessions).")
    ] = None,
    end: Annotated[str | None, typer.Option(help="Last capture day, YYYY-MM-DD.")] = None,
    album: Annotated[str | None, typer.Option(help="Google Photos album to add to.")] = None,
    concurrency: Annotated[
        int | None, typer.Option(min=1, max=64, help="Files in flight (default 4).")
    ] = None,
    fail_fast: Annotated[
        bool, typer.Option("--fail-fast", help="Stop at the first permanent failure.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON summary, nothing else.")
    ] = False,
) -> None:
    """Copy media captured in a window from the GoPro cloud into Google Photos, or resume."""
    import asyncio
    import dataclasses
    import json

    from q2google.config import get_settings
    from q2google.run import parse_day, run_session
    from q2google.state import validate_session_id
    from q2google.state.ledger import refuse_reserved

    refuse_reserved(validate_session_id(session))
    first = parse_day(start, "--start") if start else None
    last = parse_day(end, "--end") if end else None
    overrides: dict[str, object] = {"fail_fast": True} if fail_fast else {}
    if concurrency:
        overrides["transfer_concurrency"] = concurrency
    settings = get_settings(**overrides)
    try:
        summary = asyncio.run(
            run_session(settings, session_id=session, start=first, end=last, album=album)
        )
    except KeyboardInterrupt:
        typer.echo(
            f"q2google: interrupted; progress is saved. Resume with: "
            f"q2google sync --session {session}",
            err=True,
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(summary)))
    else:
        typer.echo(
            f"session {session}: {summary.by_status.get('completed', 0)} of "
            f"{summary.items} files in Google Photos, "
            f"{summary.bytes_uploaded / 1024**2:.1f} MiB sent in {summary.seconds:.1f} s"
        )
        for failure in summary.failures:
            typer.echo(f"  failed: {failure['file']} ({failure['item']}): {failure['error']}")
    raise typer.Exit(0 if summary.ok else 1)


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

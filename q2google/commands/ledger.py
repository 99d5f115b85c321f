"""``q2google ledger rebuild``: look after the cross-session delivery ledger."""

from __future__ import annotations

import typer

from q2google.commands.common import AsJson, load_settings

ledger_app = typer.Typer(
    help="Look after the delivery ledger: what q2google has put in Google Photos.",
    no_args_is_help=True,
)


@ledger_app.command("rebuild")
def ledger_rebuild(as_json: AsJson = False) -> None:
    """Rebuild the ledger from the media items q2google created in Google Photos.

    After the state was lost or damaged: every file found is recorded as delivered, so that
    no sync sends it again. Needs the Google token only.
    """
    import asyncio
    import dataclasses
    import json

    from q2google.ledger_rebuild import rebuild_ledger

    def say(line: str) -> None:
        typer.echo(f"q2google: {line}", err=True)

    report = asyncio.run(rebuild_ledger(load_settings(), on_progress=say))
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(report)))
    else:
        typer.echo(report.line())

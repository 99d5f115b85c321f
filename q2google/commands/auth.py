"""``q2google auth google | status``: sign in to Google Photos, check both clouds."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from q2google.commands.common import AsJson, load_settings

auth_app = typer.Typer(
    help="Sign in to Google Photos and check both clouds' credentials.", no_args_is_help=True
)


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

    settings = load_settings()
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

    settings = load_settings()

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

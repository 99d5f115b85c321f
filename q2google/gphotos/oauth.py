"""Google OAuth for the Photos Library API: log in once, then refresh as long as needed.

The token file is google-auth's authorized-user JSON (``token``, ``refresh_token``,
``token_uri``, ``client_id``, ``client_secret``, ``scopes``, ``expiry``), always written with
mode 0600. Access tokens are refreshed against the file's own ``token_uri`` shortly before they
expire and again whenever the API answers 401, and the refreshed token is written back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from q2google.files import write_private_file
from q2google.gphotos.models import GoogleAuthError
from q2google.retry import RetryableStatusError, RetryPolicy, TryLaterError

if TYPE_CHECKING:
    from google.oauth2.credentials import Credentials

    from q2google.config import Q2GoogleSettings

logger = logging.getLogger(__name__)

SCOPES = (
    "https://www.googleapis.com/auth/photoslibrary.appendonly",
    "https://www.googleapis.com/auth/photoslibrary.readonly.appcreateddata",
    "https://www.googleapis.com/auth/photoslibrary.edit.appcreateddata",
)
"""The Library API scopes that still exist after Google's 2025 change."""
FIX = "run `q2google auth google` to sign in again"
REFRESH_POLICY = RetryPolicy(attempts=3, total_seconds=60)
"""Refreshes happen inside API calls that are retried themselves: keep this loop short."""


class GooglePhotosOAuth:
    """Access tokens for the Photos Library API, backed by a token file.

    Args:
        token_file: google-auth authorized-user JSON.
        policy: Retry policy for refresh requests.
    """

    def __init__(self, token_file: str | Path, *, policy: RetryPolicy = REFRESH_POLICY) -> None:
        self.token_file = Path(token_file)
        self._policy = policy
        self._credentials: Credentials | None = None
        self._lock = asyncio.Lock()
        self._margin = timedelta(seconds=60)

    def __repr__(self) -> str:
        return f"GooglePhotosOAuth(token_file={str(self.token_file)!r})"

    @classmethod
    def from_settings(cls, settings: Q2GoogleSettings) -> GooglePhotosOAuth:
        """Use ``settings.google_token_file``."""
        return cls(settings.google_token_file)

    # -- reading and writing the token file ------------------------------------------------

    def client_id(self) -> str | None:
        """The OAuth client id of the token file (it names the Google Cloud project whose
        quota the requests count against), or ``None`` when it cannot be read."""
        try:
            info = json.loads(self.token_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return None
        found = info.get("client_id") if isinstance(info, dict) else None
        return found if isinstance(found, str) else None

    def load(self) -> Credentials:
        """Read the token file.

        Raises:
            GoogleAuthError: It is missing, unreadable, or not an authorized-user token.
        """
        from google.oauth2.credentials import Credentials

        try:
            info = json.loads(self.token_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise GoogleAuthError(f"no Google token at {self.token_file}: {FIX}") from None
        except (OSError, UnicodeDecodeError, ValueError) as error:
            reason = getattr(error, "strerror", None) or type(error).__name__
            raise GoogleAuthError(
                f"cannot read the Google token {self.token_file} ({reason}): {FIX}"
            ) from None
        if not isinstance(info, dict):
            raise GoogleAuthError(
                f"{self.token_file} is not a Google authorized-user token (not an object): {FIX}"
            )
        try:
            credentials: Credentials = Credentials.from_authorized_user_info(  # type: ignore[no-untyped-call]
                info
            )
        except (TypeError, ValueError) as error:
            missing = str(error).split(":")[-1].strip() or "fields are missing"
            raise GoogleAuthError(
                f"{self.token_file} is not a Google authorized-user token ({missing}): {FIX}"
            ) from None
        token_uri = info.get("token_uri")
        if isinstance(token_uri, str) and token_uri:
            # google-auth pins Google's endpoint on load; the file (ours, mode 0600) says where
            # its refresh token belongs, which is how the sandbox and proxies are reached.
            expiry = credentials.expiry
            credentials = credentials.with_token_uri(token_uri)
            credentials.expiry = expiry  # the copy google-auth makes drops it
        granted = set(credentials.scopes or ())
        if granted and not granted & set(SCOPES):
            raise GoogleAuthError(
                f"the Google token {self.token_file} has no Photos Library scope: {FIX}"
            )
        return credentials

    def save(self, credentials: Credentials) -> None:
        """Write ``credentials`` to the token file atomically, mode 0600."""
        write_private_file(self.token_file, credentials.to_json())  # type: ignore[no-untyped-call]

    # -- access tokens ---------------------------------------------------------------------

    async def access_token(self) -> str:
        """Return a valid access token, refreshing it first when it is about to expire.

        Raises:
            GoogleAuthError: No usable token, or the refresh token was revoked.
        """
        async with self._lock:
            credentials = await self._loaded()
            if self._needs_refresh(credentials):
                await self._refresh(credentials)
            return str(credentials.token)

    async def refresh(self, rejected: str | None = None) -> str:
        """Refresh after the API rejected ``rejected`` (a 401), unless already done since.

        Concurrent uploads that all see a 401 trigger one refresh, not one each.
        """
        async with self._lock:
            credentials = await self._loaded()
            if rejected is None or credentials.token == rejected:
                await self._refresh(credentials)
            return str(credentials.token)

    async def _loaded(self) -> Credentials:
        if self._credentials is None:
            self._credentials = await asyncio.to_thread(self.load)
        return self._credentials

    def _needs_refresh(self, credentials: Credentials) -> bool:
        if not credentials.token:
            return True
        expiry = credentials.expiry  # naive UTC, as google-auth keeps it
        if expiry is None:
            return False
        now = datetime.now(UTC).replace(tzinfo=None)
        return bool(now >= expiry - self._margin)

    async def _refresh(self, credentials: Credentials) -> None:
        from google.auth.exceptions import RefreshError, TransportError
        from google.auth.transport.requests import Request

        if not credentials.refresh_token:
            raise GoogleAuthError(f"the Google token {self.token_file} has no refresh token: {FIX}")

        async def once() -> None:
            try:
                await asyncio.to_thread(credentials.refresh, Request())
            except TransportError:
                raise RetryableStatusError("Google token refresh", 503) from None
            except RefreshError as error:
                if getattr(error, "retryable", False):
                    raise RetryableStatusError("Google token refresh", 503) from None
                raise GoogleAuthError(
                    f"Google refused to refresh the token in {self.token_file} "
                    f"({_refresh_reason(error)}): {FIX}"
                ) from None

        await self._policy.call("Google token refresh", once)
        expiry = credentials.expiry
        if expiry is not None:  # refresh at most 60 s early, and never after half the lifetime
            lifetime = expiry - datetime.now(UTC).replace(tzinfo=None)
            self._margin = min(timedelta(seconds=60), max(timedelta(0), lifetime / 2))
        await asyncio.to_thread(self.save, credentials)
        logger.debug("refreshed the Google access token (valid until %s)", expiry)

    # -- login -----------------------------------------------------------------------------

    def login(self, client_secrets_file: str | Path, *, headless: bool = False) -> Credentials:
        """Run Google's installed-app flow and write the token file.

        Args:
            client_secrets_file: The OAuth client (Desktop app) JSON from Google Cloud.
            headless: Do not open a browser: print the URL to open on any machine that can
                reach this one's loopback port (through ``ssh -L`` on a server).

        Raises:
            GoogleAuthError: The client secrets file is missing or invalid, or sign-in failed.
        """
        from google_auth_oauthlib.flow import InstalledAppFlow
        from oauthlib.oauth2 import OAuth2Error
        from requests.exceptions import RequestException

        try:
            flow = InstalledAppFlow.from_client_secrets_file(str(client_secrets_file), SCOPES)
        except FileNotFoundError:
            raise GoogleAuthError(f"no OAuth client secrets at {client_secrets_file}") from None
        except ValueError as error:
            raise GoogleAuthError(
                f"{client_secrets_file} is not an OAuth client secrets file ({error})"
            ) from None
        if _is_loopback(str(flow.client_config.get("token_uri", ""))):
            # oauthlib refuses plain http; a loopback token endpoint (the sandbox) never
            # leaves this machine.
            os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
        try:
            credentials: Credentials = flow.run_local_server(
                port=0,
                open_browser=not headless,
                authorization_prompt_message=(
                    "Open this URL to let q2google add to Google Photos:\n{url}"
                ),
                success_message="q2google is signed in to Google Photos; you can close this tab.",
            )
        except OAuth2Error as error:
            raise GoogleAuthError(
                f"Google sign-in failed ({error.error}): check the OAuth client in "
                f"{client_secrets_file}"
            ) from None
        except (RequestException, OSError) as error:
            raise TryLaterError(
                f"Google sign-in could not reach Google ({type(error).__name__}): try again"
            ) from None
        self.save(credentials)
        self._credentials = credentials
        return credentials


def _refresh_reason(error: Exception) -> str:
    """Google's short error code from a RefreshError (``invalid_grant``...), no token text."""
    details: Any = error.args[1] if len(error.args) > 1 else None
    if isinstance(details, dict) and isinstance(details.get("error"), str):
        return str(details["error"])
    text = str(error.args[0]) if error.args else ""
    return "invalid_grant" if "invalid_grant" in text else "refresh failed"


def _is_loopback(url: str) -> bool:
    """Whether ``url`` points at this machine (``localhost``, ``127.0.0.1``, ``::1``)."""
    return urlsplit(url).hostname in ("localhost", "127.0.0.1", "::1")

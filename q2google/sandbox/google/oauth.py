"""Google's OAuth side: the consent screen, the token endpoint, and bearer checks with scopes."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus, urlencode

from aiohttp import web

from q2google.sandbox.faults import FaultInjector, SandboxStats
from q2google.sandbox.google.wire import INSUFFICIENT_SCOPES, SCOPES, Handler, google_error


@dataclass(frozen=True)
class AuthorizationCode:
    """A consent the user gave: where to send the code, and the PKCE challenge to check."""

    redirect_uri: str
    code_challenge: str | None
    scope: str


@dataclass(frozen=True)
class AccessToken:
    """A bearer token: when it stops working, and what it may do."""

    expiry: float
    scopes: frozenset[str]


class GoogleOAuth:
    """The consent screen and token endpoint, and the bearer checks of every API route.

    Attributes:
        refresh_tokens: Valid refresh tokens, each with the scopes it was granted.
        access_tokens: Access tokens issued, each with its expiry and scopes.
    """

    def __init__(
        self,
        injector: FaultInjector,
        stats: SandboxStats,
        *,
        client_id: str,
        client_secret: str,
        refresh_token: str,
    ) -> None:
        self.injector = injector
        self.stats = stats
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_tokens: dict[str, tuple[str, ...]] = {refresh_token: SCOPES}
        self.codes: dict[str, AuthorizationCode] = {}
        self.access_tokens: dict[str, AccessToken] = {}

    def routes(self) -> list[web.RouteDef]:
        """The consent screen and the token endpoint."""
        return [web.get("/o/oauth2/auth", self.authorize), web.post("/token", self.token)]

    def issue_access_token(self, scopes: Collection[str] = SCOPES) -> tuple[str, int]:
        """Mint an access token granting ``scopes``; returns it with its lifetime in seconds."""
        ttl = self.injector.config.access_token_ttl_seconds
        token = "ya29.sandbox-" + secrets.token_urlsafe(24)
        self.access_tokens[token] = AccessToken(time.monotonic() + ttl, frozenset(scopes))
        return token, max(1, int(ttl))

    def revoke_refresh_tokens(self) -> None:
        """Revoke every refresh token, as a user removing the app's access would."""
        self.refresh_tokens.clear()

    # -- bearer checks ---------------------------------------------------------------------

    def guard(self, handler: Handler, scopes: Collection[str]) -> Handler:
        """Wrap an API handler: 401 without a valid token, 403 without one of ``scopes``."""

        async def guarded(request: web.Request) -> web.StreamResponse:
            denied = self.denied(request, scopes)
            return denied if denied is not None else await handler(request)

        return guarded

    def denied(self, request: web.Request, scopes: Collection[str]) -> web.Response | None:
        """The 401 or 403 answer ``request`` deserves, or ``None`` when it may go on."""
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        grant = self.access_tokens.get(token)
        if grant is not None and time.monotonic() < grant.expiry:
            if grant.scopes & set(scopes):
                return None
            self.stats.faults["insufficient_scopes"] += 1
            return google_error(
                403,
                "PERMISSION_DENIED",
                INSUFFICIENT_SCOPES,
                headers={
                    "WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", '
                    'error="insufficient_scope", scope="' + " ".join(sorted(scopes)) + '"'
                },
            )
        if grant is not None:
            self.stats.faults["access_token_expired"] += 1
        return google_error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, "
            "login cookie or other valid authentication credential.",
            headers={
                "WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", '
                'error="invalid_token"'
            },
        )

    # -- consent and token endpoint --------------------------------------------------------

    async def authorize(self, request: web.Request) -> web.Response:
        """``GET /o/oauth2/auth``: the consent screen, where the user always says yes.

        Redirects to the loopback ``redirect_uri`` with a one-time code, as Google does for
        installed apps.
        """
        query = request.query
        redirect_uri = query.get("redirect_uri", "")
        if query.get("client_id") != self.client_id:
            return web.json_response({"error": "invalid_client"}, status=401)
        if not redirect_uri.startswith(("http://localhost:", "http://127.0.0.1:")):
            return web.json_response({"error": "invalid_request: redirect_uri"}, status=400)
        if query.get("response_type") != "code" or not set(query.get("scope", "").split()):
            return web.json_response({"error": "invalid_request"}, status=400)
        code = "4/sandbox-" + secrets.token_urlsafe(24)
        self.codes[code] = AuthorizationCode(
            redirect_uri, query.get("code_challenge"), query.get("scope", "")
        )
        answer = urlencode({"code": code, "scope": query["scope"], "state": query.get("state", "")})
        raise web.HTTPFound(f"{redirect_uri}{'&' if '?' in redirect_uri else '?'}{answer}")

    def _invalid_client(self, request: web.Request, form: Mapping[str, Any]) -> web.Response | None:
        """Check the client's credentials: in the form, or as HTTP Basic (both are allowed)."""
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                decoded = base64.b64decode(header.removeprefix("Basic ")).decode()
            except ValueError:
                decoded = ""
            user, _, password = decoded.partition(":")
            client_id, client_secret = unquote_plus(user), unquote_plus(password)
        if client_id != self.client_id or client_secret != self.client_secret:
            return web.json_response(
                {"error": "invalid_client", "error_description": "The OAuth client was not found."},
                status=401,
            )
        return None

    def _exchange_code(self, form: Mapping[str, Any]) -> web.Response:
        """The ``authorization_code`` grant: a one-time code (PKCE-checked) for new tokens."""
        grant = self.codes.pop(str(form.get("code", "")), None)
        if grant is None or grant.redirect_uri != form.get("redirect_uri"):
            return web.json_response({"error": "invalid_grant"}, status=400)
        if grant.code_challenge is not None:
            verifier = str(form.get("code_verifier", "")).encode()
            digest = hashlib.sha256(verifier).digest()
            if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != grant.code_challenge:
                return web.json_response({"error": "invalid_grant: code_verifier"}, status=400)
        scopes = tuple(grant.scope.split())
        refresh_token = "1//sandbox-" + secrets.token_urlsafe(24)
        self.refresh_tokens[refresh_token] = scopes
        token, ttl = self.issue_access_token(scopes)
        return web.json_response(
            {
                "access_token": token,
                "expires_in": ttl,
                "refresh_token": refresh_token,
                "scope": grant.scope,
                "token_type": "Bearer",
            }
        )

    async def token(self, request: web.Request) -> web.Response:
        """``POST /token``: the ``authorization_code`` and ``refresh_token`` grants."""
        form = await request.post()
        grant_type = form.get("grant_type")
        if grant_type not in ("refresh_token", "authorization_code"):
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        refused = self._invalid_client(request, form)
        if refused is not None:
            return refused
        if grant_type == "authorization_code":
            return self._exchange_code(form)
        scopes = self.refresh_tokens.get(str(form.get("refresh_token", "")))
        if scopes is None:
            return web.json_response(
                {
                    "error": "invalid_grant",
                    "error_description": "Token has been expired or revoked.",
                },
                status=400,
            )
        token, ttl = self.issue_access_token(scopes)
        return web.json_response(
            {
                "access_token": token,
                "expires_in": ttl,
                "scope": " ".join(scopes),
                "token_type": "Bearer",
            }
        )

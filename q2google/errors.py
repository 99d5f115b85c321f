"""Exceptions q2google raises on purpose, and the exit code of each: the one table.

Every error a user can cause, fix or wait out derives from :class:`Q2GoogleError` and carries
the process exit code the CLI uses for it, so that the CLI prints ``str(error)`` (one line)
and exits without a traceback. Exceptions of the libraries q2google uses (gopro-api, aiohttp,
httpx, google-auth, pymongo) are turned into these where q2google calls them.

======  =====================================================================================
 code   meaning
======  =====================================================================================
 0      every file of the session is in Google Photos (or skipped, gone, or waiting for the
        GoPro cloud, each with its reason)
 1      some files failed for good; each is listed with the remote's own message
 2      bad input, configuration or credentials: nothing was changed, fix and run again
 75     temporary (a quota, the network, a service or the state store kept failing, or
        another run holds the session): progress is saved, run the same command later
 70     an internal error (a bug): one line, ``--debug`` shows the traceback
 130    interrupted (Ctrl-C): progress is saved, the resume command is printed
======  =====================================================================================
"""

from __future__ import annotations

from datetime import datetime

EXIT_OK = 0
"""Every file of the session is where it belongs."""
EXIT_FILES_FAILED = 1
"""Some files failed for good; they are listed with their errors."""
EXIT_BAD_INPUT = 2
"""Bad input, configuration or credentials: nothing was changed, fix and run again."""
EXIT_TRY_LATER = 75
"""Temporary: progress is saved, run the same command again later (BSD ``EX_TEMPFAIL``)."""
EXIT_INTERNAL = 70
"""A bug: an exception q2google did not expect (BSD ``EX_SOFTWARE``)."""
EXIT_INTERRUPTED = 130
"""Interrupted by Ctrl-C (128 + SIGINT): progress is saved."""


class Q2GoogleError(Exception):
    """Base of every error q2google raises deliberately.

    Attributes:
        exit_code: The CLI's exit code for this error.
    """

    exit_code: int = EXIT_BAD_INPUT


class ConfigError(Q2GoogleError, ValueError):
    """A setting (environment variable, ``.env`` entry or flag) has an invalid value."""


class InvalidSessionIdError(Q2GoogleError, ValueError):
    """A session id is not a safe name (it could escape the state directory, for instance)."""


class StateError(Q2GoogleError):
    """Base of errors raised while loading or saving session state."""


class StateCorruptError(StateError):
    """A stored checkpoint cannot be read; it is left untouched for a person to inspect."""


class StateWriteError(StateError):
    """A checkpoint could not be written; the previous checkpoint is still the valid one."""


class StateUnavailableError(StateError):
    """The state store stayed unreachable (or full) past every retry: exit 75, run again later.

    A corrupt stored state is a :class:`StateCorruptError` instead (exit 2): waiting cannot
    mend it.
    """

    exit_code = EXIT_TRY_LATER


class SessionBusyError(Q2GoogleError):
    """Another q2google run holds the session's lease: exit 75, nothing was touched."""

    exit_code = EXIT_TRY_LATER


class UnknownBackendError(StateError, ValueError):
    """``Q2GOOGLE_STATE_URI`` names a scheme that no registered backend serves."""


class BackendUnavailableError(StateError):
    """A backend exists for the scheme but cannot be used here (a missing extra, say)."""


class TryLaterError(Q2GoogleError):
    """A service kept failing past every retry; progress is saved, run the command again."""

    exit_code = EXIT_TRY_LATER


class QuotaExhaustedError(Q2GoogleError):
    """Google's daily request quota is used up; the session stays intact for a later run.

    Attributes:
        resets_at: When the quota resets (aware), when known.
    """

    exit_code = EXIT_TRY_LATER

    def __init__(self, message: str, *, resets_at: datetime | None = None) -> None:
        super().__init__(message)
        self.resets_at = resets_at


class GoProAuthError(Q2GoogleError):
    """The GoPro cloud refused the access token (it expired, or was revoked): exit 2."""


GOPRO_TOKEN_HELP = (
    "sign in at gopro.com, copy the gp_access_token cookie, export GP_ACCESS_TOKEN=<it> "  # noqa: S105
    "and run the same command again"
)
"""How to get a fresh GoPro token, for every message that needs one."""


class StorageFullError(Q2GoogleError):
    """The Google account's storage is full: nothing more can be created until space is freed
    or bought; progress is saved and the same command goes on then."""

    exit_code = EXIT_TRY_LATER

    def __init__(self, message: str = "") -> None:
        super().__init__(
            message
            or "your Google account's storage is full: nothing more can be added to Google "
            "Photos. Progress is saved: free or buy space, then run the same command again"
        )

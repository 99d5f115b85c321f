"""Exceptions q2google raises on purpose, each with a one-line message meant for a person.

Every error a user can cause or fix (bad input, configuration, corrupt state, missing
credentials) derives from :class:`Q2GoogleError` and carries the process exit code the CLI
uses for it, so that the CLI prints ``str(error)`` and exits without a traceback.
"""

from __future__ import annotations

EXIT_BAD_INPUT = 2
"""Exit code for bad input or configuration: nothing was changed, fix and run again."""


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


class UnknownBackendError(StateError, ValueError):
    """``Q2GOOGLE_STATE_URI`` names a scheme that no registered backend serves."""


class BackendUnavailableError(StateError):
    """A backend exists for the scheme but cannot be used here (a missing extra, say)."""

"""Session state and the backends that checkpoint it.

:func:`build_backend` picks a backend from the scheme of ``Q2GOOGLE_STATE_URI`` through a
table of lazily imported ``"module:attribute"`` names, so a backend's dependencies (pymongo for
``mongodb://``) are imported only when that scheme is used. Third parties add schemes with an
entry point in the ``q2google.state_backends`` group::

    [project.entry-points."q2google.state_backends"]
    redis = "my_package.redis_backend:RedisBackend"

The named object is either a class with a ``from_settings(settings)`` classmethod or a
callable taking the settings; either way it returns a :class:`SyncStateBackend`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from q2google.errors import BackendUnavailableError, UnknownBackendError
from q2google.state.base import (
    SCHEMA_VERSION,
    BatchState,
    ErrorRecord,
    ItemState,
    SessionCatalog,
    SessionState,
    StageName,
    StageStatus,
    StateChanges,
    SyncStateBackend,
    make_item_key,
    new_session,
    validate_session_id,
)
from q2google.state.claims import BulkClaims, LedgerClaims, LedgerLookups, LedgerRepair
from q2google.state.lease import FileLeases, LeaseHolder, SessionLeasing, session_lease
from q2google.state.ledger import LEDGER_SESSION_ID, DeliveryLedger
from q2google.state.local import JsonFileBackend
from q2google.state.protocol import UnsettledLoading, load_to_check, load_to_run
from q2google.state.request_counts import MemoryRequestCounts, RequestCounts
from q2google.state.settled import SettledItem
from q2google.state.summary import StoredSummary
from q2google.state.summary_store import SessionSummaries

if TYPE_CHECKING:
    from q2google.config import Q2GoogleSettings

__all__ = [
    "BACKENDS",
    "ENTRY_POINT_GROUP",
    "LEDGER_SESSION_ID",
    "SCHEMA_VERSION",
    "BatchState",
    "BulkClaims",
    "DeliveryLedger",
    "ErrorRecord",
    "FileLeases",
    "ItemState",
    "JsonFileBackend",
    "LeaseHolder",
    "LedgerClaims",
    "LedgerLookups",
    "LedgerRepair",
    "MemoryRequestCounts",
    "RequestCounts",
    "SessionCatalog",
    "SessionLeasing",
    "SessionState",
    "SessionSummaries",
    "SettledItem",
    "StageName",
    "StageStatus",
    "StateChanges",
    "StoredSummary",
    "SyncStateBackend",
    "UnsettledLoading",
    "build_backend",
    "known_schemes",
    "load_to_check",
    "load_to_run",
    "make_item_key",
    "new_session",
    "opened_backend",
    "session_lease",
    "validate_session_id",
]

ENTRY_POINT_GROUP = "q2google.state_backends"
"""Entry-point group through which other packages register backends for new URI schemes."""

BACKENDS: dict[str, str] = {
    "file": "q2google.state.local:JsonFileBackend",
    "mongodb": "q2google.state.mongo:MongoBackend",
    "mongodb+srv": "q2google.state.mongo:MongoBackend",
}
"""Built-in URI schemes and the backend each names, imported only when used."""

_EXTRAS = {"mongodb": "mongo", "mongodb+srv": "mongo"}


def known_schemes() -> list[str]:
    """Return every scheme :func:`build_backend` accepts: built-in and registered ones."""
    return sorted(set(BACKENDS) | {entry.name for entry in entry_points(group=ENTRY_POINT_GROUP)})


def build_backend(settings: Q2GoogleSettings) -> SyncStateBackend:
    """Return the state backend that ``settings.state_uri`` selects.

    Unset means JSON files under ``settings.state_dir``.

    Args:
        settings: The run's settings.

    Returns:
        A ready backend.

    Raises:
        UnknownBackendError: No backend serves the URI's scheme (the message lists the known
            ones, never the URI itself, which may hold a password).
        BackendUnavailableError: The backend needs something not installed here.
    """
    uri = settings.state_uri
    scheme = "file" if not uri else _scheme_of(uri)
    factory = _resolve(scheme)
    backend = factory(settings)
    if not isinstance(backend, SyncStateBackend):
        raise BackendUnavailableError(
            f"the backend registered for {scheme}:// has no load/save methods"
        )
    return backend


@contextmanager
def opened_backend(settings: Q2GoogleSettings) -> Iterator[SyncStateBackend]:
    """Build the backend ``settings`` select (:func:`build_backend`) and close it after use.

    A backend with a ``close()`` method (MongoDB's connection pool) is closed on the way out,
    whatever happened; one without is left as it is.

    Raises:
        UnknownBackendError: As :func:`build_backend`.
        BackendUnavailableError: As :func:`build_backend`.
    """
    backend = build_backend(settings)
    try:
        yield backend
    finally:
        close = getattr(backend, "close", None)
        if callable(close):
            close()


def _scheme_of(uri: str) -> str:
    try:
        scheme = urlsplit(uri).scheme.lower() if "://" in uri or uri.startswith("file:") else ""
    except ValueError:  # an unbalanced "[" and the like; the URI may hold a password
        raise UnknownBackendError("Q2GOOGLE_STATE_URI is not a valid URI") from None
    if not scheme:
        raise UnknownBackendError(
            "Q2GOOGLE_STATE_URI is not a URI: expected scheme://..., one of "
            + ", ".join(f"{name}://" for name in known_schemes())
        )
    return scheme


def _resolve(scheme: str) -> Callable[[Q2GoogleSettings], Any]:
    target = BACKENDS.get(scheme)
    if target is not None:
        try:
            obj = _import_target(target)
        except ImportError as error:
            extra = _EXTRAS.get(scheme)
            hint = f": pip install 'q2google[{extra}]'" if extra else ""
            raise BackendUnavailableError(
                f"the {scheme}:// state backend is not available here ({error.name or error} "
                f"is missing){hint}"
            ) from None
    else:
        matches = [entry for entry in entry_points(group=ENTRY_POINT_GROUP) if entry.name == scheme]
        if not matches:
            raise UnknownBackendError(
                f"Q2GOOGLE_STATE_URI: unknown scheme {scheme!r}; known: "
                + ", ".join(f"{name}://" for name in known_schemes())
            )
        try:
            obj = matches[0].load()
        except ImportError as error:
            raise BackendUnavailableError(
                f"the {scheme}:// state backend registered by {matches[0].value} cannot be "
                f"imported: {error}"
            ) from None
    from_settings = getattr(obj, "from_settings", None)
    factory = from_settings if callable(from_settings) else obj
    if not callable(factory):
        raise BackendUnavailableError(f"the backend registered for {scheme}:// is not callable")
    return factory  # type: ignore[no-any-return]


def _import_target(target: str) -> Any:
    module_name, _, attribute = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        obj = getattr(obj, part)
    return obj

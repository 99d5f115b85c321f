"""The JSON backend's session leases and ledger entries: files and OS locks, nothing else.

Layout, beside the sessions under the state directory::

    {state_dir}/.locks/{session_id}.lock                 a session's lease (flock), and who
                                                         holds it
    {state_dir}/q2google-ledger/meta.json                the ledger, created race-free
    {state_dir}/q2google-ledger/items/{item}.json        the entry of a delivered file (one
                                                         file shared by the files created
                                                         together: :mod:`.local_entries`),
                                                         each name replaced atomically
    {state_dir}/q2google-ledger/claims/{item}.json       who is delivering a file now, and
    {state_dir}/q2google-ledger/.claims.lock             its lock (:mod:`.local_claims`)
    {state_dir}/q2google-ledger/**/.{name}.{hex}.unreadable  a record ``ledger rebuild`` set aside

Lookups read the entry files of the files asked about, never the whole ledger. An unreadable
entry counts as not delivered, with a warning; an unreadable ``meta.json`` stops the lookup
with one line naming it and ``q2google ledger rebuild``, whose :meth:`repair_ledger
<JsonLeasesAndClaims.repair_ledger>` sets unreadable records aside before it writes the
entries it found.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import secrets
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from q2google.errors import (
    StateCorruptError,
    StateError,
    StateWriteError,
)
from q2google.state.base import (
    SCHEMA_VERSION,
    ItemState,
    SessionState,
)
from q2google.state.lease import FileLeases, LeaseHolder
from q2google.state.ledger import (
    LEDGER_SESSION_ID,
    REBUILD_FIX,
    new_ledger,
    warn_unreadable_entry,
)
from q2google.state.local_claims import JsonClaims
from q2google.state.local_entries import (
    ENTRIES_PER_FILE,
    LEDGER_LAYOUT_VERSION,
    EntryFiles,
    encode_entries,
)
from q2google.state.local_links import write_linked
from q2google.state.retrying import on_disk

T = TypeVar("T")
logger = logging.getLogger(__name__)

LOCKS_DIR = ".locks"
ENTRIES_DIR = "items"
LEDGER_META = "meta.json"
SET_ASIDE_SUFFIX = ".unreadable"


class JsonLeasesAndClaims(JsonClaims):
    """:class:`~q2google.state.lease.SessionLeasing` and
    :class:`~q2google.state.claims.LedgerClaims` for :class:`~q2google.state.JsonFileBackend`.
    """

    if TYPE_CHECKING:  # provided by JsonFileBackend
        state_dir: Path
        retry_seconds: float
        durable: bool

        def session_dir(self, session_id: str) -> Path: ...
        def legacy_file(self, session_id: str) -> Path: ...
        def item_file_name(self, item_key: str) -> str: ...
        def load(self, session_id: str) -> SessionState | None: ...
        def _write_file(self, path: Path, data: dict[str, Any]) -> None: ...
        def _sync_dir(self, directory: Path) -> None: ...
        def tidy(self, session_id: str) -> bool: ...

    # -- SessionLeasing --------------------------------------------------------------------

    @property
    def leases(self) -> FileLeases:
        """The session locks, under ``{state_dir}/.locks``."""
        return FileLeases(self.state_dir / LOCKS_DIR)

    @contextmanager
    def lease(self, session_id: str) -> Iterator[LeaseHolder]:
        """Hold ``session_id`` (an OS lock: a dead owner's is free at once); on the way out of
        a block that raised nothing, its journal is rewritten compact first if it grew long
        (see ``tidy``): a run that stops on an error or Ctrl-C leaves at once.

        Raises:
            SessionBusyError: Another run holds it.
        """
        with self.leases.lease(session_id) as holder:
            yield holder
            try:
                self.tidy(session_id)
            except StateError as error:  # the next long save compacts it
                logger.warning("session %s: journal left as it is: %s", session_id, error)

    def lease_holder(self, session_id: str) -> LeaseHolder | None:
        """Who holds ``session_id`` now, or ``None``."""
        return self.leases.holder(session_id)

    # -- LedgerClaims ----------------------------------------------------------------------

    def record_deliveries(self, entries: Sequence[ItemState]) -> None:
        """Write the entries, each under its own name, atomically (up to
        :data:`~.local_entries.ENTRIES_PER_FILE` share one file); other entries are never
        touched.

        Raises:
            StateWriteError: The disk refused.
            StateUnavailableError: The disk stayed full (or failing) past the retries.
        """
        self._retrying(
            lambda: self._record_once(entries), "write", LEDGER_SESSION_ID, StateWriteError
        )

    def _record_once(self, entries: Sequence[ItemState]) -> None:
        if entries:
            self._write_entries(self._ensure_ledger() / ENTRIES_DIR, entries)

    def _write_entries(self, items: Path, entries: Sequence[ItemState]) -> None:
        """Write entries (the last of a key twice wins) in files of up to
        :data:`~.local_entries.ENTRIES_PER_FILE`, each linked under its entries' names."""
        latest = list({entry.item_key: entry for entry in entries}.values())
        for start in range(0, len(latest), ENTRIES_PER_FILE):
            group = latest[start : start + ENTRIES_PER_FILE]
            names = [items / self.item_file_name(entry.item_key) for entry in group]
            alone = functools.partial(_one_of, group)  # where hard links are refused
            write_linked(items, encode_entries(group), names, durable=self.durable, alone=alone)
        self._sync_dir(items)

    def delivered_entry(self, item_key: str) -> ItemState | None:
        """The stored ledger entry of a file, or ``None`` (an unreadable one is ``None``, with
        a warning)."""
        return self._retrying(lambda: self._entry_once(item_key), "read", LEDGER_SESSION_ID)

    def _entry_once(self, item_key: str) -> ItemState | None:
        directory = self._ledger_dir()
        path = directory / ENTRIES_DIR / self.item_file_name(item_key)
        return self._read_entry(EntryFiles(self.item_file_name), path) or self._flat_ledger(
            directory
        ).get(item_key)

    # -- LedgerLookups ---------------------------------------------------------------------

    def delivered_entries(self, item_keys: Collection[str]) -> dict[str, ItemState]:
        """The stored entries of the files ``item_keys``: one file read each, never the whole
        ledger; an unreadable entry counts as absent, with a warning naming it.

        Raises:
            StateCorruptError: The ledger's ``meta.json`` is unreadable (one line naming it
                and ``q2google ledger rebuild``).
            StateUnavailableError: The disk kept failing past the retries.
        """
        keys = list(dict.fromkeys(item_keys))
        return self._retrying(lambda: self._entries_once(keys), "read", LEDGER_SESSION_ID)

    def _entries_once(self, keys: list[str]) -> dict[str, ItemState]:
        directory = self._ledger_dir()
        _ledger_meta(directory / LEDGER_META)  # an unreadable one stops here, naming the fix
        flat = self._flat_ledger(directory)
        files = EntryFiles(self.item_file_name)
        found: dict[str, ItemState] = {}
        for key in keys:
            entry = self._read_entry(files, directory / ENTRIES_DIR / self.item_file_name(key))
            entry = entry or flat.get(key)
            if entry is not None:
                found[key] = entry
        return found

    def ledger_size(self) -> int:
        """How many entry files the ledger holds (none are read)."""
        return len(_entry_names(self._ledger_dir() / ENTRIES_DIR))

    # -- LedgerRepair ----------------------------------------------------------------------

    def repair_ledger(self) -> list[str]:
        """Set unreadable ledger files aside (renamed ``.{name}.{hex}.unreadable``, never read
        again) and give the ledger a valid ``meta.json``; return the files set aside.

        Raises:
            StateWriteError: The disk refused.
        """
        return self._retrying(self._repair_once, "write", LEDGER_SESSION_ID, StateWriteError)

    def _repair_once(self) -> list[str]:
        directory = self._ledger_dir()
        meta = directory / LEDGER_META
        set_aside: list[str] = []
        try:
            _ledger_meta(meta)
        except StateCorruptError:
            set_aside.append(_set_aside(meta))
        entries = directory / ENTRIES_DIR
        files = EntryFiles(self.item_file_name)
        unreadable = [name for name in _entry_names(entries) if files.read(entries / name)[1]]
        set_aside += [_set_aside(entries / name) for name in unreadable]
        for touched in {meta.parent, entries} if set_aside else ():
            if touched.is_dir():
                self._sync_dir(touched)
        if directory.is_dir():
            self._ensure_ledger()
        return set_aside

    # -- internals -------------------------------------------------------------------------

    def _retrying(
        self,
        operation: Callable[[], T],
        verb: str,
        session_id: str,
        kind: type[StateError] = StateError,
    ) -> T:
        """Run ``operation``, retrying a full disk or an I/O error (see
        :func:`~q2google.state.retrying.on_disk`); the backend's reads and writes go through it."""
        return on_disk(
            operation,
            verb=verb,
            session_id=session_id,
            where=self.state_dir,
            seconds=self.retry_seconds,
            kind=kind,
        )

    def _ledger_dir(self) -> Path:
        return self.session_dir(LEDGER_SESSION_ID)

    def _ensure_ledger(self) -> Path:
        """Create the ledger's directory and ``meta.json`` if missing, race-free.

        ``meta.json`` comes into being with ``os.link`` of a complete temporary file, which
        fails if another process was first: then theirs is kept, and the entries of both go
        to ``items/`` (without hard links, the last one written is kept). An older one is
        marked :data:`~.local_entries.LEDGER_LAYOUT_VERSION` before files are shared. A
        ledger kept by an older version as a flat file is carried over.
        """
        directory = self._ledger_dir()
        meta = directory / LEDGER_META
        if not meta.is_file():
            self._create_ledger(directory, meta)
        stored = _ledger_meta(meta)  # another's, made first, may be an older one
        if stored is not None and stored.get("schema_version") != LEDGER_LAYOUT_VERSION:
            self._write_file(meta, _meta_for_file(stored))  # before any file is shared
            self._sync_dir(directory)
        return directory

    def _create_ledger(self, directory: Path, meta: Path) -> None:
        (directory / ENTRIES_DIR).mkdir(parents=True, exist_ok=True)
        ledger = self.load(LEDGER_SESSION_ID)  # an older flat file, if any
        if ledger is not None:
            self._write_entries(directory / ENTRIES_DIR, list(ledger.items.values()))
        else:
            ledger = new_ledger()
        temporary = directory / f".meta.json.{secrets.token_hex(4)}.tmp"
        self._write_file(temporary, _meta_for_file(ledger.meta_dict()))
        try:
            os.link(temporary, meta)
        except FileExistsError:
            pass
        except OSError:  # no hard links here: a racing creator's is as good as this one
            os.replace(temporary, meta)
        finally:
            temporary.unlink(missing_ok=True)
        self._sync_dir(directory)
        self._sync_dir(directory.parent)

    def _read_entry(self, files: EntryFiles, path: Path) -> ItemState | None:
        """The entry of a name; ``None`` when there is none, or when it is unreadable (with
        a warning: it counts as absent)."""
        entry, problem = files.read(path)
        if problem:
            warn_unreadable_entry(str(path), problem)
        return entry

    def _load_ledger(self, directory: Path) -> SessionState:
        """The whole ledger as a session (every entry read, a shared file parsed once).

        Raises:
            StateCorruptError: ``meta.json`` or an entry is unreadable; the message names it.
        """
        meta = _ledger_meta(directory / LEDGER_META) or {}
        entries_dir = directory / ENTRIES_DIR
        files = EntryFiles(self.item_file_name)
        entries: list[ItemState] = []
        for name in _entry_names(entries_dir):
            entry, problem = files.read(entries_dir / name)
            if problem:
                raise StateCorruptError(f"{entries_dir / name}: {problem}")
            if entry is not None:
                entries.append(entry)
        try:
            return SessionState.from_parts(_meta_from_file(meta), entries, ())
        except StateCorruptError as error:
            raise StateCorruptError(f"{directory / LEDGER_META}: {error}") from None

    def _flat_ledger(self, directory: Path) -> dict[str, ItemState]:
        """The entries of a ledger an older version kept as one flat file (until the next
        record moves them to ``items/``); empty when there is none."""
        if (directory / LEDGER_META).is_file() or not self.legacy_file(LEDGER_SESSION_ID).is_file():
            return {}
        ledger = self.load(LEDGER_SESSION_ID)
        return dict(ledger.items) if ledger is not None else {}


def _one_of(group: Sequence[ItemState], index: int) -> bytes:
    """The entry file of ``group[index]`` alone."""
    return encode_entries([group[index]])


def _entry_names(entries: Path) -> list[str]:
    """The names of the entries in ``items/``, sorted (not temporary or set-aside files);
    none when there is no such directory."""
    try:
        names = os.listdir(entries)
    except FileNotFoundError:
        return []
    return sorted(name for name in names if name.endswith(".json") and not name.startswith("."))


def _meta_for_file(meta: dict[str, Any]) -> dict[str, Any]:
    """The ledger's metadata as its ``meta.json`` holds it (entry files may be shared)."""
    return {**meta, "schema_version": LEDGER_LAYOUT_VERSION}


def _meta_from_file(meta: dict[str, Any]) -> dict[str, Any]:
    """The ledger's metadata from its ``meta.json`` (the records' schema version)."""
    if meta.get("schema_version") == LEDGER_LAYOUT_VERSION:
        return {**meta, "schema_version": SCHEMA_VERSION}
    return meta


def _ledger_meta(path: Path) -> dict[str, Any] | None:
    """Check and read the ledger's ``meta.json`` (``None`` when absent: no ledger, or not
    created yet).

    Raises:
        StateCorruptError: It is unreadable: one line naming it and the fix.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    why = None
    try:
        data = json.loads(raw)
    except ValueError as error:
        why = f"not valid JSON: {error}"
    else:
        if not isinstance(data, dict) or data.get("session_id") != LEDGER_SESSION_ID:
            why = "not the ledger's metadata"
        elif (
            isinstance(data.get("schema_version"), int)
            and data["schema_version"] > LEDGER_LAYOUT_VERSION
        ):
            raise StateError(f"{path} was written by a newer q2google: upgrade q2google")
        else:
            try:
                SessionState.from_dict({**_meta_from_file(data), "items": [], "batches": []})
            except StateCorruptError as error:
                why = str(error)
    if why is not None:
        raise StateCorruptError(
            f"the delivery ledger's {path} is unreadable ({why}); " + REBUILD_FIX
        )
    assert isinstance(data, dict)
    return data


def _set_aside(path: Path) -> str:
    """Rename an unreadable file to a hidden name nothing reads; return where it was."""
    os.replace(path, path.with_name(f".{path.name}.{secrets.token_hex(4)}{SET_ASIDE_SUFFIX}"))
    return str(path)

"""One file under several names (hard links): how the JSON backend writes a group of records.

Claims of files claimed together, and ledger entries of files created together, are each one
file given every record's name. The filesystem then makes one file per group, not one per
record, which is what it charges for: ext4 without a journal scans past every file deleted
in the last minutes for each file it makes, and each file made durable costs an ``fsync``.
Where hard links are refused (FAT, some network shares), each name is a file of its own.

All names of a group share one file: damage to it (a disk error) shows under each of them.
"""

from __future__ import annotations

import functools
import os
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["link_names", "replace_file", "write_linked", "written"]


def write_linked(
    directory: Path,
    payload: bytes,
    paths: Sequence[Path],
    *,
    durable: bool,
    alone: Callable[[int], bytes] | None = None,
) -> None:
    """Write ``payload`` once and give it each of ``paths`` as a name, each atomically (a name
    that held something else is replaced at once: a reader sees the old file or the new).

    Args:
        directory: Where the shared temporary file is made (that of ``paths``).
        payload: The file's content.
        paths: Its names (a name given twice is linked once).
        durable: fsync the file (a file of its own for each name too) before any name points
            to it; the directory's fsync is the caller's.
        alone: What the name ``paths[i]`` holds where it must be a file of its own (hard
            links refused), asked only then; ``payload`` when not given.

    Raises:
        OSError: The disk refused; a name already given keeps the new file, the others keep
            what they held, and no temporary file is left.
    """
    if not paths:
        return
    shared = written(directory / f".shared.{secrets.token_hex(8)}.tmp", payload, durable=durable)
    try:
        link_names(shared, paths, alone or (lambda _: payload), durable=durable)
    finally:
        shared.unlink(missing_ok=True)


def link_names(
    shared: Path, paths: Sequence[Path], alone: Callable[[int], bytes], *, durable: bool
) -> None:
    """Give the file ``shared`` each of ``paths`` as a name, as :func:`write_linked` does
    (``alone(i)``: what ``paths[i]`` holds where it must be a file of its own).

    Raises:
        OSError: The disk refused (as :func:`write_linked`).
    """
    named: set[Path] = set()  # a name given twice is linked once
    for index, path in enumerate(paths):
        if path not in named:
            named.add(path)
            _name(shared, path, functools.partial(alone, index), durable=durable)


def _name(shared: Path, path: Path, alone: Callable[[], bytes], *, durable: bool) -> None:
    """Give ``shared`` the name ``path``: a new name in one step, an existing one replaced."""
    try:
        os.link(shared, path)
    except FileExistsError:  # through a temporary name, replaced at once
        named = _temporary(path)
        try:
            os.link(shared, named)
        except OSError:  # some filesystems say a name exists before they say no links
            replace_file(path, alone(), durable=durable)
        else:
            _replace(named, path)
    except OSError:  # no hard links here: a file of its own
        replace_file(path, alone(), durable=durable)


def replace_file(path: Path, data: bytes, *, durable: bool) -> None:
    """Replace (or create) ``path`` atomically with a new file holding ``data``, fsynced
    first if ``durable`` (the directory's fsync is the caller's).

    Raises:
        OSError: The disk refused; ``path`` is as it was and no temporary file is left.
    """
    _replace(written(_temporary(path), data, durable=durable), path)


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")


def _replace(named: Path, path: Path) -> None:
    try:
        os.replace(named, path)
    except BaseException:
        named.unlink(missing_ok=True)
        raise


def written(path: Path, data: bytes, *, durable: bool = False) -> Path:
    """Create ``path`` (it must not exist) holding ``data``, fsynced if ``durable``; return it.

    Raises:
        OSError: The disk refused (a full disk); no half-written file is left behind.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path

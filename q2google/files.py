"""Small file helpers shared by every part that writes secrets to disk."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_private_file(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` atomically, readable by the owner only (mode 0600).

    The text goes to a temporary file in the same directory, created 0600, fsynced, then moved
    over ``path``; a crash leaves the old file or the new one, never a torn or world-readable
    one. Parent directories are created 0700.

    Returns:
        The path written.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return target

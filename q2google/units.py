"""Quantities for people (``1.5 GiB``), importable without the pipeline (``sessions list``)."""

from __future__ import annotations

MIB = 1024**2


def human_bytes(count: float) -> str:
    """``1.5 GiB``, ``12.0 MiB``, ``512 B``.

    Args:
        count: Bytes.

    Returns:
        The count in the largest binary unit it reaches, one decimal.
    """
    for unit, size in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", MIB), ("KiB", 1024)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{int(count)} B"

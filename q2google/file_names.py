"""File names: a name's extension, as GoPro's files and Google's rules are judged by."""

from __future__ import annotations

__all__ = ["extension"]


def extension(file_name: str) -> str:
    """The file name's extension, lower case, without the dot (``""`` when none).

    ``PurePosixPath(file_name).suffix``'s rule (a leading dot is not one), without building a
    path: it runs several times for each file.
    """
    name = file_name
    if "/" in name:  # the last part that is a name
        name = next((part for part in reversed(name.split("/")) if part not in ("", ".")), "")
    dot = name.rfind(".")
    return name[dot + 1 :].lower() if 0 < dot < len(name) - 1 else ""

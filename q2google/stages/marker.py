"""The marker q2google puts in each media item's description, to find its items again.

Google Photos does not reliably merge a second upload of the same bytes into the first item,
so after an answer was lost q2google must find out which of its files are already there. It
lists the items it created (the ``photoslibrary.readonly.appcreateddata`` scope allows that)
and reads this marker from their descriptions. What a user sees in the item's info panel:
``From GoPro (Video) [q2g:68b22325df3cf752557ac6d7-1]``: the GoPro media id and the file's
position in it (the chapter, the frame), which no other file has, even when two cameras
named their files alike.
"""

from __future__ import annotations

import re

from q2google.gphotos.limits import MAX_DESCRIPTION_CHARS

_MARKER = re.compile(r"\[q2g:([A-Za-z0-9._-]+)\]")
_MEDIA_TYPE = re.compile(r"^From GoPro \(([^()]+)\) \[q2g:")
_ITEM_KEY = re.compile(r"^(.+)-(0|[1-9][0-9]{0,8})$")


def description_for(item_key: str, media_type: str | None) -> str:
    """The description of the media item made from the GoPro file ``item_key``."""
    text = f"From GoPro ({media_type or 'media'}) [q2g:{item_key}]"
    return text[:MAX_DESCRIPTION_CHARS]


def item_key_in(description: str | None) -> str | None:
    """The GoPro file a media item was made from, read from its description's marker."""
    match = _MARKER.search(description or "")
    return match.group(1) if match else None


def media_type_in(description: str | None) -> str | None:
    """The GoPro media type a description names (``Video``, ``Burst``...), or ``None``."""
    match = _MEDIA_TYPE.search(description or "")
    kind = match.group(1) if match else None
    return kind if kind != "media" else None


def file_of(item_key: str) -> tuple[str, int] | None:
    """The GoPro media id and file index an item key names, or ``None`` when it names none
    (:func:`~q2google.state.make_item_key` the other way round)."""
    match = _ITEM_KEY.match(item_key)
    return (match.group(1), int(match.group(2))) if match else None

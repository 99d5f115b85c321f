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


def description_for(item_key: str, media_type: str | None) -> str:
    """The description of the media item made from the GoPro file ``item_key``."""
    text = f"From GoPro ({media_type or 'media'}) [q2g:{item_key}]"
    return text[:MAX_DESCRIPTION_CHARS]


def item_key_in(description: str | None) -> str | None:
    """The GoPro file a media item was made from, read from its description's marker."""
    match = _MARKER.search(description or "")
    return match.group(1) if match else None

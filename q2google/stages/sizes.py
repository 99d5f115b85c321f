"""What the transfer knows of file sizes before their downloads start.

A photo's size is in its search row; a chapter's or a frame's is not (the row gives its
media's, every file together), so a file of unknown size is estimated as its share of its
media's. The transfer takes files largest first by these sizes, so that the longest video does
not start last and end the run alone, and reports the bytes it sets out to send.
"""

from __future__ import annotations

from collections.abc import Iterable
from operator import attrgetter

from q2google.state import ItemState, SessionState


def largest_first(state: SessionState, items: Iterable[ItemState]) -> list[ItemState]:
    """``items`` largest first, by :func:`expected_size`; files of the same size, and files of
    unknown size (last), in discovery order.

    Sorted by keys the items already hold where they can (a photo's size, its position): 100,000
    files need no key objects of their own.
    """
    ordered = sorted(items, key=attrgetter("position"))
    shares = _shares(state, ordered)
    ordered.sort(key=lambda item: _size_or_less(item, shares), reverse=True)  # stable
    return ordered


def bytes_to_send(state: SessionState, items: list[ItemState]) -> int:
    """Bytes ``items`` still have to send: :func:`expected_size` less what Google already
    holds of an upload under way; a file of unknown size counts as the mean of the others."""
    shares = _shares(state, items)
    sizes = [expected_size(item, shares) for item in items]
    known = [size for size in sizes if size is not None]
    mean = sum(known) // len(known) if known else 0
    return sum(
        max(0, (mean if size is None else size) - item.upload_offset)
        for item, size in zip(items, sizes, strict=True)
    )


def expected_size(item: ItemState, shares: dict[str, int]) -> int | None:
    """A file's size when known, else its share of its media's (a chapter of a recording of
    three: a third of the recording), else ``None``.

    Args:
        item: The file.
        shares: Files per media of the session, for the media of files of unknown size
            (:func:`_shares`).
    """
    if item.size_bytes is not None:
        return item.size_bytes
    if item.media_size_bytes is None:
        return None
    return item.media_size_bytes // max(1, shares.get(item.media_id, 1))


def _shares(state: SessionState, items: Iterable[ItemState]) -> dict[str, int]:
    """Files per media in ``state``, for the media of ``items`` sized by their media alone
    (none for a library of photos, whose rows give each one's size)."""
    files = dict.fromkeys(
        (item.media_id for item in items if item.size_bytes is None and item.media_size_bytes),
        0,
    )
    if files:
        for item in state.items.values():
            if item.media_id in files:
                files[item.media_id] += 1
    return files


def _size_or_less(item: ItemState, shares: dict[str, int]) -> int:
    """:func:`expected_size`, or -1 when unknown (after every known size, largest first)."""
    size = expected_size(item, shares)
    return -1 if size is None else size

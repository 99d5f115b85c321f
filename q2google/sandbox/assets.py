"""Sandbox CDN assets: files whose bytes are generated from a seed, block by block.

No asset is ever held in memory: its bytes are computed block by block from the asset's seed
and the block index, so a 20 GiB video costs nothing until read, any range can be served, and
every byte that arrives in the Google emulator can be checked against its source.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache, lru_cache

BLOCK_SIZE = 64 * 1024
"""Unit in which asset bytes are generated (each block is distinct)."""
KIB, MIB, GIB = 1024, 1024**2, 1024**3

SOURCE = "source"
"""Label of every camera original (photo, chapter, frame), as the GoPro API labels them."""
COVER = "cover"
"""Label of a burst's or time-lapse's cover image, which the API labels ``source``."""
PROXY_LABELS = frozenset({"high_res_proxy_mp4", "mp4_low", "timelapse_video"})
"""Labels of the playable transcodes the cloud makes."""


@lru_cache(maxsize=64)
def _pattern(seed: int) -> bytes:
    return random.Random(seed).randbytes(BLOCK_SIZE)


def asset_block(seed: int, index: int) -> bytes:
    """Return block ``index`` (``BLOCK_SIZE`` bytes) of the asset generated from ``seed``.

    Blocks are rotations of a per-seed random pattern, tagged with their index, so no two blocks
    of an asset are equal and a misplaced range changes the asset's hash.
    """
    pattern = _pattern(seed)
    shift = (index * 2_654_435_761) % BLOCK_SIZE
    rotated = pattern[shift:] + pattern[:shift]
    return index.to_bytes(8, "big") + rotated[8:]


@dataclass(frozen=True)
class SandboxAsset:
    """One downloadable file on the sandbox CDN.

    Attributes:
        asset_id: Unique id, part of its CDN URL.
        file_name: The file's own name (a chapter's or frame's camera name, ``GX020042.MP4``),
            given in the URL's content disposition.
        size: Length in bytes.
        seed: Seed its bytes are generated from.
        content_type: MIME type served.
        width: Pixel width.
        height: Pixel height.
        label: What the file is. The API's variation or sidecar label (``source`` for every
            original, ``high_res_proxy_mp4``, ``mp4_low``, ``timelapse_video``, ``concat``,
            ``baked_source``, ``gpmf``, ``raw_photo``, ``zip``), or a sandbox label for files
            the API does not label: ``cover`` (sent as ``source``), ``sprite``, ``edit``
            (an edit's decision list).
        item_number: The ``item_number`` of its variation or sidecar entry, ``None`` when that
            entry is unnumbered (``files`` entries are always numbered by position).
        available: The ``available`` flag of its entries; the CDN answers 404 while false.
        type: The entry's ``type``; the file name's lowercase extension when empty.
    """

    asset_id: str
    file_name: str
    size: int
    seed: int
    content_type: str
    width: int = 4000
    height: int = 3000
    label: str = SOURCE
    item_number: int | None = None
    available: bool = True
    type: str = ""

    @property
    def extension(self) -> str:
        """The file name's extension, lowercase, without the dot (``""`` when none)."""
        stem, dot, extension = self.file_name.rpartition(".")
        return extension.lower() if dot and stem else ""

    @property
    def entry_type(self) -> str:
        """The ``type`` of its API entry (``mp4``, ``jpg``, ``1.mp4``...)."""
        return self.type or self.extension or "bin"

    @property
    def api_label(self) -> str:
        """The label the API gives it (a cover is labelled ``source``)."""
        return SOURCE if self.label == COVER else self.label

    def read(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Yield the bytes in ``[start, end)`` in pieces of at most one block.

        Args:
            start: First byte offset.
            end: Offset after the last byte; the asset's size when ``None``.
        """
        end = self.size if end is None else min(end, self.size)
        position = start
        while position < end:
            index, skip = divmod(position, BLOCK_SIZE)
            block = asset_block(self.seed, index)
            piece = block[skip : skip + (end - position)]
            yield piece
            position += len(piece)

    def sha256(self) -> str:
        """Return the hex sha256 of the whole asset (computed once, streamed)."""
        return _asset_sha256(self.seed, self.size)


@cache
def _asset_sha256(seed: int, size: int) -> str:
    digest = hashlib.sha256()
    for piece in SandboxAsset("", "", size, seed, "").read():
        digest.update(piece)
    return digest.hexdigest()


# What the emulated Google Photos accepts (developers.google.com/photos, "Accepted file types
# and sizes"): the sandbox's own model, used to tell which originals a correct sync skips.
GOOGLE_PHOTO_EXTENSIONS = frozenset(
    {"avif", "bmp", "gif", "heic", "ico", "jpg", "jpeg", "png", "tif", "tiff", "webp"}
)
GOOGLE_VIDEO_EXTENSIONS = frozenset(
    {"3gp", "3g2", "asf", "avi", "divx", "m2t", "m2ts", "m4v", "mkv", "mmv", "mod", "mov"}
    | {"mp4", "mpg", "mts", "tod", "wmv"}
)
GOOGLE_PHOTO_MAX_BYTES = 200 * MIB
GOOGLE_VIDEO_MAX_BYTES = 20 * GIB


def google_refusal(asset: SandboxAsset) -> str | None:
    """Why Google Photos would refuse ``asset`` (its type or its size), or ``None``."""
    extension = asset.extension
    if extension in GOOGLE_PHOTO_EXTENSIONS:
        limit = GOOGLE_PHOTO_MAX_BYTES
    elif extension in GOOGLE_VIDEO_EXTENSIONS:
        limit = GOOGLE_VIDEO_MAX_BYTES
    else:
        return f"Google Photos does not accept .{extension or '(none)'} files"
    if asset.size > limit:
        return f"larger than Google Photos' {limit // MIB} MiB limit"
    return None


def parse_size(text: str) -> int:
    """Parse ``123``, ``64KiB``, ``4MiB``, ``1.5GiB`` (also KB, MB, GB as powers of 1024).

    Raises:
        ValueError: Not a size.
    """
    units = {
        "": 1,
        "b": 1,
        "k": KIB,
        "kb": KIB,
        "kib": KIB,
        "m": MIB,
        "mb": MIB,
        "mib": MIB,
        "g": GIB,
        "gb": GIB,
        "gib": GIB,
    }
    stripped = text.strip().lower()
    number = stripped.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = stripped[len(number) :].strip()
    if unit not in units or not number:
        raise ValueError(f"not a size: {text!r} (use e.g. 512KiB, 64MiB, 4GiB)")
    return int(float(number) * units[unit])

"""The sandbox's GoPro library: media, their files, and bytes generated from a seed.

No asset is ever held in memory: its bytes are computed block by block from the asset's seed
and the block index, so a 4 GiB video costs nothing until read, any range can be served, and
every byte that arrives in the Google emulator can be checked against its source.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

BLOCK_SIZE = 64 * 1024
"""Unit in which asset bytes are generated (each block is distinct)."""
KIB, MIB, GIB = 1024, 1024**2, 1024**3
_ASSET_PRESETS = {  # kind -> (MIME type, width, height)
    "photo": ("image/jpeg", 4000, 3000),
    "source": ("video/mp4", 3840, 2160),
    "high_res_proxy_mp4": ("video/mp4", 1920, 1080),
    "low_res_proxy_mp4": ("video/mp4", 848, 480),
}


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
        file_name: Name given in the URL's content disposition.
        size: Length in bytes.
        seed: Seed its bytes are generated from.
        content_type: MIME type served.
        width: Pixel width.
        height: Pixel height.
        label: Variation label for videos (``source``, ``high_res_proxy_mp4``...).
    """

    asset_id: str
    file_name: str
    size: int
    seed: int
    content_type: str
    width: int = 4000
    height: int = 3000
    label: str = "source"

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


@dataclass(frozen=True)
class SandboxMedia:
    """One media row of the GoPro cloud library.

    Attributes:
        media_id: GoPro media id.
        type: GoPro media type (``Photo``, ``Video``, ``Burst``, ``TimeLapse``...).
        filename: Library file name (not unique across media).
        captured_at: Capture time (UTC).
        files: Photo files, or the frames of a burst or time-lapse, in order.
        variations: Video renditions; ``source`` is the original when offered.
    """

    media_id: str
    type: str
    filename: str
    captured_at: datetime
    files: tuple[SandboxAsset, ...] = ()
    variations: tuple[SandboxAsset, ...] = ()

    @property
    def deliverables(self) -> tuple[SandboxAsset, ...]:
        """The assets a sync must deliver: every file, or the original video."""
        if self.files:
            return self.files
        sources = [variation for variation in self.variations if variation.label == "source"]
        if sources:
            return (sources[0],)
        return (max(self.variations, key=lambda v: (v.height * v.width, v.size)),)

    @property
    def file_size(self) -> int:
        """Size the search API reports: the sum of the deliverables."""
        return sum(asset.size for asset in self.deliverables)

    @property
    def primary(self) -> SandboxAsset:
        """The asset whose dimensions the search API reports."""
        return self.deliverables[0]

    def assets(self) -> Iterator[SandboxAsset]:
        """Yield every asset of the media, deliverable or not."""
        yield from self.files
        yield from self.variations


@dataclass
class SandboxLibrary:
    """A GoPro cloud library: media rows and the CDN assets behind them."""

    media: list[SandboxMedia] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._by_id = {media.media_id: media for media in self.media}
        self._assets = {asset.asset_id: asset for media in self.media for asset in media.assets()}
        if len(self._by_id) != len(self.media):
            raise ValueError("media ids must be unique")

    def get(self, media_id: str) -> SandboxMedia | None:
        """Return a media by id."""
        return self._by_id.get(media_id)

    def asset(self, asset_id: str) -> SandboxAsset | None:
        """Return a CDN asset by id."""
        return self._assets.get(asset_id)

    def deliverables(self) -> list[tuple[SandboxMedia, int, SandboxAsset]]:
        """Every ``(media, file_index, asset)`` a complete sync must deliver, in media order."""
        return [
            (media, index, asset)
            for media in self.media
            for index, asset in enumerate(media.deliverables)
        ]

    @property
    def total_bytes(self) -> int:
        """Bytes a complete sync transfers."""
        return sum(asset.size for _, _, asset in self.deliverables())

    # -- ready-made libraries --------------------------------------------------------------

    @classmethod
    def generated(
        cls,
        *,
        photos: int = 0,
        videos: int = 0,
        bursts: int = 0,
        timelapses: int = 0,
        photo_size: int = 256 * KIB,
        video_size: int = 4 * MIB,
        frames: int = 5,
        start: datetime = datetime(2024, 1, 1, tzinfo=UTC),
        days: int = 30,
        seed: int = 1,
    ) -> SandboxLibrary:
        """Build a library of the given composition, deterministic for a seed.

        File names restart at ``GOPR0001`` for every camera, so names collide across media, as
        they do with two cameras. Sizes vary around the given ones; capture times spread over
        ``days`` from ``start``.
        """
        rng = random.Random(seed)
        media: list[SandboxMedia] = []
        counter = 0

        def next_ids() -> tuple[str, datetime]:
            nonlocal counter
            counter += 1
            media_id = f"{rng.getrandbits(48):012x}{counter:04d}"
            moment = start + timedelta(seconds=rng.randrange(max(1, days) * 86_400))
            return media_id, moment.replace(microsecond=0)

        def asset(media_id: str, suffix: str, name: str, size: int, kind: str) -> SandboxAsset:
            mime, width, height = _ASSET_PRESETS[kind]
            label = "source" if kind == "photo" else kind
            return SandboxAsset(
                f"{media_id}-{suffix}",
                name,
                max(1, size),
                rng.getrandbits(62),
                mime,
                width,
                height,
                label,
            )

        def vary(size: int) -> int:
            return int(size * rng.uniform(0.75, 1.25))

        for number in range(photos):
            media_id, moment = next_ids()
            name = f"GOPR{number % 2 + 1:04d}.JPG"  # two cameras: names collide
            media.append(
                SandboxMedia(
                    media_id,
                    "Photo",
                    name,
                    moment,
                    files=(asset(media_id, "0", name, vary(photo_size), "photo"),),
                )
            )
        for number in range(videos):
            media_id, moment = next_ids()
            name = f"GX01{number + 1:04d}.MP4"
            size = vary(video_size)
            variations = (
                asset(media_id, "src", name, size, "source"),
                asset(media_id, "hi", name, size // 4, "high_res_proxy_mp4"),
                asset(media_id, "lo", name, size // 16, "low_res_proxy_mp4"),
            )
            media.append(SandboxMedia(media_id, "Video", name, moment, variations=variations))
        for kind, count in (("Burst", bursts), ("TimeLapse", timelapses)):
            for number in range(count):
                media_id, moment = next_ids()
                name = f"G{number + 1:03d}0001.JPG"
                media.append(
                    SandboxMedia(
                        media_id,
                        kind,
                        name,
                        moment,
                        files=tuple(
                            asset(media_id, str(frame), name, vary(photo_size), "photo")
                            for frame in range(frames)
                        ),
                    )
                )
        media.sort(key=lambda item: (item.captured_at, item.media_id))
        return cls(media)

    @classmethod
    def demo(cls, *, seed: int = 7) -> SandboxLibrary:
        """A small mixed library: photos, videos with proxies, a burst, a time-lapse."""
        return cls.generated(
            photos=6,
            videos=2,
            bursts=1,
            timelapses=1,
            frames=4,
            photo_size=512 * KIB,
            video_size=6 * MIB,
            seed=seed,
        )

    @classmethod
    def single_video(cls, size: int, *, seed: int = 11) -> SandboxLibrary:
        """One video of exactly ``size`` bytes (for large-file tests and benchmarks)."""
        moment = datetime(2024, 6, 1, 12, tzinfo=UTC)
        source = SandboxAsset(
            "bigvideo-src", "GX019999.MP4", size, seed, "video/mp4", 3840, 2160, "source"
        )
        return cls(
            [SandboxMedia("bigvideo", "Video", "GX019999.MP4", moment, variations=(source,))]
        )

    @classmethod
    def from_spec(cls, spec: str) -> SandboxLibrary:
        """Build a library from a command-line spec.

        Accepted: ``demo``; ``video:SIZE`` (``video:4GiB``); a comma list of counts and sizes
        (``photos=100,videos=3,bursts=2,timelapses=1,video_size=64MiB,seed=3``); or the path
        of a JSON file holding such keys.

        Raises:
            ValueError: The spec is not one of those.
        """
        spec = spec.strip()
        if spec == "demo":
            return cls.demo()
        if spec.startswith("video:"):
            return cls.single_video(parse_size(spec.removeprefix("video:")))
        path = Path(spec)
        options: dict[str, Any]
        if path.suffix == ".json" and path.is_file():
            options = json.loads(path.read_text())
            if not isinstance(options, dict):
                raise ValueError(f"library spec {path}: expected a JSON object of counts and sizes")
        else:
            options = {}
            for part in filter(None, (piece.strip() for piece in spec.split(","))):
                key, sep, value = part.partition("=")
                if not sep:
                    raise ValueError(f"library spec {part!r}: expected key=value")
                options[key.strip()] = value.strip()
        sizes = {"photo_size", "video_size"}
        counts = {"photos", "videos", "bursts", "timelapses", "frames", "days", "seed"}
        unknown = set(options) - sizes - counts
        if unknown:
            raise ValueError(f"library spec: unknown keys {sorted(unknown)}")
        kwargs: dict[str, Any] = {}
        for key, value in options.items():
            try:
                kwargs[key] = parse_size(str(value)) if key in sizes else int(value)
            except ValueError:
                raise ValueError(f"library spec {key}={value}: not a number") from None
        return cls.generated(**kwargs)


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

"""Generated GoPro libraries: every media shape the real cloud answers with, from a seed.

The shapes follow what community clients saw from ``api.gopro.com`` (docs/sandbox.md has the
table): a video's ``files[0]`` is a 1080p proxy and its originals are ``source`` variations,
one per chapter, listed after the proxies and after a full-length ``concat``; a burst's frames
are ``files`` and its lone ``source`` variation is a cover; a time-lapse comes either way;
edits offer only a ``baked_source``.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from q2google.sandbox.assets import (
    COVER,
    KIB,
    SOURCE,
    SandboxAsset,
)
from q2google.sandbox.media import SandboxMedia

VIDEO_MODES = ((3840, 2160), (2704, 1520), (1920, 1080))
"""Resolutions videos are shot in, in turn (the second video is 1080p: as tall as its proxy,
which is listed first, so that taking the tallest variation gets the proxy)."""
RENAMED = ("Sommerfest_Zürich.JPG", "海边日落.JPG", "Ρόδος.MP4", "Ski 🎿.JPG")
"""Names owners gave media in the GoPro app, cycled through by ``renamed``."""
EDIT_TITLES = ("Summer highlights", "")
UNREADY_STATES = ("uploading", "transcoding", "failure")
"""Processing states cycled through by ``unready``."""
FRAME_RATES = (29.97003, 59.94006, 23.976025)
CAMERAS = ("HERO11 Black", "HERO9 Black")
_BASE62 = string.digits + string.ascii_letters
_MP4, _JPEG, _BINARY = "video/mp4", "image/jpeg", "application/octet-stream"


@dataclass
class LibraryBuilder:
    """Builds media of every shape, deterministic for a seed.

    Attributes:
        seed: Seed of every random choice (ids, sizes, times, resolutions).
        start: Earliest capture time.
        days: Capture times spread over this many days from ``start``.
        photo_size: Typical size of a photo or frame (sizes vary by ±25%).
        video_size: Typical size of a video chapter.
    """

    seed: int
    start: datetime
    days: int
    photo_size: int
    video_size: int
    rng: random.Random = field(init=False)
    _count: int = field(default=0, init=False)
    _video_number: int = field(default=0, init=False)
    _series_number: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    # -- pieces ----------------------------------------------------------------------------

    def identity(self) -> tuple[str, datetime]:
        """A new media id (24-hex or 13-char base62, as GoPro has both) and a capture time."""
        self._count += 1
        if self._count % 2:
            media_id = f"{self.rng.getrandbits(72):018x}{self._count:06x}"
        else:
            head = "".join(self.rng.choice(_BASE62) for _ in range(9))
            number, tail = self._count, ""
            for _ in range(4):
                number, digit = divmod(number, 62)
                tail = _BASE62[digit] + tail
            media_id = head + tail
        moment = self.start + timedelta(seconds=self.rng.randrange(max(1, self.days) * 86_400))
        return media_id, moment.replace(microsecond=0)

    def vary(self, size: int) -> int:
        """``size`` give or take 25%, at least one byte."""
        return max(1, int(size * self.rng.uniform(0.75, 1.25)))

    def asset(
        self,
        media_id: str,
        suffix: str,
        name: str,
        size: int,
        content_type: str,
        *,
        dimensions: tuple[int, int] = (4000, 3000),
        label: str = SOURCE,
        item_number: int | None = None,
        entry_type: str = "",
    ) -> SandboxAsset:
        """A new asset of ``media_id`` with its own seed."""
        width, height = dimensions
        return SandboxAsset(
            f"{media_id}-{suffix}",
            name,
            max(1, size),
            self.rng.getrandbits(62),
            content_type,
            width,
            height,
            label,
            item_number,
            True,
            entry_type,
        )

    def _proxies(self, media_id: str, stem: str, size: int) -> tuple[SandboxAsset, SandboxAsset]:
        high = self.asset(
            media_id,
            "hi",
            f"{stem}.MP4",
            size // 4,
            _MP4,
            dimensions=(1920, 1080),
            label="high_res_proxy_mp4",
        )
        low = self.asset(
            media_id, "lo", f"{stem}.MP4", size // 16, _MP4, dimensions=(426, 240), label="mp4_low"
        )
        return high, low

    def _video_extras(
        self, media_id: str, stem: str, chapters: int
    ) -> tuple[tuple[SandboxAsset, ...], tuple[SandboxAsset, ...]]:
        """GPMF sidecars (numbered per chapter when chaptered) and one sprite sheet."""
        numbered = chapters > 1
        sidecars = [
            self.asset(
                media_id,
                f"gpmf{chapter}",
                f"{stem}-{chapter}.gpmf.mp4",
                self.vary(24 * KIB),
                _MP4,
                dimensions=(0, 0),
                label="gpmf",
                item_number=chapter if numbered else None,
                entry_type="1.mp4",
            )
            for chapter in range(1, chapters + 1)
        ]
        for kind in ("antishake.json", "antishake_horizon.json"):
            sidecars.append(
                self.asset(
                    media_id,
                    kind.split(".")[0],
                    f"{stem}.{kind}",
                    3 * KIB,
                    "application/json",
                    dimensions=(0, 0),
                    label="gpmf",
                    entry_type=kind,
                )
            )
        sprite = self.asset(
            media_id,
            "sprite",
            f"{stem}.sprite.jpg",
            8 * KIB,
            _JPEG,
            dimensions=(1000, 56),
            label="sprite",
        )
        return tuple(sidecars), (sprite,)

    # -- media -----------------------------------------------------------------------------

    def photo(
        self, name: str, *, size: int | None = None, raw: bool = False, filename: str | None = None
    ) -> SandboxMedia:
        """A single photo: ``files[0]`` and the ``source`` variation are the same JPG."""
        media_id, moment = self.identity()
        jpg = self.asset(media_id, "src", name, size or self.vary(self.photo_size), _JPEG)
        sidecars: tuple[SandboxAsset, ...] = ()
        if raw:
            gpr = name.rpartition(".")[0] + ".GPR"
            sidecars = (
                self.asset(media_id, "raw", gpr, int(jpg.size * 1.6), _BINARY, label="raw_photo"),
            )
        return SandboxMedia(
            media_id,
            "Photo",
            name if filename is None else filename,
            moment,
            files=(jpg,),
            variations=(jpg,),
            originals=(jpg,),
            sidecars=sidecars,
            camera_model=CAMERAS[self._count % 2],
        )

    def video(
        self,
        *,
        chapters: int = 1,
        kind: str = "Video",
        concat: bool = False,
        name: str | None = None,
        filename: str | None = None,
        size: int | None = None,
        source: bool = True,
        prefix: str = "GX",
        extension: str = "MP4",
    ) -> SandboxMedia:
        """A recording: a proxy in ``files``, proxies first in ``variations``, then the
        originals (one unnumbered ``source``, or one numbered ``source`` per chapter after an
        optional ``concat``). Without ``source`` it is a broken media offering proxies only.
        """
        media_id, moment = self.identity()
        self._video_number += 1
        number = self._video_number
        names = [f"{prefix}{chapter:02d}{number:04d}.{extension}" for chapter in range(1, 10)]
        if name is not None:
            names[0] = name
        dimensions = VIDEO_MODES[number % len(VIDEO_MODES)] if extension == "MP4" else (5376, 2688)
        content_type = _MP4 if extension == "MP4" else _BINARY
        sizes = [size or self.vary(self.video_size) for _ in range(chapters)]
        if chapters > 1:
            sizes[-1] = max(1, int(sizes[-1] * self.rng.uniform(0.2, 0.9)))  # the last is shorter
        chapter_assets = tuple(
            self.asset(
                media_id,
                f"src{chapter}",
                names[chapter - 1],
                sizes[chapter - 1],
                content_type,
                dimensions=dimensions,
                item_number=chapter if chapters > 1 else None,
                entry_type=extension.lower(),
            )
            for chapter in range(1, chapters + 1)
        )
        stem = names[0].rpartition(".")[0] or media_id
        high, low = self._proxies(media_id, stem, sum(sizes))
        variations: list[SandboxAsset] = [high, low]
        if concat:
            variations.append(
                self.asset(
                    media_id,
                    "concat",
                    f"{stem}.concat.MP4",
                    sum(sizes),
                    _MP4,
                    dimensions=dimensions,
                    label="concat",
                )
            )
        if source:
            variations.extend(chapter_assets)
        sidecars, sprites = self._video_extras(media_id, stem, chapters)
        return SandboxMedia(
            media_id,
            kind,
            names[0] if filename is None else filename,
            moment,
            files=(high,),
            variations=tuple(variations),
            originals=chapter_assets if source else (),
            sidecars=sidecars,
            sprites=sprites,
            fps=self.rng.choice(FRAME_RATES),
            camera_model="MAX" if extension == "360" else CAMERAS[0],
        )

    def series(self, kind: str, frames: int, *, numbered_sources: bool = False) -> SandboxMedia:
        """A photo series (Burst, Continuous, TimeLapse) named ``G001nnnn.JPG`` onwards.

        By default frames are ``files`` and the lone ``source`` variation is a cover image;
        with ``numbered_sources`` (the other TimeLapse shape) the frames are numbered
        ``source`` variations and ``files`` holds only the cover.
        """
        media_id, moment = self.identity()
        self._series_number += 1
        series = self._series_number
        names = [f"G{series:03d}{frame + 1:04d}.JPG" for frame in range(frames)]
        frame_assets = tuple(
            self.asset(
                media_id,
                f"f{frame + 1}",
                name,
                self.vary(self.photo_size),
                _JPEG,
                item_number=frame + 1 if numbered_sources else None,
            )
            for frame, name in enumerate(names)
        )
        total = sum(asset.size for asset in frame_assets)
        cover = self.asset(
            media_id,
            "cover",
            f"{names[0][:-4]}.cover.JPG",
            self.vary(self.photo_size // 3),
            _JPEG,
            label=COVER,
        )
        high, low = self._proxies(media_id, names[0][:-4], max(16, total // 2))
        extras: list[SandboxAsset] = []
        sidecars: tuple[SandboxAsset, ...] = ()
        if kind == "TimeLapse":
            extras.append(
                self.asset(
                    media_id,
                    "tlv",
                    f"{names[0][:-4]}.MP4",
                    max(1, total // 8),
                    _MP4,
                    label="timelapse_video",
                )
            )
            zipped = self.asset(
                media_id,
                "zip",
                f"{names[0][:-4]}.zip",
                total + 22 * frames,
                "application/zip",
                dimensions=(0, 0),
                label="zip",
                entry_type="zip",
            )
            sidecars = (zipped,)
        if numbered_sources:
            files: tuple[SandboxAsset, ...] = (cover,)
            variations = (*extras, low, *frame_assets)
        else:
            files = frame_assets
            variations = (cover, *extras, high, low)
        return SandboxMedia(
            media_id,
            kind,
            names[0],
            moment,
            files=files,
            variations=variations,
            originals=frame_assets,
            sidecars=sidecars,
            fps=0.0,
        )

    def edit(self, kind: str, title: str) -> SandboxMedia:
        """An edit project: a JSON decision list in ``files``, only ``baked_source`` and
        proxies in ``variations``; nothing to deliver."""
        media_id, moment = self.identity()
        stem = title or media_id
        decision_list = self.asset(
            media_id,
            "edl",
            f"{stem}.json",
            self.vary(4 * KIB),
            "application/json",
            dimensions=(0, 0),
            label="edit",
            entry_type="json",
        )
        size = self.vary(self.video_size)
        baked = self.asset(
            media_id,
            "baked",
            f"{stem}.mp4",
            size,
            _MP4,
            dimensions=(1920, 1080),
            label="baked_source",
        )
        high, low = self._proxies(media_id, stem, size)
        return SandboxMedia(
            media_id,
            kind,
            title,
            moment,
            files=(decision_list,),
            variations=(high, low, baked),
            originals=(),
        )


def oversize(rng: random.Random, limit: int) -> int:
    """A size from just over ``limit`` to half as much again."""
    return int(limit * rng.uniform(1.05, 1.5))

"""Compositions of generated libraries: how many media of each shape, and the demo's."""

from __future__ import annotations

from datetime import datetime

from q2google.sandbox.assets import GOOGLE_PHOTO_MAX_BYTES, GOOGLE_VIDEO_MAX_BYTES
from q2google.sandbox.generate import (
    EDIT_TITLES,
    RENAMED,
    UNREADY_STATES,
    LibraryBuilder,
    oversize,
)
from q2google.sandbox.media import SandboxMedia

COUNT_KEYS = (
    "photos",
    "videos",
    "chaptered",
    "timelapse_videos",
    "bursts",
    "continuous",
    "timelapses",
    "renamed",
    "unnamed",
    "edits",
    "unready",
    "no_source",
    "unsupported",
    "oversize_photos",
    "oversize_videos",
)
"""Every media count :func:`generate_media` takes (docs/sandbox.md describes each)."""


def generate_media(
    *,
    seed: int,
    start: datetime,
    days: int,
    photo_size: int,
    video_size: int,
    frames: int,
    chapters: int,
    counts: dict[str, int],
) -> list[SandboxMedia]:
    """Media of the composition ``counts`` (keys: :data:`COUNT_KEYS`), oldest first.

    File names restart at ``GOPR0001`` for every camera, so photo names collide across media,
    as they do with two cameras.
    """
    unknown = set(counts) - set(COUNT_KEYS)
    if unknown:
        raise ValueError(f"unknown media counts {sorted(unknown)}")
    get = counts.get
    build = LibraryBuilder(seed, start, days, photo_size, video_size)
    media: list[SandboxMedia] = []
    for number in range(get("photos", 0)):
        media.append(build.photo(f"GOPR{number % 2 + 1:04d}.JPG", raw=number % 3 == 2))
    media += [build.video() for _ in range(get("videos", 0))]
    for index in range(get("chaptered", 0)):
        media.append(build.video(chapters=max(2, chapters), concat=index % 2 == 0))
    for index in range(get("timelapse_videos", 0)):
        media.append(build.video(kind="TimeLapseVideo", chapters=1 + index % 2))
    media += [build.series("Burst", frames) for _ in range(get("bursts", 0))]
    media += [build.series("Continuous", frames) for _ in range(get("continuous", 0))]
    for index in range(get("timelapses", 0)):
        media.append(build.series("TimeLapse", frames, numbered_sources=index % 2 == 0))
    for index in range(get("renamed", 0)):
        name = RENAMED[index % len(RENAMED)]
        media.append(build.video(name=name) if name.endswith(".MP4") else build.photo(name))
    for index in range(get("unnamed", 0)):
        media.append(
            build.video(filename="")
            if index % 2
            else build.photo(f"GOPR{9000 + index:04d}.JPG", filename="")
        )
    for index in range(get("edits", 0)):
        kind = "MultiClipEdit" if index % 2 == 0 else "Edit"
        media.append(build.edit(kind, EDIT_TITLES[index % len(EDIT_TITLES)]))
    for index in range(get("unready", 0)):
        item = build.photo(f"GOPR{8000 + index:04d}.JPG") if index % 2 else build.video()
        media.append(item.with_state(UNREADY_STATES[index % len(UNREADY_STATES)]))
    media += [build.video(source=False, filename="") for _ in range(get("no_source", 0))]
    media += [build.video(prefix="GS", extension="360") for _ in range(get("unsupported", 0))]
    for index in range(get("oversize_photos", 0)):
        size = oversize(build.rng, GOOGLE_PHOTO_MAX_BYTES)
        media.append(build.photo(f"GOPR{7000 + index:04d}.JPG", size=size))
    for _ in range(get("oversize_videos", 0)):
        media.append(build.video(size=oversize(build.rng, GOOGLE_VIDEO_MAX_BYTES)))
    media.sort(key=lambda item: (item.captured_at, item.media_id))
    return media

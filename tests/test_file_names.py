"""A file name's extension reads as ``PurePosixPath``'s suffix would (without a path)."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from q2google.file_names import extension

NAMES = [
    "GOPR0001.JPG",
    "GX010042.MP4",
    "Ride.with.friends.Mp4",
    "a.tar.gz",
    ".hidden",
    "..jpg",
    "name.",
    "...",
    ".",
    "",
    "no_extension",
    "folder/clip.MP4",
    "clip.jpg/",
    "clip.jpg/.",
    "a/./",
    "Ünïcödé 😀.HEIC",
    "😀.😀",
]


@pytest.mark.parametrize("name", NAMES)
def test_an_extension_is_the_suffix_of_the_last_name_lower_case(name: str) -> None:
    assert extension(name) == PurePosixPath(name).suffix.lower().removeprefix(".")


def test_examples() -> None:
    assert extension("GX010042.MP4") == "mp4"
    assert extension(".hidden") == ""
    assert extension("Ünïcödé 😀.HEIC") == "heic"

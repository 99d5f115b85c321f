"""One media of the sandbox's GoPro library, as the cloud holds it: entries, originals, state."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime

from q2google.sandbox.assets import SandboxAsset, google_refusal

READY = "ready"
EDIT_TYPES = frozenset({"MultiClipEdit", "Edit"})
"""Media types that are edit projects made in the GoPro app, never camera originals."""
NOT_UPLOADED_STATES = frozenset({"uploading", "registered"})
"""Processing states in which the originals' bytes are not in the cloud yet."""


@dataclass(frozen=True)
class SandboxMedia:
    """One media row of the GoPro cloud library and its download answer.

    The ``files``, ``variations``, ``sidecars`` and ``sprites`` tuples are the entries of its
    ``/media/{id}/download`` answer, in the order listed; one asset may be in several (a
    photo's ``files[0]`` is its ``source`` variation). ``originals`` says which of them are
    the camera's files, in ``item_number`` order: the sandbox knows, the client must work it
    out from the answer.

    Attributes:
        media_id: GoPro media id.
        type: GoPro media type (``Photo``, ``Video``, ``Burst``, ``TimeLapse``...).
        filename: The ``filename`` the API gives (chapter 1's or frame 1's camera name, a name
            its owner chose, or ``""``); not unique across media.
        captured_at: Capture time (UTC).
        files: ``_embedded.files``: a photo, a video's 1080p proxy, a series' frames.
        variations: ``_embedded.variations``: sources, proxies, covers, ``concat``...
        originals: The camera originals (photo, every chapter, every frame), in order.
        sidecars: ``_embedded.sidecar_files`` (``gpmf``, ``raw_photo``, ``zip``).
        sprites: One asset per ``_embedded.sprites`` entry.
        ready_to_view: Processing state (``ready``, ``uploading``, ``transcoding``...).
        fps: Frame rate of its sidecars and sprites (a float, as the cloud sends it).
        camera_model: Camera that took it.
    """

    media_id: str
    type: str
    filename: str
    captured_at: datetime
    files: tuple[SandboxAsset, ...] = ()
    variations: tuple[SandboxAsset, ...] = ()
    originals: tuple[SandboxAsset, ...] = ()
    sidecars: tuple[SandboxAsset, ...] = ()
    sprites: tuple[SandboxAsset, ...] = ()
    ready_to_view: str = READY
    fps: float = 29.97003
    camera_model: str = "HERO11 Black"

    @property
    def is_edit(self) -> bool:
        """Whether it is an edit project (``MultiClipEdit``, ``Edit``), never delivered."""
        return self.type in EDIT_TYPES

    @property
    def is_ready(self) -> bool:
        """Whether its processing is done (``ready_to_view`` is ``ready``)."""
        return self.ready_to_view == READY

    @property
    def refused(self) -> tuple[SandboxAsset, ...]:
        """Its originals that Google Photos would refuse (type or size)."""
        return tuple(asset for asset in self.originals if google_refusal(asset) is not None)

    @property
    def deliverables(self) -> tuple[SandboxAsset, ...]:
        """The originals a correct sync delivers now: none while not ready, none refused."""
        if not self.is_ready or self.is_edit:
            return ()
        return tuple(asset for asset in self.originals if google_refusal(asset) is None)

    @property
    def file_size(self) -> int | None:
        """Size the search API reports: the sum of the originals (``None`` for edits)."""
        if self.is_edit or not self.originals:
            return None
        return sum(asset.size for asset in self.originals)

    @property
    def item_count(self) -> int:
        """Number of chapters or frames (1 for a single file, an edit, a broken media)."""
        return max(1, len(self.originals))

    @property
    def file_extension(self) -> str:
        """Lowercase extension the search reports (``json`` for edits)."""
        if self.is_edit:
            return "json"
        primary = self.originals[0] if self.originals else self.primary
        if primary is not None and primary.extension:
            return primary.extension
        return self.filename.rpartition(".")[2].lower() if "." in self.filename else ""

    @property
    def primary(self) -> SandboxAsset | None:
        """The asset whose dimensions the search reports (``None`` for edits)."""
        if self.is_edit:
            return None
        candidates = self.originals or self.files or self.variations
        return candidates[0] if candidates else None

    def assets(self) -> Iterator[SandboxAsset]:
        """Yield every asset of the media once, original or not."""
        seen: set[str] = set()
        for group in (self.files, self.variations, self.sidecars, self.sprites, self.originals):
            for asset in group:
                if asset.asset_id not in seen:
                    seen.add(asset.asset_id)
                    yield asset

    def with_state(self, state: str) -> SandboxMedia:
        """A copy in processing state ``state``, its entries' ``available`` flags to match.

        Originals are available unless still uploading (or registered); every other entry
        (proxies, covers, sidecars) once the media is ``ready``.
        """
        originals = {asset.asset_id for asset in self.originals}
        changed = {
            asset.asset_id: replace(
                asset,
                available=(
                    state not in NOT_UPLOADED_STATES
                    if asset.asset_id in originals
                    else state == READY
                ),
            )
            for asset in self.assets()
        }

        def swap(group: tuple[SandboxAsset, ...]) -> tuple[SandboxAsset, ...]:
            return tuple(changed[asset.asset_id] for asset in group)

        return replace(
            self,
            ready_to_view=state,
            files=swap(self.files),
            variations=swap(self.variations),
            originals=swap(self.originals),
            sidecars=swap(self.sidecars),
            sprites=swap(self.sprites),
        )

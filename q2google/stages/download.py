"""The GoPro side of the transfer: each file's CDN URL, and the GET of its bytes.

GoPro calls are spent sparingly. A photo described by its search row alone gets its URL (one
download-metadata call) right before its download; any other file uses the URL discovery
stored. A URL is resolved again only when the CDN refuses it (expired), and then once for all
the pending files of its media. A file's size comes from the CDN's answer to the GET that
starts its download: there is no HEAD.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import httpx

from q2google.gopro import GoProAnswerError, GoProFile, GoProSource, MediaGoneError, Verdict
from q2google.gopro.shapes import GONE_REASON, SINGLE_FILE_TYPES
from q2google.retry import (
    RETRYABLE_STATUSES,
    RetryableStatusError,
    RetryPolicy,
    parse_retry_after,
)
from q2google.stages.discovery import describe_late
from q2google.state import ItemState, SessionState, StageStatus
from q2google.state.base import ExclusionKind

logger = logging.getLogger(__name__)

OnAdded = Callable[[list[ItemState]], None]
"""Told of files a photo's download metadata revealed beside the one its row described."""
NO_SIZE = "the GoPro CDN gave no size for the file"


class CdnUrlExpiredError(Exception):
    """The CDN refused a signed URL (expired): resolve a new one through the GoPro API."""


class IncompleteBodyError(ConnectionError):
    """The CDN closed the body before ``Content-Length`` bytes: transient, read again."""


class PermanentItemError(Exception):
    """This item cannot be transferred (refused by Google, unreadable on the CDN)."""


class DescribedError(Exception):
    """A photo's download metadata, read at last, holds it back: recorded on the item as
    discovery would have recorded it (skipped, deferred, gone or failed)."""


class SetAsideError(Exception):
    """This item is held back on purpose: skipped, deferred or gone (not a failure).

    Attributes:
        kind: Skipped, deferred or gone.
        reason: One line for a person.
    """

    def __init__(self, kind: ExclusionKind, reason: str) -> None:
        super().__init__(reason)
        self.kind, self.reason = kind, reason


class CdnFiles:
    """Where the transfer gets each file's bytes: URLs from the GoPro API, bytes from its CDN.

    Args:
        source: The GoPro cloud.
        cdn: HTTP client for the CDN.
    """

    def __init__(self, source: GoProSource, cdn: httpx.AsyncClient) -> None:
        self.source = source
        self.cdn = cdn
        self._by_media: dict[str, list[ItemState]] = {}
        self._resolving: dict[str, asyncio.Lock] = {}
        self._on_added: OnAdded = lambda _: None

    def begin(self, pending: Sequence[ItemState], on_added: OnAdded) -> None:
        """Start a transfer run of ``pending`` files."""
        self._by_media, self._resolving, self._on_added = {}, {}, on_added
        several = {item.media_id for item in pending if item.file_index > 0}
        for item in pending:  # the files of media of several files, for their siblings
            if item.media_id in several:
                self._by_media.setdefault(item.media_id, []).append(item)

    def forget(self, item: ItemState) -> None:
        """Let go of a file whose transfer is over: only the files still to go are kept (for
        their media's siblings), so that a run's memory follows what is left to do."""
        siblings = self._by_media.get(item.media_id)
        if siblings is not None:
            siblings[:] = [other for other in siblings if other is not item]
            if siblings:
                return
            del self._by_media[item.media_id]
        self._resolving.pop(item.media_id, None)  # no file of it left to resolve

    async def first_bytes(
        self, state: SessionState, item: ItemState, policy: RetryPolicy
    ) -> tuple[httpx.Response, int]:
        """GET the file from byte 0 (retried under ``policy``) and its size, from the answer.

        Raises:
            PermanentItemError: The CDN did not tell the size.
        """
        got: httpx.Response = await policy.call("CDN download", lambda: self.open(state, item, 0))
        try:
            return got, int(got.headers["Content-Length"])
        except (KeyError, ValueError):
            await got.aclose()
            raise PermanentItemError(NO_SIZE) from None

    async def open(self, state: SessionState, item: ItemState, offset: int) -> httpx.Response:
        """GET the item's bytes from ``offset``, resolving a fresh URL once if it expired (or
        its host cannot be reached).

        Raises:
            CdnUrlExpiredError: The fresh URL was refused too.
            RetryableStatusError: The CDN answered 408, 429 or 5xx.
            PermanentItemError: The CDN no longer has the file, or ignores ``Range``.
            SetAsideError: The media is gone from the cloud.
        """
        for attempt in range(2):
            url = item.download_url
            assert url is not None
            request = self.cdn.build_request("GET", url, headers={"Range": f"bytes={offset}-"})
            try:
                got = await self.cdn.send(request, stream=True)
            except httpx.ConnectError:
                if attempt:
                    raise
                # A URL stored long ago may name a CDN host that is no more: ask for a fresh
                # one (one GoPro call) before the retries spend minutes on it.
                logger.debug("CDN host of %s unreachable; resolving the URL again", item.item_key)
                await self.refresh(state, item, url)
                continue
            if got.status_code == 403 and attempt == 0:
                await got.aclose()
                logger.debug("CDN URL of %s expired; resolving it again", item.item_key)
                await self.refresh(state, item, url)
                continue
            if got.status_code in (200, 206):
                if offset and got.status_code == 200:
                    await got.aclose()
                    raise PermanentItemError("the CDN ignores Range requests")
                return got
            await got.aclose()
            if got.status_code == 403:
                raise CdnUrlExpiredError
            if got.status_code == 404:
                await self.refresh(state, item, None)  # gone from the cloud: set aside as such
                raise PermanentItemError("the GoPro CDN no longer has the file")
            if got.status_code in RETRYABLE_STATUSES:
                raise RetryableStatusError(
                    "CDN download",
                    got.status_code,
                    parse_retry_after(got.headers.get("Retry-After")),
                )
            raise PermanentItemError(f"HTTP {got.status_code} from the CDN")
        raise CdnUrlExpiredError  # pragma: no cover - the loop returns or raises

    async def refresh(self, state: SessionState, item: ItemState, refused: str | None) -> None:
        """Resolve the item's URL, unless another file of its media just did (``refused``:
        the URL the CDN refused, when that is why).

        Raises:
            DescribedError: A photo is held back or failed (recorded on the item).
            SetAsideError: The media is gone, or the file not ready.
            PermanentItemError: The cloud no longer describes this file as deliverable.
        """
        async with self._resolving.setdefault(item.media_id, asyncio.Lock()):
            if refused is not None and item.download_url != refused:
                return  # fresh already: a file of the same media resolved them all
            await self._resolve(state, item)

    async def _resolve(self, state: SessionState, item: ItemState) -> None:
        """Fetch fresh signed URLs for the item and the other pending files of its media; a
        photo described by its search row alone is described now, as discovery would have."""
        late = item.download_url is None and item.media_type in SINGLE_FILE_TYPES
        try:
            files: list[GoProFile] | str = await self.source.files(item.media_id, item.media_type)
        except MediaGoneError:
            raise SetAsideError(ExclusionKind.GONE, GONE_REASON) from None
        except GoProAnswerError as error:
            if not late:
                raise PermanentItemError(str(error)) from None
            files = str(error)
        if late:
            self._on_added(describe_late(state, item, files))
            if item.exclusion is not None or item.discovery_status is not StageStatus.COMPLETED:
                raise DescribedError
            return
        assert not isinstance(files, str)
        entry = _same_file(files, item)
        if entry is None:
            raise SetAsideError(ExclusionKind.GONE, "the GoPro cloud no longer lists this file")
        if entry.verdict is Verdict.DEFER:
            raise SetAsideError(ExclusionKind.DEFERRED, entry.reason or "not ready yet")
        if entry.verdict is not Verdict.DELIVER or entry.url is None:
            raise PermanentItemError(entry.reason or "no longer deliverable")
        item.download_url = entry.url
        for other in self._by_media.get(item.media_id, ()):  # its media's other files
            fresh = _same_file(files, other) if other is not item else None
            waiting = other.transfer_status in (StageStatus.PENDING, StageStatus.RUNNING)
            if fresh is not None and fresh.url and other.download_url and waiting:
                other.download_url = fresh.url


async def cdn_file_size(cdn: httpx.AsyncClient, url: str, policy: RetryPolicy) -> int:
    """A CDN file's size, from a HEAD request, retried under ``policy`` (for ``--dry-run``;
    a transfer learns sizes from its GET).

    Raises:
        CdnUrlExpiredError: The CDN refused the signed URL.
    """

    async def head() -> int:
        answer = await cdn.head(url)
        if answer.status_code == 403:
            raise CdnUrlExpiredError
        if answer.status_code in RETRYABLE_STATUSES:
            raise RetryableStatusError(
                "CDN size check",
                answer.status_code,
                parse_retry_after(answer.headers.get("Retry-After")),
            )
        if answer.status_code == 404:
            raise PermanentItemError("the GoPro CDN no longer has the file")
        answer.raise_for_status()
        try:
            return int(answer.headers["Content-Length"])
        except (KeyError, ValueError):
            raise PermanentItemError(NO_SIZE) from None

    size: int = await policy.call("CDN size check", head)
    return size


def _same_file(files: list[GoProFile], item: ItemState) -> GoProFile | None:
    """The item's file in a fresh answer: by name (a chapter left out of the answer shifts
    the positions of the next ones), else by position."""
    named = [entry for entry in files if entry.file_name == item.file_name]
    if len(named) == 1:
        return named[0]
    return next((entry for entry in files if entry.file_index == item.file_index), None)

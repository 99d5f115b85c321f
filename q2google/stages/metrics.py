"""The counters of a run, updated as it goes; progress displays and summaries read them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from q2google.sessions import COMPLETED, DEFERRED, FAILED, GONE, SKIPPED, item_outcome
from q2google.state import SessionState, StageStatus
from q2google.state.base import ExclusionKind


@dataclass
class SyncTransferMetrics:
    """Counters of a run, updated as it goes; progress displays poll them.

    Attributes:
        stage: The stage running now (``discovery``, ``transfer``...), empty before.
        files_total: Files of the session to deliver, once discovery has found them (skipped
            and gone files are not counted).
        files_sent: Files whose bytes are in Google (uploaded, or already in the library).
        files_done: Files in Google Photos (created by this session or an earlier one).
        files_failed: Files that failed for good in this run.
        files_skipped: Files skipped on purpose (not originals, refused by Google's limits).
        files_deferred: Files waiting for the GoPro cloud to finish processing them.
        files_gone: Files deleted from the GoPro cloud after discovery.
        in_flight: File names being transferred now, by item key.
        bytes_downloaded: CDN bytes received in this run.
        bytes_uploaded: Bytes of files whose upload finished in this run.
        seconds_downloading: Time spent waiting on the CDN (summed over items).
        seconds_uploading: Time spent in uploads (summed over items).
        seconds_transfer_wall: Wall time of the transfer stage.
        bytes_to_send: Bytes of the files the transfer stage set out to send in this run
            (known sizes; a file of unknown size counts as the mean of the known ones), set
            when the stage starts; with ``bytes_downloaded`` it gives a bytes ETA.
        uploads_allowed: Files allowed in flight now (lowered on Google's per-minute 429s,
            raised again when answers are clean); ``None`` before the transfer.
        google_requests_today: Google Photos requests counted today (Pacific time, Google's
            day) by every session sharing this state; ``None`` when not metered.
        google_request_limit: The daily request limit the run stops at.
        google_quota_resets_at: When Google's daily quota resets (aware).
        google_requests_needed: About how many requests the session still needs.
        waiting_until: While ``--wait`` sleeps for the quota: when it goes on (aware).
        stages_entered: Every stage the run entered, in order, however short (a display
            that polls ``stage`` could miss one); appended to when ``stage`` changes.
    """

    stage: str = ""
    files_total: int = 0
    files_sent: int = 0
    files_done: int = 0
    files_failed: int = 0
    files_skipped: int = 0
    files_deferred: int = 0
    files_gone: int = 0
    in_flight: dict[str, str] = field(default_factory=dict)
    bytes_downloaded: int = 0
    bytes_uploaded: int = 0
    seconds_downloading: float = 0.0
    seconds_uploading: float = 0.0
    seconds_transfer_wall: float = 0.0
    bytes_to_send: int = 0
    uploads_allowed: int | None = None
    google_requests_today: int | None = None
    google_request_limit: int | None = None
    google_quota_resets_at: datetime | None = None
    google_requests_needed: int | None = None
    waiting_until: datetime | None = None
    stages_entered: list[str] = field(default_factory=list)

    def __setattr__(self, name: str, value: Any) -> None:
        """Set a counter; a new ``stage`` is also added to :attr:`stages_entered`."""
        if name == "stage" and value and value != self.__dict__.get("stage"):
            self.__dict__.setdefault("stages_entered", []).append(value)
        super().__setattr__(name, value)

    def count_aside(self, kind: ExclusionKind) -> None:
        """Count one more file held back on purpose."""
        if kind is ExclusionKind.SKIPPED:
            self.files_skipped += 1
        elif kind is ExclusionKind.DEFERRED:
            self.files_deferred += 1
        else:
            self.files_gone += 1

    def count(self, state: SessionState) -> None:
        """Recount the file counters from the session."""
        outcomes = [item_outcome(item) for item in state.items.values()]
        settled = len(state.settled)  # delivered, left out of memory
        self.files_total = settled + len(outcomes) - outcomes.count(SKIPPED) - outcomes.count(GONE)
        self.files_sent = settled + sum(
            item.create_status is StageStatus.COMPLETED
            or item.transfer_status is StageStatus.COMPLETED
            for item in state.items.values()
        )
        self.files_done = settled + outcomes.count(COMPLETED)
        self.files_failed = outcomes.count(FAILED)
        self.files_skipped = outcomes.count(SKIPPED)
        self.files_deferred = outcomes.count(DEFERRED)
        self.files_gone = outcomes.count(GONE)

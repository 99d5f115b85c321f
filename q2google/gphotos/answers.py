"""Reading Google's answers: error bodies, which 429 is the daily quota, which refusals blame
the album, which say the storage is full.

Google answers these with a 400 ``INVALID_ARGUMENT`` (or a per-item status) whose message alone
tells them apart; the wording matched here is the one real clients have recorded
(docs/sandbox.md lists the sources).
"""

from __future__ import annotations

from typing import Literal

import httpx

from q2google.gphotos.models import GoogleErrorBody


def error_body(response: httpx.Response) -> GoogleErrorBody:
    """Google's error object from a response, or one made from its status line."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        return GoogleErrorBody.model_validate({"code": response.status_code, **payload["error"]})
    return GoogleErrorBody(code=response.status_code, message=response.reason_phrase)


def is_daily_quota(error: GoogleErrorBody) -> bool:
    """Whether a 429 means a per-day quota (hours away), not a per-minute one.

    Google has worded it "Quota exceeded for quota metric 'All requests' and limit 'All
    requests per day'" and, in its error details, ``quota_limit: ApiCallsPerProjectPerDay``;
    per-minute limits say "per minute" or name a concurrency limit.
    """
    text = error.message.lower()
    limits = " ".join(
        str(detail.get("metadata", {}).get("quota_limit", "")) for detail in error.details
    ).lower()
    return "per day" in text or "perday" in limits or "per_day" in limits


def album_refusal(error: GoogleErrorBody) -> Literal["gone", "full"] | None:
    """Whether a refused batchCreate blames its album: deleted by the user, or full.

    Google answers both with 400 INVALID_ARGUMENT; only the message tells them apart.
    """
    if error.code not in (400, 404) and error.status not in ("INVALID_ARGUMENT", "NOT_FOUND"):
        return None
    text = error.message.lower()
    if "album" not in text:
        return None
    if any(word in text for word in ("full", "limit", "maximum", "capacity", "exceed")):
        return "full"
    if any(
        words in text
        for words in ("does not match any album", "invalid album", "album id", "not found")
    ):
        return "gone"  # Google: "The provided ID does not match any albums."
    return None


def is_storage_full(code: int, message: str) -> bool:
    """Whether an answer says the user's Google storage is full (no file can be added)."""
    text = message.lower()
    about_storage = "storage" in text or "space" in text
    return about_storage and any(
        word in text for word in ("full", "quota", "exceeded", "insufficient", "not enough")
    )

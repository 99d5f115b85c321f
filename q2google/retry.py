"""The one retry policy shared by the Google and the GoPro sides.

Retried: HTTP 408, 429 and 5xx, dropped connections and timeouts, with exponential backoff and
jitter, or exactly the server's ``Retry-After`` when it sends one; bounded in attempts and in
total time. Never retried: any other 4xx, and a daily quota that is exhausted (that stops the
run until the quota resets). Each retry is logged once, at debug level, naming the operation
and the cause but never a URL, header or token.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)

from q2google.errors import EXIT_TRY_LATER, QuotaExhaustedError, TryLaterError

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_POLICY",
    "EXIT_TRY_LATER",
    "RETRYABLE_STATUSES",
    "QuotaExhaustedError",
    "RetryPolicy",
    "RetryableStatusError",
    "TryLaterError",
    "describe",
    "is_transient",
    "parse_retry_after",
    "requested_delay",
]

RETRYABLE_STATUSES = frozenset({408, 429, *range(500, 600)})


class RetryableStatusError(Exception):
    """A response whose status says "try again" (408, 429, 5xx).

    Attributes:
        status: The HTTP status.
        retry_after: Seconds the server asked to wait, if it said.
        operation: What was being done, for messages.
    """

    def __init__(self, operation: str, status: int, retry_after: float | None = None) -> None:
        super().__init__(f"{operation}: HTTP {status}")
        self.operation, self.status, self.retry_after = operation, status, retry_after


def parse_retry_after(value: str | None) -> float | None:
    """Read a ``Retry-After`` header: delta seconds or an HTTP date; ``None`` if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def is_transient(error: BaseException) -> bool:
    """Whether trying the same request again can succeed."""
    if isinstance(error, RetryableStatusError):
        return True
    if isinstance(error, httpx.TransportError):  # connect/read/write errors, timeouts, drops
        return True
    if isinstance(error, TimeoutError | ConnectionError):
        return True
    try:
        import aiohttp
    except ImportError:  # pragma: no cover - aiohttp comes with gopro-api
        return False
    if isinstance(error, aiohttp.ClientResponseError):
        return error.status in RETRYABLE_STATUSES
    return isinstance(error, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError)


def requested_delay(error: BaseException | None) -> float | None:
    """The wait the server asked for with ``Retry-After``, if any."""
    if isinstance(error, RetryableStatusError):
        return error.retry_after
    try:
        import aiohttp
    except ImportError:  # pragma: no cover
        return None
    if isinstance(error, aiohttp.ClientResponseError) and error.headers is not None:
        return parse_retry_after(error.headers.get("Retry-After"))
    return None


def describe(error: BaseException | None) -> str:
    """A short cause for logs: the HTTP status or the exception type, never its text.

    Exception texts of HTTP libraries can carry URLs with signatures or upload ids.
    """
    if error is None:
        return "unknown"
    status = getattr(error, "status", None)
    return f"HTTP {status}" if isinstance(status, int) else type(error).__name__


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff with jitter, honouring ``Retry-After``, bounded by attempts and total time.

    Attributes:
        attempts: Tries in all, the first included.
        total_seconds: No retry is scheduled that would end after this much time, counted
            from the first failure (:meth:`call`).
        initial_seconds: First backoff.
        max_seconds: Longest backoff (a ``Retry-After`` may ask for longer, within the total).
        jitter_seconds: Random extra added to each backoff.
        sleep: The sleep function (tests replace it to observe delays).
    """

    attempts: int = 8
    total_seconds: float = 600.0
    initial_seconds: float = 0.5
    max_seconds: float = 30.0
    jitter_seconds: float = 1.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def retrying(self, operation: str) -> AsyncRetrying:
        """Return a tenacity loop for ``operation``: ``async for attempt in ...: with attempt:``."""
        backoff = wait_exponential_jitter(
            multiplier=self.initial_seconds, max=self.max_seconds, jitter=self.jitter_seconds
        )

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            asked = requested_delay(error)
            return asked if asked is not None else float(backoff(state))

        def log_retry(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            delay = state.next_action.sleep if state.next_action else 0.0
            logger.debug(
                "retrying %s in %.1f s after %s (attempt %d of %d)",
                operation,
                delay,
                describe(error),
                state.attempt_number,
                self.attempts,
            )

        return AsyncRetrying(
            stop=stop_after_attempt(self.attempts) | stop_before_delay(self.total_seconds),
            wait=wait,
            retry=retry_if_exception(is_transient),
            before_sleep=log_retry,
            sleep=self.sleep,
            reraise=True,
        )

    async def call(self, operation: str, function: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``function`` under this policy and return its result.

        The first try runs before tenacity's loop is set up: nearly every call succeeds at
        once, and the loop cost a small photo more CPU than its checkpoints. A failure the
        policy retries becomes the loop's first attempt (``total_seconds`` counts from it).
        """
        try:
            return await function()
        except Exception as error:
            if not is_transient(error):
                raise
            failed: Exception | None = error
        async for attempt in self.retrying(operation):
            with attempt:
                if failed is not None:
                    first, failed = failed, None
                    raise first
                return await function()
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover


DEFAULT_POLICY = RetryPolicy()

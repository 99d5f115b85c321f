"""Transient state-store errors are retried with backoff for a bounded time, then reported.

A MongoDB that is briefly unreachable, or a disk that is full for a moment, should not end a
run that can simply wait. :func:`retry_transient` runs one state-store operation again with
exponential backoff and jitter (tenacity) while its error is transient, for at most
``seconds``; the backends then turn a last transient error into
:class:`~q2google.errors.StateUnavailableError` (exit 75, "run the same command again once it
is back"). Anything else (a corrupt record, a refused password) is raised at once.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_before_delay,
    wait_exponential_jitter,
)

from q2google.errors import StateError, StateUnavailableError

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_RETRY_SECONDS = 60.0
"""How long a state store may stay unreachable before a run gives up with exit 75."""

TRANSIENT_ERRNOS = frozenset(
    code
    for code in (
        errno.ENOSPC,  # disk full: space may be freed
        getattr(errno, "EDQUOT", None),  # quota exceeded: likewise
        errno.EIO,  # an I/O error of a network or failing disk
        errno.EAGAIN,
        errno.EINTR,
        getattr(errno, "ESTALE", None),  # NFS
        errno.ETIMEDOUT,
    )
    if code is not None
)
"""``OSError`` numbers that trying again later can cure."""


def is_transient_os_error(error: BaseException | None) -> bool:
    """Whether ``error`` is an ``OSError`` that may pass (disk full, I/O error...)."""
    return isinstance(error, OSError) and error.errno in TRANSIENT_ERRNOS


def retry_transient(
    operation: Callable[[], T],
    *,
    transient: Callable[[BaseException], bool],
    seconds: float,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``operation``; while it fails transiently, run it again with backoff.

    Args:
        operation: The state-store call; it must be safe to repeat (every save is: its
            changes stay pending until it returns).
        transient: Whether an error may pass by itself.
        seconds: No new try starts after this long from the first failure; 0 tries once.
        what: What is being done, for the debug log.
        sleep: How to wait (tests pass a recorder).

    Returns:
        What ``operation`` returned.

    Raises:
        BaseException: The last error, as raised: a transient one once ``seconds`` are spent,
            any other at once.
    """

    def log(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        logger.debug(
            "state store: %s failed (%s), try %d again",
            what,
            type(error).__name__,
            state.attempt_number,
        )

    try:  # first outside tenacity: its loop cost more than the write it would wrap
        return operation()
    except Exception as error:
        if seconds <= 0 or not transient(error):
            raise
        failed: Exception | None = error

    def again() -> T:
        nonlocal failed
        if failed is not None:  # the failure above, as the loop's first attempt
            first, failed = failed, None
            raise first
        return operation()

    retrying = Retrying(
        retry=retry_if_exception(transient),
        stop=stop_before_delay(max(0.0, seconds)),
        wait=wait_exponential_jitter(multiplier=0.2, max=5.0, jitter=0.5),
        sleep=sleep,
        before_sleep=log,
        reraise=True,
    )
    return retrying(again)


def is_transient_disk_error(error: BaseException) -> bool:
    """A disk error that may pass (full, I/O), raised as is or as the cause of a read error."""
    return is_transient_os_error(error) or (
        isinstance(error, StateError) and is_transient_os_error(error.__cause__)
    )


def on_disk(
    operation: Callable[[], T],
    *,
    verb: str,
    session_id: str,
    where: str | os.PathLike[str],
    seconds: float,
    kind: type[StateError] = StateError,
) -> T:
    """Run a file operation of a session, retrying a full disk or an I/O error for ``seconds``.

    Args:
        operation: The operation (safe to repeat).
        verb: ``read`` or ``write``, for the message.
        session_id: The session, for the message.
        where: The state directory, for the message.
        seconds: How long to retry.
        kind: The error to raise for any other ``OSError``.

    Raises:
        StateUnavailableError: A transient error outlasted ``seconds`` (exit 75).
        StateError: Another ``OSError`` (as ``kind``), or what ``operation`` raised.
    """
    try:
        return retry_transient(
            operation,
            transient=is_transient_disk_error,
            seconds=seconds,
            what=f"{verb} {session_id}",
        )
    except (OSError, StateError) as error:
        if not is_transient_disk_error(error):
            if isinstance(error, StateError):
                raise
            raise kind(
                f"cannot {verb} session {session_id!r} under {where}: {error.strerror or error}"
            ) from error
        cause = error if isinstance(error, OSError) else error.__cause__
        reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else cause
        raise StateUnavailableError(
            f"the state store {where} is unusable ({reason}) after retrying for {seconds:g} s; "
            "progress up to the last checkpoint is saved: run the same command again once it is "
            "back"
        ) from error

"""Waiting out Google's daily quota (``sync --wait``), so a big library runs unattended.

A run stopped by the quota (the configured daily limit, or Google's own 429) saves its state
and, with ``--wait``, sleeps until the quota resets (midnight Pacific time, plus a margin:
Google's reset is not to the second), then goes on. The wait shows in the progress display as
a countdown; Ctrl-C ends it like any other run.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from q2google.clock import Clock
from q2google.errors import QuotaExhaustedError
from q2google.gphotos.quota import RequestMeter, in_words, quota_resets_at
from q2google.stages.metrics import SyncTransferMetrics

logger = logging.getLogger(__name__)

RESET_MARGIN = timedelta(minutes=5)
"""Waited past the reset before going on."""
WAIT_STEP_SECONDS = 60.0
"""The longest single sleep: the clock is looked at again after it (a laptop may suspend)."""


def quota_stop(error: QuotaExhaustedError, meter: RequestMeter | None) -> QuotaExhaustedError:
    """The one line to stop on: the meter's, with the requests used and the reset in the
    user's time (``error`` as it is for a client without a meter)."""
    return meter.exhausted_error() if meter is not None else error


async def wait_for_quota(
    error: QuotaExhaustedError, clock: Clock, metrics: SyncTransferMetrics
) -> None:
    """Sleep until the quota of ``error`` resets (and a margin), showing when it goes on.

    Args:
        error: The stop; its ``resets_at`` is when (the next Pacific midnight otherwise).
        clock: The clock slept on (tests move it).
        metrics: ``waiting_until`` is set meanwhile, for the progress display.
    """
    resets = error.resets_at or quota_resets_at(clock.now())
    until = resets + RESET_MARGIN
    metrics.waiting_until = until
    logger.info(
        "waiting for Google's daily quota to reset: going on at %s your time (in %s)",
        f"{until.astimezone():%Y-%m-%d %H:%M}",
        in_words((until - clock.now()).total_seconds()),
    )
    try:
        while (left := (until - clock.now()).total_seconds()) > 0:
            await clock.sleep(min(left, WAIT_STEP_SECONDS))
    finally:
        metrics.waiting_until = None
    logger.info("Google's daily quota has reset: going on")

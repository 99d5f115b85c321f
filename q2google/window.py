"""Capture windows: dates as people write them, the exact window a session keeps, and
whether a command names the same window as the session it resumes.

A window is half-open, ``[start, end)``. ``--start``/``--end`` take a date (midnight in the
time zone of ``--tz``, the local zone by default) or an ISO 8601 time, with or without an
offset (without one, it is a time in that zone too). A session without an end runs to the
start of each run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import NamedTuple, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from q2google.errors import Q2GoogleError
from q2google.state import SessionState


def time_zone(name: str | None) -> tzinfo | None:
    """The zone named ``name`` (IANA, such as ``Europe/Zurich``, or ``UTC``); ``None`` for the
    local zone.

    Raises:
        Q2GoogleError: No such zone (exit 2).
    """
    if not name:
        return None
    if name.upper() in ("UTC", "Z"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise Q2GoogleError(
            f"--tz {name!r} is not a time zone: use an IANA name such as Europe/Zurich, or UTC"
        ) from None


def parse_moment(text: str, what: str, zone: tzinfo | None = None) -> datetime:
    """Read a date or an ISO 8601 time as an aware datetime.

    Args:
        text: ``2024-03-01``, ``2024-03-01T12:00``, ``2024-03-01T12:00:00+02:00``, ``...Z``.
        what: The option, for the message (``--start``).
        zone: Where a date or a time without offset is read; ``None``: the local zone.

    Returns:
        The moment; a bare date is its midnight in ``zone``.

    Raises:
        Q2GoogleError: Not a date or a time (exit 2); the message names the option.
    """
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise Q2GoogleError(
            f"{what} {text!r} is not a date: use YYYY-MM-DD or an ISO 8601 time such as "
            "2024-03-01T12:00:00+02:00"
        ) from None
    if moment.tzinfo is not None:
        return moment
    if zone is None:
        return moment.astimezone()  # the local zone's offset on that very day
    return moment.replace(tzinfo=zone)


def utc_text(moment: datetime) -> str:
    """``moment`` in UTC as ISO 8601, as a session stores its window."""
    return moment.astimezone(UTC).isoformat()


class WindowFields(Protocol):
    """What a window is made of: a :class:`SessionState` has it, and so has :class:`WindowText`."""

    @property
    def start_date_iso(self) -> str:
        """Start of the window (ISO 8601)."""
        ...

    @property
    def end_date_iso(self) -> str:
        """End of the window (ISO 8601), exclusive."""
        ...

    @property
    def window_exact(self) -> bool:
        """Whether the window is exactly ``[start, end)``."""
        ...

    @property
    def open_end(self) -> bool:
        """Whether the window has no end."""
        ...


class WindowText(NamedTuple):
    """A window as stored in a session's metadata, without the rest of the session."""

    start_date_iso: str
    end_date_iso: str
    window_exact: bool
    open_end: bool


def window_bounds(state: WindowFields) -> tuple[datetime, datetime]:
    """The session's window ``[start, end)`` as aware UTC datetimes.

    Sessions made before windows were exact (``window_exact`` false) keep the window they
    were searched with then: from their start's day to the end of their end's day (UTC).
    """
    if state.window_exact:
        start = _aware(datetime.fromisoformat(state.start_date_iso))
        return start, _aware(datetime.fromisoformat(state.end_date_iso))
    # as searched then: the days written, in the offset stored with them, read as UTC days
    first = datetime.fromisoformat(state.start_date_iso).date()
    last = datetime.fromisoformat(state.end_date_iso).date()
    return _midnight(first), _midnight(last + timedelta(days=1))


def describe_window(state: WindowFields) -> dict[str, str]:
    """The window for people: ``start`` and ``end`` (``now`` for an open one), in UTC, the
    time left out at midnight."""
    start, end = window_bounds(state)
    return {"start": _short(start), "end": "now" if state.open_end else _short(end)}


@dataclass(frozen=True)
class WindowRequest:
    """What a command line asked for a session's window and album.

    Attributes:
        start: ``--start``, when given.
        end: ``--end``, when given.
        album: ``--album``, when given.
        written_start: ``--start`` as typed (compared by day with sessions made before
            windows were exact).
        written_end: ``--end`` as typed.
    """

    start: datetime | None = None
    end: datetime | None = None
    album: str | None = None
    written_start: str | None = None
    written_end: str | None = None


def differences(state: SessionState, asked: WindowRequest) -> list[str]:
    """What the command asks that differs from the stored session, one phrase each.

    A value not given is the stored one. For a session made before windows were exact,
    ``--start``/``--end`` are compared by the days they name (``--end`` was inclusive then).
    """
    found: list[str] = []
    start, end = window_bounds(state)
    if asked.start is not None and not _same_start(state, asked, start):
        found.append(
            f"--start {asked.written_start or asked.start.isoformat()} (stored: {_short(start)})"
        )
    if asked.end is not None and (state.open_end or not _same_end(state, asked, end)):
        stored = "no end" if state.open_end else _short(end)
        found.append(f"--end {asked.written_end or asked.end.isoformat()} (stored: {stored})")
    if asked.album is not None and asked.album != state.album_title:
        found.append(f"--album {asked.album!r} (stored: {state.album_title or 'none'!r})")
    return found


def widen(state: SessionState, asked: WindowRequest) -> None:
    """Widen the session's window to hold what ``asked`` names too.

    Raises:
        Q2GoogleError: The request would narrow the window or change the album (exit 2):
            ``--widen`` only widens.
    """
    if asked.album is not None and asked.album != state.album_title:
        raise Q2GoogleError(
            f"--widen cannot change the album of a session (stored: {state.album_title!r}); "
            "start another session for another album"
        )
    start, end = window_bounds(state)
    if asked.start is not None and asked.start > start:
        raise Q2GoogleError(
            f"--widen only widens: --start {asked.written_start} is after the stored start "
            f"{_short(start)}"
        )
    if asked.end is not None and (state.open_end or _ends_before(state, asked.end, end)):
        stored = "no end" if state.open_end else _short(end)
        raise Q2GoogleError(
            f"--widen only widens: --end {asked.written_end} is before the stored end ({stored})"
        )
    new_start = min(start, asked.start) if asked.start is not None else start
    new_end = max(end, asked.end) if asked.end is not None else end
    state.start_date_iso, state.end_date_iso = utc_text(new_start), utc_text(new_end)
    state.window_exact = True


def _same_start(state: SessionState, asked: WindowRequest, start: datetime) -> bool:
    assert asked.start is not None
    if state.window_exact:
        return asked.start == start
    return asked.start.date() == start.date()


def _same_end(state: SessionState, asked: WindowRequest, end: datetime) -> bool:
    assert asked.end is not None
    if state.window_exact:
        return asked.end == end
    return asked.end.date() == (end - timedelta(days=1)).date()


def _ends_before(state: SessionState, asked_end: datetime, end: datetime) -> bool:
    """Whether ``asked_end`` would narrow the window (by day for a session made before
    windows were exact, whose end day was inclusive)."""
    if state.window_exact:
        return asked_end < end
    return asked_end.date() < (end - timedelta(days=1)).date()


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def _short(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    if moment.time() == time():
        return moment.date().isoformat()
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")

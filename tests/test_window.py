"""Windows of sessions stored by the previous release: searched by the days they name."""

from __future__ import annotations

from datetime import UTC, datetime

from q2google.state import SessionState, new_session
from q2google.window import WindowRequest, differences, parse_moment, widen, window_bounds

OLD_START, OLD_END = "2024-03-01T00:00:00+02:00", "2024-03-31T23:00:00-05:00"


def old_session() -> SessionState:
    state = new_session("s", start_date_iso=OLD_START, end_date_iso=OLD_END, batch_size=50)
    state.window_exact = False  # as the previous release stored it
    return state


def asked(start: str, end: str) -> WindowRequest:
    return WindowRequest(
        start=parse_moment(start, "--start", UTC),
        end=parse_moment(end, "--end", UTC),
        written_start=start,
        written_end=end,
    )


def test_an_old_window_keeps_the_days_it_was_searched_with() -> None:
    state = old_session()
    assert window_bounds(state) == (
        datetime(2024, 3, 1, tzinfo=UTC),
        datetime(2024, 4, 1, tzinfo=UTC),
    )


def test_the_command_that_made_an_old_session_still_resumes_it() -> None:
    assert differences(old_session(), asked(OLD_START, OLD_END)) == []


def test_widen_compares_an_old_end_by_its_day() -> None:
    state = old_session()
    widen(state, asked("2024-02-01", "2024-03-31"))
    assert window_bounds(state) == (
        datetime(2024, 2, 1, tzinfo=UTC),
        datetime(2024, 4, 1, tzinfo=UTC),
    )

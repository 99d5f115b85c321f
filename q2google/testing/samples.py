"""Sample sessions for the contract suites: every field of every record set."""

from __future__ import annotations

from q2google.state import (
    BatchState,
    ErrorRecord,
    ItemState,
    SessionState,
    StageName,
    StageStatus,
    new_session,
)


def sample_session(session_id: str = "contract", *, items: int = 3) -> SessionState:
    """Return an unsaved session in which every field of every record has a non-default value.

    Args:
        session_id: Id of the session.
        items: How many items to put in it (a burst of three files comes first).

    Returns:
        A session with ``items`` items and two batches.
    """
    state = new_session(
        session_id,
        start_date_iso="2024-03-01T00:00:00+00:00",
        end_date_iso="2024-03-31T23:59:59+00:00",
        batch_size=25,
        album_title="Trips 2024",
    )
    state.album_id = "album-123"
    state.discovery_next_page = 4
    state.set_stage(StageName.DISCOVERY, StageStatus.COMPLETED)
    state.set_stage(StageName.TRANSFER, StageStatus.RUNNING)
    for number in range(items):
        media_id, file_index = (
            (f"burst{number // 3}", number % 3)
            if number < 3
            else (
                f"media{number:06d}",
                0,
            )
        )
        item = ItemState(
            media_id=media_id,
            file_index=file_index,
            file_name=f"GOPR{number % 10_000:04d}.JPG",
            media_type="Burst" if number < 3 else "Photo",
            captured_at=f"2024-03-{1 + number % 28:02d}T10:00:00Z",
            size_bytes=1_000_000 + number,
            download_url=f"https://cdn.example/{media_id}/{file_index}?sig=abc",
            discovery_status=StageStatus.COMPLETED,
            transfer_status=StageStatus.COMPLETED if number % 2 else StageStatus.FAILED,
            create_status=StageStatus.SKIPPED if number % 2 else StageStatus.PENDING,
            upload_url=f"https://upload.example/session/{number}",
            upload_offset=262_144 * (number % 5),
            upload_token=f"token-{number}",
            upload_token_created_at="2024-04-01T10:00:00.000+00:00",
            media_item_id=f"google-{number}",
            batch_index=number % 2,
            attempts=1 + number % 4,
        )
        item.record_error(
            ErrorRecord(
                stage=StageName.TRANSFER,
                message=f"HTTP 503 on try {number}",
                code="503",
                retryable=True,
            )
        )
        state.add_item(item)
    for index in range(2):
        state.add_batch(
            BatchState(
                batch_index=index,
                item_keys=tuple(state.items)[index::2][:50],
                status=StageStatus.COMPLETED if index == 0 else StageStatus.FAILED,
                responses=({"uploadToken": "token-0", "status": {"message": "Success"}},),
                error=None
                if index == 0
                else ErrorRecord(stage=StageName.CREATE, message="quota", code="429"),
                attempts=index + 1,
            )
        )
    return state

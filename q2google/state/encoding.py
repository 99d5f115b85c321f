"""The stored form of a session: its schema version, and the migration of older forms.

A backend stores :meth:`~q2google.state.SessionState.to_dict` (or its parts) and reads it back
with :meth:`~q2google.state.SessionState.from_dict`, which migrates what an older q2google
wrote (:func:`migrate_legacy`) and refuses what a newer one wrote.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from q2google.errors import StateCorruptError, StateError
from q2google.state.records import StageName, StageStatus, make_item_key, utc_now_iso

if TYPE_CHECKING:
    from q2google.state.session import SessionState

SCHEMA_VERSION = 2
"""Version of the stored form written by this q2google; older forms are migrated on load.

Version 1 is the original q2google's form (items keyed by file name); it is read and migrated.
"""


def refuse_other_session(stored: Mapping[str, Any], state: SessionState, where: str) -> None:
    """Refuse a whole-session save of ``state`` over a different session stored under its id.

    A stored session of an older schema is being migrated and is not refused.

    Args:
        stored: The stored session metadata.
        state: The session about to be written in full.
        where: Where it is stored, for the message.

    Raises:
        StateError: The stored session was created at another time: it is another session.
    """
    version = stored.get("schema_version", 1)
    if isinstance(version, int) and version < SCHEMA_VERSION:
        return
    if stored.get("created_at") != state.created_at:
        raise StateError(
            f"session {state.session_id!r} already exists in {where} (created "
            f"{stored.get('created_at')}); resume it or choose another session id"
        )


def migrate_legacy(data: Mapping[str, Any], *, default_batch_size: int = 50) -> dict[str, Any]:
    """Convert the original q2google's session form (schema 1: items keyed by file name).

    Items get keys from their media id and their file name's rank among that media's files
    (discovery matches them to GoPro's files again by media id and file name); ``file_names``
    of batches become ``item_keys`` and ``responses_json`` strings objects. Items and batches may be
    dicts (keyed by name or index) or lists; batches already in the current form are kept.

    Args:
        data: A stored session of schema version 1 or none.
        default_batch_size: Batch size to record when the old form has none.

    Returns:
        The same session in the current form.

    Raises:
        StateCorruptError: The data cannot be read as the old form either.
    """
    try:
        raw_items = data.get("items") or {}
        entries = list(raw_items.values()) if isinstance(raw_items, Mapping) else list(raw_items)
        # Deterministic whatever the storage order: indexes follow file names within a media.
        entries.sort(key=lambda entry: (str(entry.get("media_id") or ""), entry["file_name"]))
        per_media: dict[str, int] = {}
        key_by_name: dict[str, str] = {}
        items = []
        for entry in entries:
            media_id = entry.get("media_id") or "legacy"
            index = per_media.get(media_id, 0)
            per_media[media_id] = index + 1
            key = make_item_key(media_id, index)
            key_by_name[entry["file_name"]] = key
            errors = {}
            for stage, error in (entry.get("errors") or {}).items():
                message = error.get("message", str(error)) if isinstance(error, Mapping) else error
                errors[stage] = {"stage": stage, "message": str(message)}
            item = {
                "item_key": key,
                "media_id": media_id,
                "file_index": index,
                "file_name": entry["file_name"],
                "download_url": entry.get("download_url"),
                "upload_token": entry.get("upload_token"),
                "errors": errors,
            }
            for stage in StageName:
                status = entry.get(f"{stage.value}_status")
                if status is not None:
                    item[f"{stage.value}_status"] = status
            items.append(item)
        raw_batches = data.get("batches") or []
        if isinstance(raw_batches, Mapping):
            raw_batches = list(raw_batches.values())
        batches = []
        for batch in raw_batches:
            responses = batch.get("responses_json")
            error = batch.get("error")
            if "item_keys" in batch:  # written by an unfinished migration: current form
                batches.append(dict(batch))
                continue
            item_keys = [key_by_name[name] for name in batch.get("file_names") or []]
            batches.append(
                {
                    "batch_index": int(batch["batch_index"]),
                    "item_keys": item_keys,
                    "status": batch.get("status", StageStatus.PENDING),
                    "responses": None
                    if responses is None
                    else [
                        json.loads(text) if isinstance(text, str) else text for text in responses
                    ],
                    "error": None
                    if not error
                    else {"stage": StageName.CREATE, "message": str(error.get("message", error))},
                }
            )
    except (AttributeError, KeyError, TypeError, ValueError) as error:
        raise StateCorruptError(f"legacy session state is not readable: {error!r}") from None
    meta = {
        key: value
        for key, value in data.items()
        if key in ("session_id", "created_at", "updated_at", "start_date_iso", "end_date_iso")
        or key in ("batch_size", "stages", "album_title", "album_id")
    }
    meta.setdefault("batch_size", default_batch_size)
    for stamp in ("created_at", "updated_at"):
        if not meta.get(stamp):
            meta[stamp] = utc_now_iso()
    return {**meta, "schema_version": SCHEMA_VERSION, "items": items, "batches": batches}


def _refuse_newer(version: object) -> None:
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise StateCorruptError(
            f"schema version {version} was written by a newer q2google "
            f"(this one reads up to {SCHEMA_VERSION}); upgrade q2google"
        )

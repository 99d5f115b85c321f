"""Child process of the contract's crash test: save a session in a loop until killed.

Usage: ``python -m q2google.testing.save_loop '{"factory": "mod:fn", "kwargs": {...},
"session_id": "...", "items": 40}'``. It saves a session with every record's counter at 0,
prints ``ready``, then for n = 1, 2, ... sets every counter to n, saves, and prints ``n``
once the save has returned. Counters: ``ItemState.attempts``, ``BatchState.attempts`` and
``SessionState.discovery_next_page - 1``.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

from q2google.state import BatchState, ItemState, SyncStateBackend, new_session


def _build_backend(factory: str, kwargs: dict[str, Any]) -> SyncStateBackend:
    module_name, _, attribute = factory.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    backend: SyncStateBackend = target(**kwargs)
    return backend


def main(request_json: str) -> None:
    """Run the loop described by ``request_json`` forever (until the parent kills us)."""
    request = json.loads(request_json)
    backend = _build_backend(request["factory"], request["kwargs"])
    state = new_session(
        request["session_id"], start_date_iso="2024-01-01", end_date_iso="2024-01-31", batch_size=10
    )
    for index in range(request["items"]):
        state.add_item(ItemState(media_id=f"m{index}", file_name=f"GOPR{index:04d}.JPG"))
    state.add_batch(BatchState(batch_index=0, item_keys=tuple(state.items)[:10]))
    backend.save(state)
    print("ready", flush=True)
    counter = 0
    while True:
        counter += 1
        for item in state.items.values():
            item.attempts = counter
        state.batches[0].attempts = counter
        state.discovery_next_page = counter + 1
        backend.save(state)
        sys.stdout.write(f"{counter}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1])

"""The commands a MongoDB client sends, and the item documents it gets back, for tests that
count them."""

from __future__ import annotations

from pymongo import monitoring


class CommandNames(monitoring.CommandListener):
    """Records the name of every command sent (``find``, ``bulkWrite``...), in order."""

    def __init__(self) -> None:
        self.commands: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.commands.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


class ItemDocumentsRead(monitoring.CommandListener):
    """Counts the item documents the server sends back (``find`` and ``getMore`` on items)."""

    def __init__(self) -> None:
        self.count = 0
        self._items: set[int] = set()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if (event.command_name == "find" and event.command.get("find") == "items") or (
            event.command_name == "getMore" and event.command.get("collection") == "items"
        ):
            self._items.add(event.request_id)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        if event.request_id in self._items:
            cursor = event.reply.get("cursor", {})
            self.count += len(cursor.get("firstBatch", cursor.get("nextBatch", [])))

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


class BatchQueries(monitoring.CommandListener):
    """The filters of the ``find`` commands sent to ``batches``, in order."""

    def __init__(self) -> None:
        self.filters: list[dict[str, object]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find" and event.command.get("find") == "batches":
            self.filters.append(dict(event.command.get("filter", {})))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

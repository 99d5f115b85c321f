"""The commands a MongoDB client sends, for tests that count round trips."""

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

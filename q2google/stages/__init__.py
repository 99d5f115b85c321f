"""The pipeline's steps, one class each: discovery, transfer, create."""

from q2google.stages.create import CreateStage
from q2google.stages.discovery import DiscoveryStage
from q2google.stages.metrics import SyncTransferMetrics
from q2google.stages.transfer import TransferStage

__all__ = ["CreateStage", "DiscoveryStage", "SyncTransferMetrics", "TransferStage"]

"""Test helpers shipped with q2google, for its own tests and for authors of backends.

Requires pytest. The main piece is :class:`SyncStateBackendContract`, the conformance suite
that every state backend (JSON, MongoDB, your own) runs by subclassing it.
"""

from q2google.testing.clock import ManualClock
from q2google.testing.contract import BackendSpec, SyncStateBackendContract, sample_session

__all__ = ["BackendSpec", "ManualClock", "SyncStateBackendContract", "sample_session"]

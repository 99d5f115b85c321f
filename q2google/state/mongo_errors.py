"""MongoDB's errors as one line each, naming the server and never the URI (it may hold a
password), and how long an unreachable server is retried."""

from __future__ import annotations

from urllib.parse import urlsplit

from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

from q2google.errors import StateError, StateUnavailableError
from q2google.state.retrying import DEFAULT_RETRY_SECONDS


class MongoErrors:
    """Turn driver errors into one line naming the server, never the URI.

    Args:
        where: The server (host and port, no credentials).
        retry_seconds: How long an unreachable server was retried, for the message.
        doing: What failed (``read``, ``write``...), for the message.
        kind: The error to raise for a failure that is not a connection's.
    """

    def __init__(
        self, where: str, retry_seconds: float, doing: str, kind: type[StateError]
    ) -> None:
        self.where, self.retry_seconds, self.doing, self.kind = where, retry_seconds, doing, kind

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: object
    ) -> None:
        if error is None or not isinstance(error, PyMongoError):
            return
        where = self.where
        if isinstance(error, ConnectionFailure):
            raise StateUnavailableError(
                f"the state store is out of reach: MongoDB at {where} is unreachable "
                f"({type(error).__name__}, retried for {self.retry_seconds:g} s); "
                "progress up to the last checkpoint is saved: run the same command again once "
                "it is back"
            ) from None
        if isinstance(error, OperationFailure) and error.code in (13, 18):
            message = f"MongoDB at {where} refused the credentials in Q2GOOGLE_STATE_URI"
        else:
            message = f"MongoDB at {where}: {self.doing} failed ({type(error).__name__})"
        raise self.kind(message) from None


def uri_wait_seconds(query: dict[str, list[str]]) -> float:
    """How long to retry an unreachable server: the URI's ``serverSelectionTimeoutMS`` (the
    user's own bound on waiting for MongoDB) when it sets one, else the default."""
    for value in query.get("serverselectiontimeoutms", []):
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            break
    return DEFAULT_RETRY_SECONDS


def host_of(uri: str) -> str:
    """The host part of a MongoDB URI, without user or password."""
    netloc = urlsplit(uri).netloc
    return netloc.rpartition("@")[2] or "?"

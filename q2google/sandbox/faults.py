"""Faults the sandbox can inject, each with a seeded probability, and the counters it keeps."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, ClassVar

from q2google.sandbox.assets import parse_size


@dataclass(frozen=True)
class FaultConfig:
    """What can go wrong, and how often. All rates are probabilities per request (0 to 1).

    Attributes:
        seed: Seed of the fault dice, for reproducible runs.
        server_error_rate: Answer 503 instead of serving (every endpoint).
        rate_limit_rate: Answer 429 with ``Retry-After`` (every endpoint).
        rate_limit_burst: The first this many upload requests answer Google's per-minute 429,
            whatever the dice: a storm whose size a test can count on.
        retry_after_seconds: The ``Retry-After`` sent with a 429.
        reset_rate: Drop the connection midway through a CDN body or an upload chunk.
        cdn_url_ttl_seconds: Lifetime of signed CDN URLs.
        access_token_ttl_seconds: Lifetime of Google access tokens.
        upload_token_ttl_seconds: Lifetime of upload tokens (Google: one day).
        batch_item_failure_rate: Fail an item of batchCreate with a transient status.
        bandwidth_bytes_per_second: Per-connection cap for CDN and upload bodies.
        latency_seconds: Delay added before every answer.
        daily_quota_requests: Google API requests allowed a day before every further one is
            a 429 "quota exceeded" (the daily limit), or ``None`` for no limit. A day lasts
            until ``Sandbox.new_quota_day()``.
        gopro_token_ttl_seconds: Lifetime of GoPro access tokens, from their issue: the API
            (not the CDN) answers 401 once a token is older, or ``None`` for never.
        merge_identical: batchCreate answers a token whose bytes equal an existing item's with
            that item instead of a new one (off by default: Google often keeps duplicates).
        create_answer_loss_rate: A batchCreate call commits every item, then its answer is
            lost: half of such calls answer 503, the other half drop the connection.
        create_delay_seconds: batchCreate sleeps this long before committing.
        refused_names: File names batchCreate refuses for good (per-item code 3, every time).
        album_capacity: Items an album can hold; a call that would exceed it fails whole.
        storage_full: The user's Google storage is full: batchCreate fails whole (400).
    """

    seed: int = 0
    server_error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    rate_limit_burst: int = 0
    retry_after_seconds: int = 1
    reset_rate: float = 0.0
    cdn_url_ttl_seconds: float = 6 * 3600
    access_token_ttl_seconds: float = 3600
    upload_token_ttl_seconds: float = 86_400
    batch_item_failure_rate: float = 0.0
    bandwidth_bytes_per_second: int | None = None
    latency_seconds: float = 0.0
    daily_quota_requests: int | None = None
    gopro_token_ttl_seconds: float | None = None
    merge_identical: bool = False
    create_answer_loss_rate: float = 0.0
    create_delay_seconds: float = 0.0
    refused_names: tuple[str, ...] = ()
    album_capacity: int = 20_000
    storage_full: bool = False

    ALIASES: ClassVar[dict[str, str]] = {
        "5xx": "server_error_rate",
        "429": "rate_limit_rate",
        "429-burst": "rate_limit_burst",
        "retry-after": "retry_after_seconds",
        "reset": "reset_rate",
        "url-ttl": "cdn_url_ttl_seconds",
        "token-ttl": "access_token_ttl_seconds",
        "upload-token-ttl": "upload_token_ttl_seconds",
        "item-failure": "batch_item_failure_rate",
        "bandwidth": "bandwidth_bytes_per_second",
        "latency": "latency_seconds",
        "quota": "daily_quota_requests",
        "gopro-token-ttl": "gopro_token_ttl_seconds",
        "merge-identical": "merge_identical",
        "lost-create": "create_answer_loss_rate",
        "slow-create": "create_delay_seconds",
        "refuse": "refused_names",
        "album-cap": "album_capacity",
        "storage-full": "storage_full",
    }

    @classmethod
    def parse(cls, spec: str, *, base: FaultConfig | None = None) -> FaultConfig:
        """Parse ``5xx=0.1,429=0.05,reset=0.05,token-ttl=3,bandwidth=10MiB,seed=4``.

        Keys are the field names or the short aliases above. Switches (``merge-identical``,
        ``storage-full``) take ``1``/``0``/``true``/``false``; ``refuse`` takes file names
        separated by ``|`` (``refuse=GOPR0001.JPG|GX020042.MP4``).

        Raises:
            ValueError: An unknown key or a value of the wrong kind.
        """
        config = base or cls()
        known = {item.name: item for item in fields(cls)}
        changes: dict[str, Any] = {}
        for part in filter(None, (piece.strip() for piece in spec.split(","))):
            key, sep, value = part.partition("=")
            name = cls.ALIASES.get(key.strip(), key.strip().replace("-", "_"))
            if not sep or name not in known:
                raise ValueError(
                    f"fault {part!r}: expected key=value with a key among "
                    + ", ".join(sorted(cls.ALIASES))
                )
            try:
                changes[name] = _parse_value(name, value.strip())
            except ValueError:
                kind = "a switch (1, 0, true, false)" if name in _SWITCHES else "a number"
                raise ValueError(f"fault {part!r}: {value!r} is not {kind}") from None
        return replace(config, **changes)

    def as_dict(self) -> dict[str, Any]:
        """Return the configuration as plain data."""
        return asdict(self)


_OPTIONAL = frozenset(
    {"bandwidth_bytes_per_second", "daily_quota_requests", "gopro_token_ttl_seconds"}
)
_INTEGERS = frozenset(
    {"seed", "rate_limit_burst", "retry_after_seconds", "daily_quota_requests", "album_capacity"}
)
_SWITCHES = frozenset({"merge_identical", "storage_full"})
_TRUE, _FALSE = frozenset({"1", "true", "yes", "on"}), frozenset({"0", "false", "no", "off"})


def _parse_value(name: str, value: str) -> Any:
    """One fault value of field ``name``, from its text.

    Raises:
        ValueError: The text is not of the field's kind.
    """
    if value.lower() == "none" and name in _OPTIONAL:
        return None
    if name == "bandwidth_bytes_per_second":
        return parse_size(value)
    if name == "refused_names":
        return tuple(piece.strip() for piece in value.split("|") if piece.strip())
    if name in _SWITCHES:
        if value.lower() not in _TRUE | _FALSE:
            raise ValueError(value)
        return value.lower() in _TRUE
    if name in _INTEGERS:
        return int(value)
    return float(value)


@dataclass
class SandboxStats:
    """What the sandbox saw: requests per route, bytes, faults fired per kind.

    Attributes:
        requests: Requests per route group (``gopro``, ``cdn``, ``oauth``, ``uploads``,
            ``photos``), faults included.
        faults: Faults fired, per kind.
        gopro_calls: GoPro API requests that reached their route: ``search``, ``download``,
            ``other``.
        cdn_requests: GoPro CDN requests per HTTP method (``GET``, ``HEAD``), faults
            included (as in ``requests``).
        cdn_bytes_sent: Bytes the CDN sent, in all.
        cdn_bytes_by_label: CDN bytes per asset label (``source`` for originals,
            ``high_res_proxy_mp4``, ``mp4_low``, ``cover``, ``concat``, ``baked_source``...).
        cdn_bytes_by_asset: CDN bytes per asset id.
        upload_bytes_received: Bytes the Google upload endpoint received.
        upload_requests: Requests to the Google upload endpoint.
        google_calls: Library API requests that reached their route, per method
            (``batchCreate``, ``mediaItems.list``, ``mediaItems.search``, ``mediaItems.get``,
            ``albums.create``, ``albums.list``, ``albums.get``, ``albums.batchAddMediaItems``).
        created_per_create: Media items each batchCreate call created, in call order (0 for
            a call refused whole); merged answers (``merge-identical``) are not counted.
    """

    requests: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    gopro_calls: Counter[str] = field(default_factory=Counter)
    cdn_requests: Counter[str] = field(default_factory=Counter)
    cdn_bytes_sent: int = 0
    cdn_bytes_by_label: Counter[str] = field(default_factory=Counter)
    cdn_bytes_by_asset: Counter[str] = field(default_factory=Counter)
    upload_bytes_received: int = 0
    upload_requests: int = 0
    google_calls: Counter[str] = field(default_factory=Counter)
    created_per_create: list[int] = field(default_factory=list)

    def count_cdn(self, asset_id: str, label: str, size: int) -> None:
        """Count ``size`` bytes of asset ``asset_id`` (labelled ``label``) sent by the CDN."""
        self.cdn_bytes_sent += size
        self.cdn_bytes_by_label[label] += size
        self.cdn_bytes_by_asset[asset_id] += size

    def as_dict(self) -> dict[str, Any]:
        """Return the counters as plain data."""
        return {
            "requests": dict(self.requests),
            "faults": dict(self.faults),
            "gopro_calls": dict(self.gopro_calls),
            "cdn_requests": dict(self.cdn_requests),
            "cdn_bytes_sent": self.cdn_bytes_sent,
            "cdn_bytes_by_label": dict(self.cdn_bytes_by_label),
            "cdn_bytes_by_asset": dict(self.cdn_bytes_by_asset),
            "upload_bytes_received": self.upload_bytes_received,
            "upload_requests": self.upload_requests,
            "google_calls": dict(self.google_calls),
            "created_per_create": list(self.created_per_create),
        }


class FaultInjector:
    """Seeded dice for the configured faults; every fault that fires is counted."""

    def __init__(self, config: FaultConfig, stats: SandboxStats) -> None:
        self.stats = stats
        self.configure(config)

    def configure(self, config: FaultConfig) -> None:
        """Replace the configuration and reseed the dice."""
        self.config = config
        self._rng = random.Random(config.seed)
        self._burst_left = config.rate_limit_burst

    def roll(self, kind: str, rate: float) -> bool:
        """Return whether fault ``kind`` fires now (and count it when it does)."""
        if rate <= 0 or self._rng.random() >= rate:
            return False
        self.stats.faults[kind] += 1
        return True

    def in_burst(self, kind: str) -> bool:
        """Return whether this request is one of a configured burst of fault ``kind`` (and
        count it when it is); only ``429`` comes in bursts."""
        if kind != "429" or self._burst_left <= 0:
            return False
        self._burst_left -= 1
        self.stats.faults[kind] += 1
        return True

    def heads(self) -> bool:
        """A seeded coin: which way a fault goes when it can go two ways."""
        return self._rng.random() < 0.5

    def fraction(self) -> float:
        """A seeded number in [0.1, 0.9): where in a body a reset happens."""
        return 0.1 + 0.8 * self._rng.random()


class Throttle:
    """Keeps one connection's byte rate under the configured cap by sleeping."""

    def __init__(self, bytes_per_second: int | None) -> None:
        self.rate = bytes_per_second
        self.started = time.monotonic()
        self.moved = 0

    async def account(self, size: int) -> None:
        """Record ``size`` bytes moved and sleep until the rate allows more."""
        if not self.rate:
            return
        self.moved += size
        ahead = self.moved / self.rate - (time.monotonic() - self.started)
        if ahead > 0:
            await asyncio.sleep(ahead)

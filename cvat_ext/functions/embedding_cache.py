"""Image-embedding cache of the SAM functions: a per-worker LRU plus an optional shared Redis store.

Keys are the SHA-256 of the image **file bytes** as CVAT sends them (base64-decoded ``image``).
CVAT sends the stored original-quality frame file, so the same frame opened again, by another
annotator, or in another consensus replica job gives identical bytes and hits the cache without
decoding a pixel. Two encodings of the same pixels (a re-encoded ROI crop, a re-uploaded task)
are different keys: a miss costs one embedding, never a wrong answer.

Two levels:

* **local** — :class:`LruCache`, per worker process (``context.user_data``), bounded in bytes; the
  value is whatever is cheapest to answer from (the drop-in keeps the ready JSON body, the
  interactor keeps the embedding tensor on its device);
* **shared** — :class:`RedisStore` (CVAT's kvrocks or any Redis), enabled by
  ``CVAT_FUNCTIONS_REDIS_HOST`` / ``_PORT`` / ``_PASSWORD`` (the variables CVAT's deploy scripts pass
  to every function). It stores the raw little-endian float32 embedding bytes under
  ``<prefix>:<model key>:<sha256>`` with a TTL, so workers, replicas and both SAM functions with the
  same checkpoint share work. A failing Redis never fails a request: the error is logged, the
  store is skipped for ``retry_after_s``, and the function computes the embedding itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

from cvat_ext.errors import ConfigError

__all__ = [
    "CacheSource",
    "EmbeddingCache",
    "LruCache",
    "RedisStore",
    "SharedStore",
    "process_lru",
]

logger = logging.getLogger(__name__)

V = TypeVar("V")

ENV_REDIS_HOST = "CVAT_FUNCTIONS_REDIS_HOST"
ENV_REDIS_PORT = "CVAT_FUNCTIONS_REDIS_PORT"
ENV_REDIS_PASSWORD = "CVAT_FUNCTIONS_REDIS_PASSWORD"
#: seconds an entry lives in the shared store (default one day: a labelling session)
ENV_REDIS_TTL = "CVAT_EXT_SAM_REDIS_TTL_S"
DEFAULT_KEY_PREFIX = "cvat-ext:sam-embedding"
#: set by ``functions serve`` per served function: its workers (threads) share one local cache
ENV_LOCAL_CACHE_SCOPE = "CVAT_EXT_LOCAL_CACHE_SCOPE"


class CacheSource(StrEnum):
    """Where an answer came from."""

    LOCAL = "local"
    SHARED = "shared"
    COMPUTED = "computed"


class SharedStore(Protocol):
    """A byte store shared between workers: ``get`` returns None on a miss or on any failure."""

    def get(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: bytes) -> None: ...


class LruCache(Generic[V]):
    """Thread-safe LRU bounded by the summed ``sizeof(value)`` in bytes.

    A value larger than ``max_bytes`` is not stored. ``max_bytes=0`` disables the cache.
    """

    def __init__(self, max_bytes: int, sizeof: Callable[[V], int]) -> None:
        if max_bytes < 0:
            raise ConfigError(f"embedding cache: max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        self._sizeof = sizeof
        self._items: OrderedDict[str, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: str) -> bool:
        return key in self._items

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, key: str) -> V | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: str, value: V) -> None:
        size = int(self._sizeof(value))
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            if size > self.max_bytes:
                return
            self._items[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, evicted) = self._items.popitem(last=False)
                self._bytes -= evicted


_PROCESS_LRUS: dict[str, LruCache[Any]] = {}
_PROCESS_LRUS_LOCK = threading.Lock()


def process_lru(scope: str, max_bytes: int, sizeof: Callable[[Any], int]) -> LruCache[Any]:
    """The one :class:`LruCache` of ``scope`` in this process (created on first use).

    ``cvat-ext functions serve`` runs a function's workers as threads of one process and gives
    them one scope, so a frame embedded by one worker is a hit for the others (Nuclio's workers
    are processes: each keeps its own LRU and they share through Redis).
    """
    with _PROCESS_LRUS_LOCK:
        cache = _PROCESS_LRUS.get(scope)
        if cache is None:
            cache = _PROCESS_LRUS[scope] = LruCache(max_bytes, sizeof)
        return cache


@dataclass
class RedisStore:
    """:class:`SharedStore` on a redis-py client; errors are logged and read as misses.

    After a failure the store is skipped for ``retry_after_s`` so a dead Redis costs one timeout,
    not one per request. ``clock`` is injectable for tests.
    """

    client: Any
    ttl_s: int = 86_400
    retry_after_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    _down_until: float = field(default=0.0, init=False)
    errors: int = field(default=0, init=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> RedisStore | None:
        """The store configured by ``CVAT_FUNCTIONS_REDIS_*``, or None when no host is set."""
        host = environ.get(ENV_REDIS_HOST, "").strip()
        if not host:
            return None
        try:
            port = int(environ.get(ENV_REDIS_PORT, "6379") or "6379")
            ttl_s = int(environ.get(ENV_REDIS_TTL, "86400") or "86400")
        except ValueError as exc:
            raise ConfigError(f"embedding cache: {ENV_REDIS_PORT} / {ENV_REDIS_TTL} must be integers ({exc})") from exc
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        client = redis.Redis(
            host=host,
            port=port,
            password=environ.get(ENV_REDIS_PASSWORD) or None,
            socket_connect_timeout=1.0,
            socket_timeout=5.0,
            # no client-side retries: the store's own back-off decides when to try again
            retry=Retry(NoBackoff(), 0),
        )
        return cls(client, ttl_s=ttl_s)

    def _available(self) -> bool:
        return self.clock() >= self._down_until

    def _failed(self, action: str, exc: Exception) -> None:
        self.errors += 1
        self._down_until = self.clock() + self.retry_after_s
        logger.warning(
            "embedding cache: redis %s failed (%s: %s); skipping it for %.0f s",
            action,
            type(exc).__name__,
            exc,
            self.retry_after_s,
        )

    def get(self, key: str) -> bytes | None:
        if not self._available():
            return None
        try:
            value = self.client.get(key)
        except Exception as exc:  # redis.RedisError, OSError: the cache is an optimisation only
            self._failed("GET", exc)
            return None
        return bytes(value) if value is not None else None

    def set(self, key: str, value: bytes) -> None:
        if not self._available():
            return
        try:
            self.client.set(key, value, ex=self.ttl_s if self.ttl_s > 0 else None)
        except Exception as exc:
            self._failed("SET", exc)


@dataclass
class CacheStats:
    local_hits: int = 0
    shared_hits: int = 0
    computed: int = 0


class EmbeddingCache(Generic[V]):
    """Two-level cache ``image sha256 -> V``.

    ``model_key`` names the checkpoint (embeddings of different weights never mix);
    ``raw_nbytes`` the exact size of a valid shared value (a truncated or foreign value is
    ignored and recomputed).
    """

    def __init__(
        self,
        local: LruCache[V],
        *,
        model_key: str,
        shared: SharedStore | None = None,
        raw_nbytes: int | None = None,
        key_prefix: str = DEFAULT_KEY_PREFIX,
    ) -> None:
        self.local = local
        self.shared = shared
        self.model_key = model_key
        self.raw_nbytes = raw_nbytes
        self.key_prefix = key_prefix
        self.stats = CacheStats()

    def shared_key(self, digest: str) -> str:
        return f"{self.key_prefix}:{self.model_key}:{digest}"

    def get_local(self, digest: str) -> V | None:
        value = self.local.get(digest)
        if value is not None:
            self.stats.local_hits += 1
        return value

    def get_or_compute(
        self,
        digest: str,
        compute: Callable[[], tuple[V, bytes]],
        from_raw: Callable[[bytes], V],
    ) -> tuple[V, CacheSource]:
        """The value for ``digest``: local LRU, else shared store, else ``compute()``.

        ``compute`` returns ``(value, raw float32 bytes)``; the raw bytes go to the shared store.
        ``from_raw`` rebuilds a value from shared bytes.
        """
        value = self.get_local(digest)
        if value is not None:
            return value, CacheSource.LOCAL
        if self.shared is not None:
            raw = self.shared.get(self.shared_key(digest))
            if raw is not None and (self.raw_nbytes is None or len(raw) == self.raw_nbytes):
                value = from_raw(raw)
                self.local.put(digest, value)
                self.stats.shared_hits += 1
                return value, CacheSource.SHARED
            if raw is not None:
                logger.warning(
                    "embedding cache: ignoring shared value %s of %d bytes (expected %s)",
                    self.shared_key(digest),
                    len(raw),
                    self.raw_nbytes,
                )
        value, raw = compute()
        self.stats.computed += 1
        self.local.put(digest, value)
        if self.shared is not None:
            self.shared.set(self.shared_key(digest), raw)
        return value, CacheSource.COMPUTED

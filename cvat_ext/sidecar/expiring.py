"""A bounded cache of what the sidecar reads from CVAT: each value for at most ``ttl_s`` (None:
until evicted), at most ``max_entries`` values, the least recently used evicted first.

A long-running sidecar sees every task and job of its organizations over months; a plain dict of
them only grows. Expired entries are dropped when a value is stored, so one that is never asked
for again does not stay either.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ExpiringCache(Generic[K, V]):
    """``get`` / ``put`` by key, with an age limit and a size limit."""

    def __init__(self, *, ttl_s: float | None, clock: Callable[[], float], max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError(f"ExpiringCache: max_entries must be at least 1, got {max_entries}")
        self.ttl_s = ttl_s
        self.clock = clock
        self.max_entries = max_entries
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def _fresh(self, stamp: float, now: float) -> bool:
        return self.ttl_s is None or now - stamp < self.ttl_s

    def get(self, key: K) -> V | None:
        """The value stored under ``key`` if it is not older than ``ttl_s``, else None."""
        hit = self._entries.get(key)
        if hit is None or not self._fresh(hit[0], self.clock()):
            return None
        self._entries.move_to_end(key)
        return hit[1]

    def put(self, key: K, value: V) -> V:
        """Store ``value`` under ``key`` (now), drop the expired entries and then the least recently
        used beyond ``max_entries``; returns ``value``."""
        now = self.clock()
        self._entries[key] = (now, value)
        self._entries.move_to_end(key)
        if self.ttl_s is not None:
            # entries are in use order, and a use does not restamp: scan them all (a put is a CVAT call)
            for old in [k for k, (stamp, _) in self._entries.items() if not self._fresh(stamp, now)]:
                del self._entries[old]
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return value

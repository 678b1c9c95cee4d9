"""Self rate limiting of CVAT requests: a token bucket in front of every client the sidecar uses.

CVAT does not throttle authenticated users (contracts §6.9), so a sidecar catching up on a large
backlog (the first full listing, a reconciliation pass, many organizations) could load the
server as hard as it can answer. :class:`TokenBucket` refills ``rate_per_s`` tokens a second up
to ``burst``; every HTTP request takes one token. :class:`ThrottledClient` wraps a
:class:`~cvat_ext.cvat.client.CvatClient` (or any object with its ``calls`` counter): after
each method call it takes as many tokens as the call made requests (pages and retries count; a
call answered from the client's cache takes none), waiting while the bucket is in debt, so the
long-run rate holds for requests, not method calls, and at most ``burst`` requests go out
without a pause. Time is injected (``clock``, ``sleep``): tests never wait.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from types import GeneratorType
from typing import Any

from cvat_ext.errors import ConfigError


class TokenBucket:
    """``rate_per_s`` tokens a second, at most ``burst`` saved; ``rate_per_s`` 0 = unlimited.

    ``on_wait(seconds)`` is told about every wait (the throttled-time metric).
    """

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        on_wait: Callable[[float], None] = lambda s: None,
    ) -> None:
        if rate_per_s < 0 or burst < 1:
            raise ConfigError(f"rate limit: need rate_per_s >= 0 and burst >= 1, got {rate_per_s}, {burst}")
        self.rate_per_s = float(rate_per_s)
        self.burst = float(burst)
        self.clock = clock
        self.sleep = sleep
        self.on_wait = on_wait
        self.tokens = self.burst
        self.waited_s = 0.0
        self._at = clock()
        self._lock = threading.Lock()

    @property
    def unlimited(self) -> bool:
        return self.rate_per_s == 0

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self._at) * self.rate_per_s)
        self._at = now

    def take(self, n: float = 1.0) -> float:
        """Take ``n`` tokens (negative: give back), waiting while the bucket is in debt; returns the wait (s)."""
        if self.unlimited or n == 0:
            return 0.0
        with self._lock:
            self._refill()
            self.tokens = min(self.burst, self.tokens - n)
            if self.tokens >= 0:
                return 0.0
            wait = -self.tokens / self.rate_per_s
            self.sleep(wait)
            self._refill()
            self.waited_s += wait
        self.on_wait(wait)
        return wait


def _requests(client: Any) -> int:
    return int(sum(client.calls.values()))


class ThrottledClient:
    """A client whose public methods pass through ``bucket`` (see the module docstring).

    Attributes that are not methods (``calls``, ``url``, ``org``) are the wrapped client's.
    """

    def __init__(self, client: Any, bucket: TokenBucket) -> None:
        self._client = client
        self._bucket = bucket

    @property
    def wrapped(self) -> Any:
        return self._client

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name.startswith("_") or not callable(attr):
            return attr
        bucket, client = self._bucket, self._client

        def call(*args: Any, **kwargs: Any) -> Any:
            before = _requests(client)
            try:
                result = attr(*args, **kwargs)
            finally:
                bucket.take(_requests(client) - before)
            if isinstance(result, GeneratorType):
                return _metered(result, client, bucket)
            return result

        call.__name__ = name
        return call


def _metered(items: Iterator[Any], client: Any, bucket: TokenBucket) -> Iterator[Any]:
    """A lazy listing (``iter_jobs``): its page requests happen while iterating."""
    while True:
        before = _requests(client)
        try:
            item = next(items)
        except StopIteration:
            return
        finally:
            bucket.take(_requests(client) - before)
        yield item

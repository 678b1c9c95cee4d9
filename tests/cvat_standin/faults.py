"""Fault injection for the stand-in: make matching requests fail the way real networks and servers do.

Kinds:
* ``status``      answer ``status`` (e.g. 503) with a JSON ``{"detail"}`` body, without running the handler;
* ``retry_after`` answer 429 with ``Retry-After: <retry_after_s>``;
* ``timeout``     hold the response for ``delay_s`` seconds (bounded), then run the handler normally,
                  so a client with a shorter timeout gives up first;
* ``reset``       close the connection without any response.

Each rule fires ``times`` times, then retires. Rules are checked in the order they were added.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Literal

FaultKind = Literal["status", "timeout", "reset", "retry_after"]
MAX_DELAY_S = 30.0


@dataclass
class FaultRule:
    method: str | None
    path_regex: re.Pattern[str]
    kind: FaultKind
    status: int
    times: int
    retry_after_s: float
    delay_s: float
    fired: int = 0


class FaultInjector:
    """Thread-safe list of fault rules; the server asks :meth:`take` for every request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rules: list[FaultRule] = []

    def add(
        self,
        method: str | None,
        path_regex: str,
        kind: FaultKind,
        *,
        status: int = 503,
        times: int = 1,
        retry_after_s: float = 1.0,
        delay_s: float = 2.0,
    ) -> FaultRule:
        """Fail the next ``times`` requests whose method (None = any) and path (``re.search``) match."""
        if kind not in ("status", "timeout", "reset", "retry_after"):
            raise ValueError(f"unknown fault kind {kind!r}; expected status|timeout|reset|retry_after")
        if not 0 <= delay_s <= MAX_DELAY_S:
            raise ValueError(f"delay_s {delay_s} outside [0, {MAX_DELAY_S}]")
        rule = FaultRule(method.upper() if method else None, re.compile(path_regex), kind, status, times,
                         retry_after_s, delay_s)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def take(self, method: str, path: str) -> FaultRule | None:
        """The first live rule matching this request (its use is counted), or None."""
        with self._lock:
            for rule in self.rules:
                if rule.fired >= rule.times:
                    continue
                if rule.method is not None and rule.method != method:
                    continue
                if not rule.path_regex.search(path):
                    continue
                rule.fired += 1
                return rule
        return None

    @property
    def pending(self) -> int:
        """How many injected failures have not fired yet."""
        with self._lock:
            return sum(max(0, r.times - r.fired) for r in self.rules)

"""A kill -9 in the sidecar's tests: a hook that dies at a boundary, and the death itself.

A service built with ``hook=crash_at("issue:called")`` raises :class:`Crash` when its cycle reaches
that boundary (the names are ``<action kind>:<started|called|done>``, see ``sidecar.publish`` and ``sidecar.issues``).
:func:`die` runs that cycle, closes the service without releasing anything more (what a killed
process leaves behind) and moves the clock past the state store's lease, so the next service
takes over as a restarted replica would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import pytest


class Crash(BaseException):
    """A simulated kill -9 (BaseException: nothing in the service may swallow it)."""


class Clock:
    """A settable clock the services read (``clock()``) and sleep on (``clock.sleep(s)``)."""

    def __init__(self, t: float = 2_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


class _Service(Protocol):
    def run_once(self) -> Any: ...

    def close(self) -> None: ...


def crash_at(boundary: str | None, *, once: bool = False) -> Callable[[str], None]:
    """A hook raising :class:`Crash` at ``boundary`` (every time, or the first time with ``once``);
    ``None`` never crashes."""
    armed = [True]

    def hook(name: str) -> None:
        if name == boundary and armed[0]:
            armed[0] = not once
            raise Crash(name)

    return hook


def die(service: _Service, clock: Clock, lease_ttl_s: float) -> None:
    """One cycle of ``service`` that its hook kills, then the lease's expiry."""
    with pytest.raises(Crash):
        service.run_once()
    service.close()
    clock.t += lease_ttl_s + 1

"""A function's workers as Nuclio runs them: ``numWorkers`` contexts, each with its own model.

Nuclio starts ``numWorkers`` workers per function, runs ``init_context`` once in each and hands
every event to a free worker; an event that finds none free within
``workerAvailabilityTimeoutMilliseconds`` is refused with 503. :class:`WorkerPool` does the same
in-process: a context built per worker (at start, or on its first event when lazy), and a borrow
that waits at most the availability timeout. Waiting calls are served in arrival order (a freed
worker is handed to the oldest waiter): with a plain condition variable any waiter may win, and
under 50 clients the unlucky ones waited twice the median (p99 = 2 x p50 in bench/functions_load.py).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from cvat_ext.errors import ConfigError, FunctionUnavailableError

__all__ = ["WorkerPool"]

#: build_context(worker_id) -> a ready Nuclio context (init_context has run)
BuildContext = Callable[[int], Any]


class _Waiter:
    """One call waiting for a worker: ``worker_id`` is set, then ``ready``, by the releasing call."""

    __slots__ = ("ready", "worker_id")

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.worker_id: int | None = None


class WorkerPool:
    """``size`` worker contexts of one function; :meth:`borrow` lends a free one, first come first served."""

    def __init__(self, name: str, build_context: BuildContext, *, size: int, availability_timeout_s: float) -> None:
        if size < 1:
            raise ConfigError(f"function {name}: numWorkers must be >= 1, got {size}")
        self.name = name
        self.size = size
        self.availability_timeout_s = availability_timeout_s
        self._build_context = build_context
        self._contexts: dict[int, Any] = {}
        self._free: deque[int] = deque(range(size))
        self._waiters: deque[_Waiter] = deque()
        self._lock = threading.Lock()

    @property
    def busy(self) -> int:
        """Workers handling an event right now."""
        return self.size - len(self._free)

    def contexts(self) -> list[Any]:
        """The contexts built so far, by worker id (tests reach the models through them)."""
        return [self._contexts[i] for i in sorted(self._contexts)]

    def start(self) -> None:
        """Build every worker's context now (load the model ``size`` times, as Nuclio does)."""
        for worker_id in range(self.size):
            if worker_id not in self._contexts:
                self._contexts[worker_id] = self._build_context(worker_id)

    def _acquire(self) -> int:
        with self._lock:
            if self._free and not self._waiters:
                return self._free.popleft()
            waiter = _Waiter()
            self._waiters.append(waiter)
        if not waiter.ready.wait(self.availability_timeout_s):
            with self._lock:
                if waiter.worker_id is None:  # not handed a worker in the meantime
                    self._waiters.remove(waiter)
                    raise FunctionUnavailableError(
                        f"function {self.name}: no free worker within {self.availability_timeout_s:g} s "
                        f"(all {self.size} busy; raise numWorkers or workerAvailabilityTimeoutMilliseconds)"
                    )
        assert waiter.worker_id is not None
        return waiter.worker_id

    def _release(self, worker_id: int) -> None:
        with self._lock:
            if self._waiters:
                waiter = self._waiters.popleft()
                waiter.worker_id = worker_id
                waiter.ready.set()
            else:
                self._free.append(worker_id)

    @contextmanager
    def borrow(self) -> Iterator[Any]:
        """A free worker's context for one event; FunctionUnavailableError after the availability timeout."""
        worker_id = self._acquire()
        try:
            context = self._contexts.get(worker_id)
            if context is None:  # lazy: only this borrower holds worker_id, so no other builder races it
                context = self._contexts[worker_id] = self._build_context(worker_id)
            yield context
        finally:
            self._release(worker_id)

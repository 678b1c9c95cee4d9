"""A function's workers as Nuclio runs them: ``numWorkers`` contexts, each with its own model.

Nuclio starts ``numWorkers`` workers per function, runs ``init_context`` once in each and hands
every event to a free worker; an event that finds none free within
``workerAvailabilityTimeoutMilliseconds`` is refused with 503. :class:`WorkerPool` does the same
in-process: a FIFO of worker ids, a context built per worker (at start, or on its first event when
lazy), a borrow that waits at most the availability timeout.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from cvat_ext.errors import ConfigError, FunctionUnavailableError

__all__ = ["WorkerPool"]

#: build_context(worker_id) -> a ready Nuclio context (init_context has run)
BuildContext = Callable[[int], Any]


class WorkerPool:
    """``size`` worker contexts of one function; :meth:`borrow` lends a free one."""

    def __init__(self, name: str, build_context: BuildContext, *, size: int, availability_timeout_s: float) -> None:
        if size < 1:
            raise ConfigError(f"function {name}: numWorkers must be >= 1, got {size}")
        self.name = name
        self.size = size
        self.availability_timeout_s = availability_timeout_s
        self._build_context = build_context
        self._contexts: dict[int, Any] = {}
        self._idle: queue.Queue[int] = queue.Queue()
        for worker_id in range(size):
            self._idle.put(worker_id)
        self._busy = 0
        self._lock = threading.Lock()

    @property
    def busy(self) -> int:
        """Workers handling an event right now."""
        return self._busy

    def contexts(self) -> list[Any]:
        """The contexts built so far, by worker id (tests reach the models through them)."""
        return [self._contexts[i] for i in sorted(self._contexts)]

    def start(self) -> None:
        """Build every worker's context now (load the model ``size`` times, as Nuclio does)."""
        for worker_id in range(self.size):
            if worker_id not in self._contexts:
                self._contexts[worker_id] = self._build_context(worker_id)

    @contextmanager
    def borrow(self) -> Iterator[Any]:
        """A free worker's context for one event; FunctionUnavailableError after the availability timeout."""
        try:
            worker_id = self._idle.get(timeout=self.availability_timeout_s)
        except queue.Empty:
            raise FunctionUnavailableError(
                f"function {self.name}: no free worker within {self.availability_timeout_s:g} s "
                f"(all {self.size} busy; raise numWorkers or workerAvailabilityTimeoutMilliseconds)"
            ) from None
        with self._lock:
            self._busy += 1
        try:
            context = self._contexts.get(worker_id)
            if context is None:  # lazy: only this borrower holds worker_id, so no other builder races it
                context = self._contexts[worker_id] = self._build_context(worker_id)
            yield context
        finally:
            with self._lock:
                self._busy -= 1
            self._idle.put(worker_id)

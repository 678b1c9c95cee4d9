"""SAM prefetch: when a job starts, warm the SAM function's embedding cache with its frames.

A job entering ``prefetch.stages`` x ``prefetch.states`` (``annotation`` / ``in progress``: an
annotator opened it) is seen by the change feed; the cycle then hands it here. Its first
``prefetch.max_frames`` frames are read at original quality through the CVAT client (one
``GET /api/jobs/{id}/data?type=frame`` each, streamed: one batch in memory) and POSTed to the
function as the bodies of :func:`cvat_ext.functions.sam.prefetch_bodies`
(``{"prefetch": [<base64 file>...]}``), so the annotator's first click finds the embedding ready.

The long-running service prefetches in a background thread (:meth:`Prefetcher.start`, with a
client of its own: clients are not thread-safe; the same rate limit), so a slow or unreachable
function never delays a QA cycle; ``--once`` and tests prefetch inline at the end of the cycle.

Replicas and their parent share frames, so the record is per frame range of a task
(``prefetch:<task>:<start>-<stop>`` in the state store's ``units``): each range is prefetched
once, by whichever job of it starts first. Failures (CVAT, the function, the network) are logged
and counted in ``cvat_ext_sidecar_prefetch_jobs_total{result="failed"}``; they never fail the
cycle, and the range is tried again the next time one of its jobs changes.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from cvat_ext.cvat.records import Job
from cvat_ext.errors import CvatExtError
from cvat_ext.sidecar.config import PrefetchSettings
from cvat_ext.sidecar.interface import CvatApi
from cvat_ext.sidecar.metrics import SidecarMetrics
from cvat_ext.sidecar.state import StateStore

log = logging.getLogger(__name__)

#: ``post(body)`` sends one prefetch body to the function (raises OSError on failure)
Post = Callable[[dict[str, Any]], None]


def http_post(settings: PrefetchSettings) -> Post:
    """POST JSON to ``settings.function_url`` (with the Nuclio dashboard headers when
    ``function_name`` is set); any non-2xx answer raises (urllib's HTTPError is an OSError)."""
    headers = {"Content-Type": "application/json"}
    if settings.function_name:
        headers.update({"x-nuclio-function-name": settings.function_name, "x-nuclio-path": "/"})
        headers["x-nuclio-project-name"] = "cvat"

    def post(body: dict[str, Any]) -> None:
        data = json.dumps(body).encode("utf-8")
        req = urllib.request.Request(settings.function_url, data=data, headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=settings.timeout_s) as resp:
            resp.read()

    return post


class Prefetcher:
    """Prefetches the frames of jobs that just started; see the module docstring."""

    def __init__(
        self,
        settings: PrefetchSettings,
        client: CvatApi,
        store: StateStore,
        metrics: SidecarMetrics,
        *,
        post: Post | None = None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.store = store
        self.metrics = metrics
        self.post = post if post is not None else http_post(settings)
        self._queue: queue.Queue[Job | None] | None = None
        self._thread: threading.Thread | None = None
        self._inline_client = client

    # --- background mode ------------------------------------------------------------------------
    def start(self, client: CvatApi | None = None) -> None:
        """From now on, :meth:`submit` queues jobs for a worker thread using ``client``."""
        self._inline_client = self.client
        if client is not None:
            self.client = client
        self._queue = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="sidecar-prefetch", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the worker after the job it is on (queued jobs are dropped: they were not recorded
        as done, so they are prefetched when they change again)."""
        if self._queue is None or self._thread is None:
            return
        while True:
            try:
                self._queue.get_nowait()
                self._queue.task_done()
            except queue.Empty:
                break
        self._queue.put(None)
        self._thread.join(timeout=timeout_s)
        self._queue, self._thread = None, None
        self.client = self._inline_client

    def drain(self) -> None:
        """Wait until the worker finished every queued job (no-op inline)."""
        if self._queue is not None:
            self._queue.join()

    def _work(self) -> None:
        assert self._queue is not None
        q = self._queue
        while True:
            job = q.get()
            try:
                if job is None:
                    return
                self.run([job])
            except Exception:  # the worker must outlive anything one job does (a state store hiccup)
                log.exception("SAM prefetch worker: job %s failed", getattr(job, "id", "?"))
            finally:
                q.task_done()

    def submit(self, jobs: Iterable[Job]) -> None:
        """Prefetch the started ones among ``jobs``: inline, or queued for the worker after :meth:`start`."""
        wanted = sorted((j for j in jobs if self.wanted(j)), key=lambda j: j.id)
        if self._queue is None:
            self.run(wanted)
            return
        for job in wanted:
            self._queue.put(job)

    def wanted(self, job: Job) -> bool:
        s = self.settings
        return job.type in ("annotation", "consensus_replica") and job.stage in s.stages and job.state in s.states

    @staticmethod
    def key(job: Job) -> str:
        return f"prefetch:{job.task_id}:{job.start_frame}-{job.stop_frame}"

    def run(self, jobs: Iterable[Job]) -> int:
        """Prefetch every started job not yet done; returns the frames sent. Never raises a CVAT
        or network error."""
        sent = 0
        for job in sorted((j for j in jobs if self.wanted(j)), key=lambda j: j.id):
            key = self.key(job)
            if self.store.unit_signature(key) is not None:
                continue  # this frame range was prefetched before
            try:
                frames = self._prefetch(job)
            except (CvatExtError, OSError, ValueError) as exc:
                self.metrics.prefetch.labels(result="failed").inc()
                log.warning("job %d: SAM prefetch failed (tried again when the job changes): %s", job.id, exc)
                continue
            self.store.set_unit_signature(key, f"done:{frames}", job.task_id)
            self.metrics.prefetch.labels(result="done").inc()
            self.metrics.prefetch_frames.inc(frames)
            log.info("job %d: SAM prefetch of %d frames done", job.id, frames)
            sent += frames
        return sent

    def _prefetch(self, job: Job) -> int:
        from cvat_ext.functions.sam import prefetch_bodies  # numpy + pydantic only, no torch

        last = min(job.stop_frame, job.start_frame + self.settings.max_frames - 1)
        frames = range(job.start_frame, last + 1)
        sent = 0

        def files() -> Iterator[bytes]:
            for frame_idx in frames:
                yield self.client.get_frame(job.id, frame_idx, quality="original")

        for body in prefetch_bodies(files(), batch=self.settings.batch):
            self.post(body)
            sent += len(body["prefetch"])
        return sent

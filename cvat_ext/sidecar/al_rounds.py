"""Scheduled active-learning rounds: the sidecar starts the next round when the last one is labelled.

For each ``active_learning.rounds`` entry of the cycle's organization, once per cycle:

* no round yet, or the last round's jobs (its task's annotation jobs, or replicas; the GT job in
  ``gt`` mode) are all ``completed`` → the next round runs
  (:func:`cvat_ext.active_learning.round.run_round`, the same code as ``cvat-ext al round``);
* a round whose plan is saved but not yet all in CVAT (a crash, CVAT down) → it is resumed;
* otherwise, or after ``max_rounds``, nothing happens.

The long-running service runs the rounds in a worker thread with a client of its own
(:meth:`RoundScheduler.start`), so a round over a large pool never holds up a QA cycle; ``--once``
and tests run them inline. A failure (the function down, CVAT errors, an exhausted pool) is logged
and counted in
``cvat_ext_sidecar_al_rounds_total{result="failed"}`` and never fails the QA cycle; the next cycle
tries again. Started rounds count as ``result="started"``, cycles that wait as ``"waiting"``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from cvat_ext.active_learning.predictors import FunctionPredictor, project_label_ids
from cvat_ext.active_learning.round import RoundParams, RoundRecord, list_rounds, run_round, user_ids
from cvat_ext.errors import CvatExtError
from cvat_ext.sidecar.config import ScheduledRound
from cvat_ext.sidecar.metrics import SidecarMetrics
from cvat_ext.sidecar.state import StateStore

log = logging.getLogger(__name__)


def _done_labelling(client: Any, rec: RoundRecord) -> bool:
    jobs = {j.id: j for j in client.list_jobs(task_id=rec.task_id)} if rec.task_id is not None else {}
    return bool(rec.job_ids) and all(j in jobs and jobs[j].state == "completed" for j in rec.job_ids)


class RoundScheduler:
    """Runs the organization's scheduled rounds; :meth:`step` is called once per cycle."""

    def __init__(self, specs: Sequence[ScheduledRound], client: Any, store: StateStore, metrics: SidecarMetrics,
                 *, owner: str, now_iso: Callable[[], str] | None = None) -> None:
        self.specs = tuple(specs)
        self.client = client
        self.store = store
        self.metrics = metrics
        self.owner = owner
        self.now_iso = now_iso or (lambda: datetime.now(UTC).isoformat(timespec="seconds"))
        self._thread: threading.Thread | None = None
        self._inline_client: Any = client
        self._wake = threading.Event()
        self._halt = threading.Event()

    def due(self, spec: ScheduledRound) -> bool:
        rounds = list_rounds(self.store, project_id=spec.project_id, pool_task_id=spec.pool_task_id)
        if any(r.status != "done" for r in rounds):
            return True  # resume
        if spec.max_rounds is not None and len(rounds) >= spec.max_rounds:
            return False
        return not rounds or _done_labelling(self.client, rounds[-1])

    def _params(self, spec: ScheduledRound) -> RoundParams:
        ids = user_ids(self.client, spec.assignees, where=f"active_learning round of pool task {spec.pool_task_id}")
        return RoundParams(project_id=spec.project_id, pool_task_id=spec.pool_task_id, batch=spec.batch,
                           mode=spec.mode, candidates=spec.candidates, diversity=spec.diversity,
                           nms_window=spec.nms_window, segment_size=spec.segment_size,
                           consensus_replicas=spec.replicas, assignee_ids=ids)

    # --- background mode (the long-running service): rounds never hold up a QA cycle ----------
    def start(self, client: Any) -> None:
        """From now on :meth:`step` only wakes a worker thread that runs the due rounds with ``client``
        (a client of its own: clients are not thread-safe)."""
        self._inline_client, self.client = self.client, client
        self._wake, self._halt = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._work, name="sidecar-al-rounds", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the worker after the round it is on (an interrupted round is resumed next time)."""
        if self._thread is None:
            return
        self._halt.set()
        self._wake.set()
        self._thread.join(timeout=timeout_s)
        self._thread = None
        self.client = self._inline_client

    def _work(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._halt.is_set():
                return
            try:
                self.run_due()
            except Exception:  # a worker that dies silently would stop the loop for good
                log.exception("active-learning rounds: unexpected error; retried at the next cycle")

    def step(self) -> list[RoundRecord]:
        """Once per cycle: run the due rounds now, or (background mode) wake the worker to run them."""
        if self._thread is not None:
            self._wake.set()
            return []
        return self.run_due()

    def run_due(self) -> list[RoundRecord]:
        started = []
        for spec in self.specs:
            where = f"active-learning rounds of pool task {spec.pool_task_id}"
            try:
                if not self.due(spec):
                    self.metrics.al_rounds.labels(result="waiting").inc()
                    continue
                predictor = FunctionPredictor(spec.function_url, function_name=spec.function_name or None,
                                              threshold=spec.threshold,
                                              label_ids=project_label_ids(self.client, spec.project_id))
                rec = run_round(self.client, self.store, self._params(spec), predictor, owner=self.owner,
                                now_iso=self.now_iso)
            except CvatExtError as exc:
                self.metrics.al_rounds.labels(result="failed").inc()
                log.warning("%s: round not started (next cycle retries): %s", where, exc)
                continue
            self.metrics.al_rounds.labels(result="started").inc()
            log.info("%s: round %d sent %d frames to task %s", where, rec.number, len(rec.picks), rec.task_id)
            started.append(rec)
        return started

"""People, not jobs: each annotator's fitted consensus model pooled across the jobs they do.

The consensus engine fits, per annotator, a model (recall, spurious rate, label confusion,
localisation noise per shape family and size, evidence counts) from one parent job's replicas,
starting from a prior. The sidecar keeps the posterior in the state store per pooling scope
(``project:<id>``, or ``task:<id>`` for a task outside projects or with ``pool_scope: task``) and
CVAT user id (the replica's assignee), and hands it back as the prior of that person's next job in
the same scope. A person renamed in CVAT keeps their pool; the latest username is what people read.

A job is folded in once: scoring it again (a replica changed, or a cycle replayed after a crash
between the fit and the unit's signature) starts again from the prior it was first fitted from,
so its evidence replaces itself instead of counting twice (:meth:`StateStore.pooled_prior`).
Unassigned replicas (``job<ID>``) are not pooled: no person to pool them under.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from cvat_ext.sidecar.state import JobRow, Person, StateStore

log = logging.getLogger(__name__)


def pool_scope(setting: str, job: JobRow) -> str | None:
    """The pooling scope of a parent job under ``consensus.pool_scope`` (None: pooling off)."""
    if setting == "off":
        return None
    if setting == "project" and job.project_id is not None:
        return f"project:{job.project_id}"
    return f"task:{job.task_id}"


class AnnotatorPool:
    """Priors for, and posteriors from, one parent job's fit, for the annotators who are people."""

    def __init__(self, store: StateStore, scope: str | None, parent_job_id: int,
                 people: Mapping[str, Person]) -> None:
        """``people``: annotator name -> the CVAT user, for the replicas that have an assignee."""
        self.store = store
        self.scope = scope
        self.parent_job_id = parent_job_id
        self.people = dict(people)
        self._priors: dict[str, dict[str, Any] | None] = {}

    def priors(self) -> dict[str, dict[str, Any]]:
        """Annotator name -> the prior model to fit from (names without history are left out)."""
        if self.scope is None:
            return {}
        self._priors = {
            name: self.store.pooled_prior(self.scope, person, self.parent_job_id)
            for name, person in self.people.items()
        }
        return {name: model for name, model in self._priors.items() if model is not None}

    def fold(self, models: Mapping[str, Mapping[str, Any]]) -> list[str]:
        """Keep the posteriors the fit produced (annotator name -> model); returns the usernames kept."""
        if self.scope is None:
            return []
        folds = [(self.people[name], self._priors.get(name), dict(model))
                 for name, model in models.items() if name in self.people]
        self.store.fold_models(self.scope, self.parent_job_id, folds)  # all of the job's annotators, or none
        kept = [person.username for person, _, _ in folds]
        if kept:
            log.info("job %d: pooled models of %s in %s", self.parent_job_id, ", ".join(sorted(kept)), self.scope)
        return kept


def people_of(names: Sequence[str], replicas: Sequence[JobRow]) -> dict[str, Person]:
    """Annotator name -> the CVAT user (id, username) of each assigned replica (``names`` in the
    replicas' order)."""
    return {n: Person(r.assignee_id, r.assignee_username) for n, r in zip(names, replicas, strict=True)
            if r.assignee_id is not None and r.assignee_username}

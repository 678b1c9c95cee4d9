"""People, not jobs (issue 11): annotators named by CVAT username wherever a person reads them,
their fitted models pooled across jobs (once per job, crash or not), and the task's accepted GT
job handed to the consensus engine. Against the CVAT stand-in, with the real cvat-sdk client."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from cvat_ext.annotations.model import JobMeta, LabelSet
from cvat_ext.cvat.annotators import replica_names
from cvat_ext.sidecar import engines
from cvat_ext.sidecar.interface import ConsensusOutcome, ReplicaInput
from cvat_ext.sidecar.service import SidecarService
from cvat_ext.workforce.accuracy import accuracies_of, gt_check_line
from tests.conftest import OrgWorld
from tests.cvat_standin import CvatStandIn
from tests.sidecar.crash import Clock, crash_at, die
from tests.sidecar.fakes import ScriptedConsensus
from tests.sidecar.scenario import CARS_XYXY, _rect, seed_sloppy_consensus
from tests.sidecar.test_e2e_standin import make_client, make_service, make_settings


@pytest.mark.parametrize(
    ("replicas", "names"),
    [
        ([(1, "ann1"), (2, "ann2"), (3, "ann3")], ["ann1", "ann2", "ann3"]),
        ([(1, "ann1"), (2, None), (3, "")], ["ann1", "job2", "job3"]),  # unassigned
        ([(7, "ann1"), (8, "ann1"), (9, "ann2")], ["ann1 (job7)", "ann1 (job8)", "ann2"]),  # one person, two replicas
        ([], []),
    ],
)
def test_one_naming_rule(replicas: list[tuple[int, str | None]], names: list[str]) -> None:
    jobs = [SimpleNamespace(id=i, assignee_username=u) for i, u in replicas]
    assert replica_names(jobs) == names


def _settings(standin: CvatStandIn, world: OrgWorld, tmp_path: Path, **extra: Any):  # type: ignore[no-untyped-def]
    return make_settings(standin, world, f"sqlite:///{tmp_path}/state.db", **extra)


def test_usernames_in_issues_guide_scores_and_logs(
    cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    standin, world = cvat_standin, cvat_org_world
    seed_sloppy_consensus(standin, world)
    cfg = _settings(standin, world, tmp_path)
    p1, p2 = world.parent_job_ids
    sloppy_job = world.replica_of(p1, "ann3")
    with caplog.at_level(logging.INFO, logger="cvat_ext.sidecar"), make_service(standin, world, cfg, Clock()) as svc:
        report = svc.run_once()
        assert report.failed_units == 0, report.errors
        store = svc.store
        # the state store: replica rows carry the username, each consensus score names its annotators
        assert store.get_job(sloppy_job).assignee_username == "ann3"  # type: ignore[union-attr]
        scores = {s.job_id: s for s in store.scores_of_task(world.task_id) if s.kind == "consensus"}
        for parent in (p1, p2):
            people = accuracies_of(scores[parent].detail)
            assert [(a.name, a.job_id) for a in people] == [
                (n, world.replica_of(parent, n)) for n in ("ann1", "ann2", "ann3")]
        ann3 = next(a for a in accuracies_of(scores[p1].detail) if a.name == "ann3")
        # issues: on ann3's replica, saying whose figures they are and what they are measured against
        issues = standin.issues()
        assert issues and {i["job"] for i in issues} == {sloppy_job}
        with standin.world.lock:  # an issue's text is its first comment
            texts = {c.issue_id: c.message for c in sorted(standin.world.comments.values(), key=lambda c: -c.id)}
        for issue in issues:
            assert not re.search(r"\bjob\d+\b", texts[issue["id"]]), texts[issue["id"]]  # no replica job names
            assert f" (ann3: {ann3.text()}) " in texts[issue["id"]], texts[issue["id"]]
        assert ("F1 vs consensus" in ann3.text()) != ann3.estimated  # labelled: never a bare number
        # the task guide: usernames, never the replica job ids
        task = svc.client.get_task(world.task_id)
        guide = svc.client.get_guide(task.guide_id).markdown  # type: ignore[arg-type]
        header = "| annotator | jobs | estimated F1 (±) | estimated mean IoU (±) | GT objects | F1 vs consensus |"
        assert header in guide
        for name in ("ann1", "ann2", "ann3"):
            assert f"| {name} | 2 | " in guide and f"{name}: " in guide
        assert not re.search(r"\bjob\d+\b", guide)  # "job<ID>" is the name of an unassigned replica only
    # logs: each annotator's figures by name (and replica job, for whoever opens CVAT next)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert f"ann3 (job {sloppy_job}): {ann3.text()}" in logged


@dataclasses.dataclass
class CountingConsensus:
    """A consensus engine whose 'model' of each annotator counts the jobs folded into it and lists
    them: a job counted twice shows at once. Agreement and findings as :class:`ScriptedConsensus`."""

    inner: ScriptedConsensus
    calls: list[tuple[int, dict[str, Any] | None]] = dataclasses.field(default_factory=list)

    def score(self, parent_job_id: int, replicas: Sequence[ReplicaInput], labels: LabelSet, meta: JobMeta,
              *, priors: Mapping[str, Mapping[str, Any]] | None = None, **kw: Any) -> ConsensusOutcome:
        self.calls.append((parent_job_id, None if priors is None else {k: dict(v) for k, v in priors.items()}))
        outcome = self.inner.score(parent_job_id, replicas, labels, meta)
        models = {}
        for r in replicas:
            prior = (priors or {}).get(r.annotator, {"jobs": 0, "seen": []})
            models[r.annotator] = {"jobs": prior["jobs"] + 1, "seen": [*prior["seen"], parent_job_id]}
        return dataclasses.replace(outcome, models=models)


def _service(standin: CvatStandIn, world: OrgWorld, cfg: Any, clock: Clock, consensus: Any,
             **kw: Any) -> SidecarService:
    return SidecarService(cfg, client=make_client(standin, world), rules=engines.rule_runner(cfg),
                          consensus=consensus, clock=clock, sleep=clock.sleep, **kw)


@pytest.mark.parametrize("scope", ["project", "task", "off"])
def test_second_job_starts_from_the_first_jobs_model(
    cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, tmp_path: Path, scope: str
) -> None:
    world = cvat_org_world
    seed_sloppy_consensus(cvat_standin, world)
    p1, p2 = world.parent_job_ids
    cfg = _settings(cvat_standin, world, tmp_path, consensus={"pool_scope": scope})
    engine = CountingConsensus(ScriptedConsensus(lambda job_id: 1.0))
    with _service(cvat_standin, world, cfg, Clock(), engine) as svc:
        assert svc.run_once().failed_units == 0
        pooled = svc.store.pooled_models()
    if scope == "off":
        assert engine.calls == [(p1, None), (p2, None)] and pooled == []
        return
    first = {n: {"jobs": 1, "seen": [p1]} for n in ("ann1", "ann2", "ann3")}
    assert engine.calls == [(p1, None), (p2, first)]
    where = f"project:{world.project_id}" if scope == "project" else f"task:{world.task_id}"
    assert pooled == [(where, n, 2, {"jobs": 2, "seen": [p1, p2]}) for n in ("ann1", "ann2", "ann3")]


def test_a_person_renamed_between_two_cycles_keeps_their_pool(
    cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, tmp_path: Path
) -> None:
    world = cvat_org_world
    seed_sloppy_consensus(cvat_standin, world)
    p1, p2 = world.parent_job_ids
    for job_id in world.replica_job_ids[p2]:  # parent 2 is still being annotated in the first cycle
        cvat_standin.set_job(job_id, state="in progress")
    cfg = _settings(cvat_standin, world, tmp_path)
    engine = CountingConsensus(ScriptedConsensus(lambda job_id: 1.0))
    clock = Clock()
    with _service(cvat_standin, world, cfg, clock, engine) as svc:
        assert svc.run_once().failed_units == 0
        assert engine.calls == [(p1, None)]
        # ann3 becomes ann3-new in CVAT (same user id), then parent 2's replicas are completed
        with cvat_standin.world.lock:
            cvat_standin.world.users[world.user_ids["ann3"]].username = "ann3-new"
        for job_id in world.replica_job_ids[p2]:
            cvat_standin.set_job(job_id, state="completed")
        clock.t += 60
        assert svc.run_once().failed_units == 0
        pooled = svc.store.pooled_models()
    # parent 2 is fitted from ann3's model under the new name: the pool continued
    assert engine.calls[1] == (p2, {n: {"jobs": 1, "seen": [p1]} for n in ("ann1", "ann2", "ann3-new")})
    scope = f"project:{world.project_id}"
    assert pooled == [(scope, n, 2, {"jobs": 2, "seen": [p1, p2]}) for n in ("ann1", "ann2", "ann3-new")]


def test_a_cycle_replayed_after_a_crash_does_not_count_a_job_twice(
    cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, tmp_path: Path
) -> None:
    world = cvat_org_world
    seed_sloppy_consensus(cvat_standin, world)
    p1, p2 = world.parent_job_ids
    cfg = _settings(cvat_standin, world, tmp_path)
    clock = Clock()
    # parent 1 goes to review: killed as it reassigns, after its fit was folded in, before its signature
    low = set(world.replica_job_ids[p1])
    engine = CountingConsensus(ScriptedConsensus(lambda job_id: 0.2 if job_id in low else 1.0))

    die(_service(cvat_standin, world, cfg, clock, engine, hook=crash_at("job:started"), owner="dead"), clock,
        cfg.state.lease_ttl_s)
    assert engine.calls == [(p1, None)]
    with _service(cvat_standin, world, cfg, clock, engine, owner="restarted") as svc:
        svc.run_once()
        clock.t += 60
        svc.run_once()
        pooled = svc.store.pooled_models()
        # parent 1 again starts from what it started from the first time, not from its own posterior
        assert engine.calls[1] == (p1, None)
        assert engine.calls[2] == (p2, {n: {"jobs": 1, "seen": [p1]} for n in ("ann1", "ann2", "ann3")})
        assert len(engine.calls) == 3  # the second cycle scored nothing again
    assert [(n, jobs, model["jobs"]) for _, n, jobs, model in pooled] == [(n, 2, 2) for n in ("ann1", "ann2", "ann3")]


def _gt_cars(standin: CvatStandIn, world: OrgWorld) -> int:
    shapes = [_rect(f, world.label_ids["car"], xyxy) for f in world.gt_frames for xyxy in CARS_XYXY]
    standin.set_annotations(world.gt_job_id, {"version": 0, "tags": [], "tracks": [], "shapes": shapes})
    return len(shapes)


class RecordingEngine(engines.ConsensusEngineRunner):
    """The real engine, recording what the sidecar hands it."""

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.given: dict[int, Any] = {}
        self.priors: dict[int, Any] = {}
        self.models: dict[int, Mapping[str, Any]] = {}

    def score(self, parent_job_id: int, replicas: Sequence[ReplicaInput], labels: LabelSet, meta: JobMeta,
              **kw: Any) -> ConsensusOutcome:
        self.given[parent_job_id] = kw.get("ground_truth")
        self.priors[parent_job_id] = kw.get("priors")
        outcome = super().score(parent_job_id, replicas, labels, meta, **kw)
        self.models[parent_job_id] = outcome.models
        return outcome


def test_the_real_engine_fits_the_second_job_from_the_first(
    cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, tmp_path: Path
) -> None:
    world = cvat_org_world
    seed_sloppy_consensus(cvat_standin, world)
    _gt_cars(cvat_standin, world)
    p1, p2 = world.parent_job_ids
    cfg = _settings(cvat_standin, world, tmp_path)
    engine = RecordingEngine(cfg.consensus.engine)
    with _service(cvat_standin, world, cfg, Clock(), engine) as svc:
        assert svc.run_once().failed_units == 0
        pooled = {user: model for _, user, _, model in svc.store.pooled_models()}
    assert engine.priors[p1] is None
    assert set(engine.models[p1]) == {"ann1", "ann2", "ann3"}
    # the second job starts from the first job's fitted models, as stored (JSON)
    assert engine.priors[p2] == json.loads(json.dumps(engine.models[p1]))
    assert pooled == json.loads(json.dumps(engine.models[p2]))


def test_the_accepted_gt_job_is_read_and_passed(
    cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, tmp_path: Path
) -> None:
    world = cvat_org_world
    seed_sloppy_consensus(cvat_standin, world)
    n_gt = _gt_cars(cvat_standin, world)
    p1, p2 = world.parent_job_ids
    cfg = _settings(cvat_standin, world, tmp_path)
    engine = RecordingEngine(cfg.consensus.engine)
    clock = Clock()
    with _service(cvat_standin, world, cfg, clock, engine) as svc:
        assert svc.run_once().failed_units == 0
        # each parent gets the GT frames inside its own frames (0-9, 10-19), and the GT annotations
        frames = {p: tuple(engine.given[p][1]) for p in (p1, p2)}
        assert frames == {p1: tuple(f for f in world.gt_frames if f < 10), p2: tuple(f for f in world.gt_frames
                                                                                       if f >= 10)}
        assert all(len(engine.given[p][0].shapes) == n_gt for p in (p1, p2))
        detail = {s.job_id: s.detail for s in svc.store.scores_of_task(world.task_id) if s.kind == "consensus"}
        assert detail[p1]["ground_truth"]["job_id"] == world.gt_job_id
        assert detail[p1]["ground_truth"]["frames"] == len(frames[p1])
        # the engine's calibration check on the GT frames, per annotator, reaches the task guide
        assert set(detail[p1]["ground_truth"]["model_error"]) == {"ann1", "ann2", "ann3"}
        guide = svc.client.get_guide(svc.client.get_task(world.task_id).guide_id).markdown  # type: ignore[arg-type]
        for parent in (p1, p2):
            assert gt_check_line(parent, detail[parent]["ground_truth"]) in guide
        assert f"Ground-truth check, job {p1}: GT job {world.gt_job_id}, {len(frames[p1])} frames" in guide
        # estimates say how many GT objects informed them
        assert {a.gt_objects > 0 for a in accuracies_of(detail[p1])} == {True}
        # GT edited (and still accepted): both parents are scored again, with the new version
        engine.given.clear()
        cvat_standin.set_annotations(world.gt_job_id, {"version": 0, "tags": [], "tracks": [], "shapes": [
            _rect(f, world.label_ids["car"], CARS_XYXY[0]) for f in world.gt_frames]})
        clock.t += 60
        second = svc.run_once()
        assert second.failed_units == 0 and set(engine.given) == {p1, p2}
        assert all(len(engine.given[p][0].shapes) == len(world.gt_frames) for p in (p1, p2))


@pytest.mark.parametrize(("stage", "state", "used"), [
    ("acceptance", "completed", True), ("acceptance", "in progress", True), ("validation", "completed", True),
    ("annotation", "in progress", False), ("validation", "new", False)])
def test_gt_counts_only_in_acceptance_or_completed(
    cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, tmp_path: Path, stage: str, state: str, used: bool
) -> None:
    world = cvat_org_world
    seed_sloppy_consensus(cvat_standin, world)
    _gt_cars(cvat_standin, world)
    cvat_standin.set_job(world.gt_job_id, stage=stage, state=state)
    cfg = _settings(cvat_standin, world, tmp_path)
    engine = RecordingEngine(cfg.consensus.engine)
    with _service(cvat_standin, world, cfg, Clock(), engine) as svc:
        assert svc.run_once().failed_units == 0
    assert all((engine.given[p] is not None) == used for p in world.parent_job_ids)


def test_an_accepted_gt_job_without_annotations_is_not_truth(
    cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    world = cvat_org_world
    seed_sloppy_consensus(cvat_standin, world)  # the world's GT job is accepted, with nothing drawn
    cfg = _settings(cvat_standin, world, tmp_path)
    engine = RecordingEngine(cfg.consensus.engine)
    with caplog.at_level(logging.WARNING), _service(cvat_standin, world, cfg, Clock(), engine) as svc:
        assert svc.run_once().failed_units == 0
    assert all(engine.given[p] is None for p in world.parent_job_ids)
    assert f"GT job {world.gt_job_id} is accepted but has no annotations" in caplog.text


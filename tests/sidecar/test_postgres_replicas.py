"""Two sidecar replicas on one PostgreSQL state store share the work and never act twice."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest

from cvat_ext.sidecar.state import open_store
from tests.conftest import PROJECT_LABELS, OrgWorld
from tests.cvat_standin import CvatStandIn
from tests.sidecar.scenario import SLOPPY_FRAMES, replica_annotations, seed_sloppy_consensus
from tests.sidecar.test_e2e_standin import Clock, make_service, make_settings

pytestmark = pytest.mark.postgres

EXTRA_TASKS = 3


def seed_more_tasks(standin: CvatStandIn, world: OrgWorld) -> list[int]:
    """More consensus tasks like the org's: ann3 sloppy on each first parent. Returns the sloppy replicas."""
    assert PROJECT_LABELS  # the tasks live in the org's project and share its labels
    sloppy = [world.replica_of(world.parent_job_ids[0], "ann3")]
    for n in range(EXTRA_TASKS):
        task_id = standin.add_task(
            f"more {n}", project_id=world.project_id, frames=20, segment_size=10, consensus_replicas=3, owner="admin"
        )
        parents = [j["id"] for j in standin.jobs(task_id=task_id, type="annotation")]
        for p_idx, parent in enumerate(parents):
            replicas = [j["id"] for j in standin.jobs(parent_job_id=parent)]
            for annotator, job_id in zip(("ann1", "ann2", "ann3"), replicas, strict=True):
                bad = annotator == "ann3" and p_idx == 0
                standin.set_annotations(
                    job_id,
                    replica_annotations(
                        world, range(p_idx * 10, p_idx * 10 + 10), annotator, sloppy=bad, seed=7 * n + p_idx
                    ),
                )
                standin.set_job(job_id, stage="annotation", state="completed", assignee=annotator)
                if bad:
                    sloppy.append(job_id)
    return sloppy


def test_two_replicas_share_work_without_acting_twice(
    cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, postgres_url: str, tmp_path: Path
) -> None:
    standin, world = cvat_standin, cvat_org_world
    seed_sloppy_consensus(standin, world)
    sloppy = seed_more_tasks(standin, world)
    cfg = make_settings(standin, world, postgres_url)
    r2_did_a_unit = threading.Event()

    def hook_r1(boundary: str) -> None:
        # r1 pauses inside its first action until r2 has finished one: both replicas must work
        if boundary == "issue:started" and not r2_did_a_unit.is_set():
            assert r2_did_a_unit.wait(30), "replica r2 never finished an action while r1 held its lease"

    def hook_r2(boundary: str) -> None:
        if boundary.endswith(":done"):
            r2_did_a_unit.set()

    services = [
        make_service(standin, world, cfg, Clock(), hook=hook_r1, owner="r1"),
        make_service(standin, world, cfg, Clock(), hook=hook_r2, owner="r2"),
    ]
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            for _ in range(2):
                services[i].run_once()
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for svc in services:
        svc.close()
    assert not errors, errors

    # no duplicate issue, every sloppy replica got one per sloppy frame
    per_job = Counter((i["job"], i["frame"]) for i in standin.issues())
    assert set(per_job.values()) == {1}
    assert sorted(per_job) == sorted((job, f) for job in sloppy for f in SLOPPY_FRAMES)
    with open_store(postgres_url) as store:
        audit = list(store.iter_audit())
    reassigned = Counter(a.job_id for a in audit if a.action == "job.reassign")
    assert len(reassigned) == len(sloppy) and set(reassigned.values()) == {1}  # each sloppy parent once
    opened = Counter((a.job_id, a.frame) for a in audit if a.action == "issue.open")
    assert set(opened.values()) == {1}
    # both replicas acted
    assert {a.replica for a in audit if a.action in ("issue.open", "job.reassign", "job.pass")} == {"r1", "r2"}

"""``reject_job`` through the cycle against the in-memory CVAT: a kill at each boundary of the
job move, then a restart, sends the job back exactly once; with routing disabled nothing moves."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from cvat_ext.qa.findings import Action
from cvat_ext.sidecar.config import SidecarSettings
from cvat_ext.sidecar.service import SidecarService
from cvat_ext.sidecar.state import open_store
from tests.sidecar.crash import Clock, crash_at, die
from tests.sidecar.fakes import BoxCountRules, FakeCvat, ScriptedConsensus
from tests.sidecar.test_cycle_fake import agreement, settings, world


def _service(cvat: FakeCvat, cfg: SidecarSettings, clock: Clock, owner: str, hook: object = None) -> SidecarService:
    return SidecarService(
        cfg,
        client=cvat,
        rules=BoxCountRules(action=Action.REJECT_JOB),
        consensus=ScriptedConsensus(agreement),
        clock=clock,
        sleep=clock.sleep,
        owner=owner,
        **({"hook": hook} if hook is not None else {}),
    )


@pytest.mark.parametrize("boundary", [None, "job:started", "job:called", "job:done"])
def test_reject_is_carried_out_once_across_a_crash(tmp_path: Path, boundary: str | None) -> None:
    cvat, clock = world(), Clock()
    cfg = settings(tmp_path, scope={"task_ids": [6]})  # job 200 alone: six 4 px boxes, each a reject_job error

    if boundary is not None:
        die(_service(cvat, cfg, clock, "dead", crash_at(boundary)), clock, cfg.state.lease_ttl_s)
    with _service(cvat, cfg, clock, "r1") as svc:
        report = svc.run_once()
        clock.t += 60
        svc.run_once()
    job = cvat.jobs[200]
    assert (job.assignee_id, job.stage, job.state) == (12, "annotation", "rejected")  # back to its annotator
    assert sorted(i.frame for i in cvat.issues.values() if i.job_id == 200) == list(range(6))
    with open_store(cfg.state.url.get_secret_value()) as store:
        actions = Counter(a.action for a in store.iter_audit())
    assert actions["job.reject"] == 1 and actions["job.reassign"] == 0 and actions["job.pass"] == 0
    if boundary is None:
        assert report.decisions[200] == "reject (6 reject_job findings (min_size)) -> job 200 annotation/rejected"


def test_reject_with_routing_disabled_moves_nothing(tmp_path: Path) -> None:
    cvat, clock = world(), Clock()
    cfg = settings(tmp_path, scope={"task_ids": [6]}, routing={"enabled": False})
    with _service(cvat, cfg, clock, "r1") as svc:
        report = svc.run_once()
    assert report.decisions[200] == "reject (6 reject_job findings (min_size)) -> job 200 not moved (routing disabled)"
    job = cvat.jobs[200]
    assert (job.stage, job.state) == ("annotation", "completed") and len(cvat.issues) == 6

"""The people side of QA end to end: the sidecar (real cvat-sdk over HTTP) against the CVAT stand-in
records annotators' work, qualifies them against gold, and gates the one below the bar."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from cvat_ext import cli
from cvat_ext.sidecar.state import open_store
from cvat_ext.workforce.collector import GATE_MARK
from tests.conftest import OrgWorld
from tests.cvat_standin import CvatStandIn
from tests.sidecar.crash import Clock, crash_at, die
from tests.sidecar.test_e2e_standin import make_service, make_settings
from tests.workforce.scenario import seed_gold_task

QUALIFICATION = {"qualification": {"enabled": True, "bar": 0.9, "min_gold_frames": 4, "requalify_checks": 2}}


def _settings(standin: CvatStandIn, world: OrgWorld, tmp_path: Path) -> Any:
    return make_settings(standin, world, f"sqlite:///{tmp_path}/state.db", workforce=QUALIFICATION)


def test_the_sloppy_annotator_is_not_qualified_and_their_job_goes_to_review(
        cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    task = seed_gold_task(cvat_standin, cvat_org_world)
    cfg = _settings(cvat_standin, cvat_org_world, tmp_path)
    clock = Clock()
    with make_service(cvat_standin, cvat_org_world, cfg, clock) as svc:
        svc.run_once()
        store = svc.store
        standing = {q.username: q for q in store.qualifications()}
        assert standing["ann1"].status == "qualified" and standing["ann3"].status == "not_qualified"
        # the org world's consensus task has a GT job too: its (empty) replicas count as gold checks
        assert {"job_id": task.precise_job, "frames": 4, "f1": 1.0} in standing["ann1"].checks
        # ann3 drew 2 of 3 cars per gold frame, one with the wrong label: 1 match of 3 gold + 2 drawn
        assert standing["ann3"].checks[-1] == {"job_id": task.sloppy_job, "frames": 4, "f1": 0.4}
        gate = [i for i in cvat_standin.issues() if i["job"] == task.sloppy_job]
        assert len(gate) == 1 and gate[0]["frame"] == 10
        first = svc.client.list_comments(gate[0]["id"])[0].message
        assert first.startswith(GATE_MARK) and "ann3" in first and "0.40" in first and "0.90" in first
        jobs = {j["id"]: j for j in cvat_standin.jobs(task_id=task.task_id)}
        assert jobs[task.sloppy_job]["assignee"]["username"] == "rev1"
        assert jobs[task.sloppy_job]["stage"] == "validation"
        assert not [i for i in cvat_standin.issues() if i["job"] == task.precise_job and
                    GATE_MARK in svc.client.list_comments(i["id"])[0].message]
        clock.t += 60
        svc.run_once()  # nothing twice
        assert len([i for i in cvat_standin.issues() if i["job"] == task.sloppy_job]) == 1
        audit = list(store.iter_audit())
        counts = Counter(a.action for a in audit)
        assert counts["qualification.issue"] == 1 and counts["qualification.route"] == 1
        changes = [a for a in audit if a.action == "qualification.change"]
        assert changes[-1].user_id == cvat_org_world.user_ids["ann3"] or any(
            a.user_id == cvat_org_world.user_ids["ann3"] and a.after["status"] == "not_qualified" for a in changes)
    state = cfg.state.url.get_secret_value()
    assert cli.main(["report", "annotators", "--state", state, "--org", cvat_org_world.org_slug,
                     "--project", str(cvat_org_world.project_id), "--format", "json"]) == 0
    cards = {c["username"]: c for c in json.loads(capsys.readouterr().out)}
    assert cards["ann1"]["gold_accuracy"] == pytest.approx(1.0) and cards["ann1"]["status"] == "qualified"
    assert cards["ann3"]["gold_accuracy"] == pytest.approx(0.4) and cards["ann3"]["status"] == "not_qualified"
    assert cards["ann1"]["objects"] == 30 and cards["ann3"]["objects"] == 20  # the replicas are empty
    assert cards["ann3"]["jobs"] == 3 and cards["ann3"]["frames"] == 30  # job B and two replicas
    assert cli.main(["report", "annotators", "--state", state, "--org", cvat_org_world.org_slug]) == 0
    table = capsys.readouterr().out
    assert "not_qualified" in table and table.splitlines()[0].startswith("username")


@pytest.mark.parametrize("boundary", ["qualification.issue:started", "qualification.issue:called",
                                      "job:started", "job:called"])
def test_a_kill_mid_gate_never_doubles_the_issue_or_the_routing(
        cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, tmp_path: Path, boundary: str) -> None:
    task = seed_gold_task(cvat_standin, cvat_org_world)
    cfg = _settings(cvat_standin, cvat_org_world, tmp_path)
    clock = Clock()
    dead = make_service(cvat_standin, cvat_org_world, cfg, clock, hook=crash_at(boundary, once=True), owner="dead")
    die(dead, clock, cfg.state.lease_ttl_s)
    with make_service(cvat_standin, cvat_org_world, cfg, clock, owner="restarted") as svc:
        svc.run_once()
        clock.t += 60
        svc.run_once()
    gate = [i for i in cvat_standin.issues() if i["job"] == task.sloppy_job]
    assert len(gate) == 1
    job = next(j for j in cvat_standin.jobs(task_id=task.task_id) if j["id"] == task.sloppy_job)
    assert (job["assignee"]["username"], job["stage"]) == ("rev1", "validation")
    with open_store(cfg.state.url.get_secret_value()) as root:
        store = root.scoped(cvat_org_world.org_slug)
        assert store.actions(status="started") == []
        assert {r.job_id for r in store.work(completed=True)} >= {task.precise_job, task.sloppy_job}


def test_a_not_qualified_reviewer_is_never_chosen(cvat_standin: CvatStandIn, cvat_org_world: OrgWorld,
                                                  tmp_path: Path) -> None:
    from cvat_ext.sidecar.state import QualificationRow

    task = seed_gold_task(cvat_standin, cvat_org_world)
    # a second supervisor whose name comes first: the least-loaded tie-break would pick them
    aa_id = cvat_standin.add_user("aa_rev", password=cvat_org_world.password)
    cvat_standin.add_membership("qa-eval", "aa_rev", "supervisor")
    cfg = make_settings(cvat_standin, cvat_org_world, f"sqlite:///{tmp_path}/state.db", workforce=QUALIFICATION)
    with make_service(cvat_standin, cvat_org_world, cfg, Clock()) as svc:
        svc.store.put_qualification(QualificationRow(aa_id, "aa_rev", "not_qualified", [], 0.0))
        svc.run_once()
    job = next(j for j in cvat_standin.jobs(task_id=task.task_id) if j["id"] == task.sloppy_job)
    assert job["assignee"]["username"] == "rev1"


def test_without_the_qualification_store_rows_the_first_supervisor_by_name_reviews(
        cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, tmp_path: Path) -> None:
    """The control for the test above: the same set-up, aa_rev qualified, is chosen."""
    task = seed_gold_task(cvat_standin, cvat_org_world)
    cvat_standin.add_user("aa_rev", password=cvat_org_world.password)
    cvat_standin.add_membership("qa-eval", "aa_rev", "supervisor")
    cfg = make_settings(cvat_standin, cvat_org_world, f"sqlite:///{tmp_path}/state.db", workforce=QUALIFICATION)
    with make_service(cvat_standin, cvat_org_world, cfg, Clock()) as svc:
        svc.run_once()
    job = next(j for j in cvat_standin.jobs(task_id=task.task_id) if j["id"] == task.sloppy_job)
    assert job["assignee"]["username"] == "aa_rev"

"""Rule-pack actions end to end: the sidecar (real CvatClient over HTTP, real rule engine and
consensus engine) against the CVAT stand-in does what each action documents.

A plain annotation job, completed by ann1, holds three good cars and one 2x2 px car that breaks the
pack's ``tiny`` rule (error). The pack's ``actions: {error: <action>}`` decides what happens.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from cvat_ext.sidecar.state import open_store
from tests.conftest import OrgWorld
from tests.cvat_standin import CvatStandIn
from tests.sidecar.scenario import CARS_XYXY, _rect, seed_sloppy_consensus
from tests.sidecar.test_e2e_standin import REPO, Clock, make_service, make_settings

TINY_FRAME = 2


def _pack(tmp_path: Path, error_action: str) -> str:
    path = tmp_path / f"{error_action}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "name": f"tiny-{error_action}",
                "actions": {"error": error_action, "warning": "open_issue"},
                "rules": [{"id": "tiny", "kind": "size", "severity": "error", "min_width": 4, "min_height": 4}],
            }
        )
    )
    return str(path)


def _plain_job(standin: CvatStandIn, world: OrgWorld, *, tiny: bool) -> tuple[int, int]:
    """(task id, job id) of a completed plain job of ann1 in the org's project."""
    task_id = standin.add_task("plain task", project_id=world.project_id, frames=4, owner="admin")
    (job,) = standin.jobs(task_id=task_id, type="annotation")
    car = world.label_ids["car"]
    shapes = [_rect(f, car, xyxy) for f in range(4) for xyxy in CARS_XYXY]
    if tiny:
        shapes.append(_rect(TINY_FRAME, car, (300.0, 300.0, 302.0, 302.0)))
    standin.set_annotations(job["id"], {"version": 0, "tags": [], "shapes": shapes, "tracks": []})
    standin.set_job(job["id"], stage="annotation", state="completed", assignee="ann1")
    return task_id, job["id"]


def _run(standin: CvatStandIn, world: OrgWorld, tmp_path: Path, **extra: Any) -> Any:
    cfg = make_settings(standin, world, f"sqlite:///{tmp_path}/state.db", **extra)
    with make_service(standin, world, cfg, Clock()) as svc:
        report = svc.run_once()
    assert report.failed_units == 0, report.errors
    with open_store(cfg.state.url.get_secret_value()) as store:
        audit = Counter(a.action for a in store.iter_audit())
    return report, audit


def _job(standin: CvatStandIn, job_id: int) -> tuple[str | None, str, str]:
    j = next(j for j in standin.jobs() if j["id"] == job_id)
    return (j["assignee"] or {}).get("username"), j["stage"], j["state"]


# action, max_errors, (assignee, stage, state) after the cycle, issues opened, decision starts with
CASES = [
    ("reject_job", 5, ("ann1", "annotation", "rejected"), 1, "reject (1 reject_job finding (tiny))"),
    ("send_to_review", 5, ("rev1", "validation", "new"), 1, "review (1 send_to_review finding (tiny))"),
    ("none", 0, ("ann1", "validation", "new"), 0, "pass (0 rule errors <= 0)"),
    ("open_issue", 5, ("ann1", "validation", "new"), 1, "pass (1 rule errors <= 5)"),
    ("open_issue", 0, ("rev1", "validation", "new"), 1, "review (1 rule errors > 0)"),
]


@pytest.mark.parametrize(("action", "max_errors", "job_after", "issues", "decision"), CASES)
def test_pack_action_on_a_plain_job(
    cvat_standin: CvatStandIn,
    cvat_org_world: OrgWorld,
    tmp_path: Path,
    action: str,
    max_errors: int,
    job_after: tuple[str, str, str],
    issues: int,
    decision: str,
) -> None:
    standin, world = cvat_standin, cvat_org_world
    task_id, job_id = _plain_job(standin, world, tiny=True)
    report, audit = _run(
        standin,
        world,
        tmp_path,
        scope={"task_ids": [task_id]},
        rules={"packs": [_pack(tmp_path, action)], "max_errors": max_errors},
    )
    assert report.findings == 1  # recorded whatever the action
    assert report.decisions[job_id].startswith(decision), report.decisions[job_id]
    assert _job(standin, job_id) == job_after
    opened = standin.issues(job_id=job_id)
    assert len(opened) == issues == audit["issue.open"]
    if issues:
        (issue,) = opened
        assert issue["frame"] == TINY_FRAME and issue["assignee"]["username"] == "ann1"
        assert issue["position"] == [300.0, 300.0, 302.0, 302.0]
    assert audit["job.reject"] == (action == "reject_job")


def test_default_pack_sends_a_job_back_then_passes_it_once_fixed(
    cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, tmp_path: Path
) -> None:
    """The shipped default pack verbatim: ``tiny-object`` is an error and errors ``reject_job``."""
    standin, world = cvat_standin, cvat_org_world
    task_id, job_id = _plain_job(standin, world, tiny=True)
    cfg = make_settings(standin, world, f"sqlite:///{tmp_path}/state.db", scope={"task_ids": [task_id]})
    assert cfg.rules.packs == (str(REPO / "qa_rules" / "default.yaml"),)
    clock = Clock()
    with make_service(standin, world, cfg, clock) as svc:
        first = svc.run_once()
        assert first.decisions[job_id].startswith("reject (1 reject_job finding (tiny-object))"), first.decisions
        assert _job(standin, job_id) == ("ann1", "annotation", "rejected")
        (issue,) = standin.issues(job_id=job_id)
        (comment,) = svc.client.list_comments(issue["id"])
        assert "rule tiny-object" in comment.message and "width 2" in comment.message and not issue["resolved"]
        # rejected is not completed: nothing to do until ann1 finishes again
        clock.t += 60
        assert job_id not in svc.run_once().decisions
        # ann1 deletes the tiny box and completes the job: it passes, and the issue is resolved
        _plain_fix(standin, world, job_id)
        clock.t += 60
        again = svc.run_once()
    assert again.decisions[job_id].startswith("pass (0 rule errors"), again.decisions
    assert _job(standin, job_id) == ("ann1", "validation", "new")
    assert [i["resolved"] for i in standin.issues(job_id=job_id)] == [True]


def _plain_fix(standin: CvatStandIn, world: OrgWorld, job_id: int) -> None:
    car = world.label_ids["car"]
    shapes = [_rect(f, car, xyxy) for f in range(4) for xyxy in CARS_XYXY]
    standin.set_annotations(job_id, {"version": 0, "tags": [], "shapes": shapes, "tracks": []})
    standin.set_job(job_id, state="completed")


def test_reject_job_on_a_consensus_replica_sends_that_replica_back(
    cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, tmp_path: Path
) -> None:
    """Parent 2's replicas agree, but ann2's replica has a 2x2 box: that replica goes back to ann2
    with an issue, the parent is neither merged nor passed; once ann2 fixes it, the parent passes."""
    standin, world = cvat_standin, cvat_org_world
    seed_sloppy_consensus(standin, world)
    p2 = world.parent_job_ids[1]
    ann2 = world.replica_of(p2, "ann2")
    good = standin.get_annotations(ann2)
    tiny = _rect(12, world.label_ids["person"], (5.0, 5.0, 7.0, 7.0))
    standin.set_annotations(ann2, {**good, "shapes": [*good["shapes"], tiny]})
    standin.set_job(ann2, state="completed")
    cfg = make_settings(
        standin,
        world,
        f"sqlite:///{tmp_path}/state.db",
        rules={"packs": [_pack(tmp_path, "reject_job")]},
        consensus={"min_replica_agreement": 0.5},
    )
    clock = Clock()
    with make_service(standin, world, cfg, clock) as svc:
        first = svc.run_once()
        assert first.failed_units == 0, first.errors
        assert first.decisions[p2] == (
            f"reject (1 reject_job finding (tiny)) -> job {ann2} annotation/rejected"
        ), first.decisions
        assert _job(standin, ann2) == ("ann2", "annotation", "rejected")
        assert [(i["frame"], i["assignee"]["username"]) for i in standin.issues(job_id=ann2)] == [(12, "ann2")]
        assert _job(standin, p2)[1:] == ("annotation", "new") and not standin.get_annotations(p2)["shapes"]
        # ann2 removes the box and completes the replica: the parent is scored again and passes
        standin.set_annotations(ann2, good)
        standin.set_job(ann2, state="completed")
        clock.t += 60
        again = svc.run_once()
    assert again.decisions[p2].startswith("pass (agreement"), again.decisions
    assert len(standin.get_annotations(p2)["shapes"]) == 30

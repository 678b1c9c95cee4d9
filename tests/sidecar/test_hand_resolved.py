"""An issue a person resolves in CVAT while its finding persists: one "still present" comment on
the next scoring, no reopening, no second comment, also across a kill at each boundary of that
action (stand-in, real cvat-sdk)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cvat_ext.annotations.cvat_json import parse_job_annotations
from cvat_ext.cvat.client import CvatClient
from cvat_ext.sidecar.actions import Hook
from cvat_ext.sidecar.service import SidecarService
from cvat_ext.sidecar.state import open_store
from tests.conftest import OrgWorld
from tests.cvat_standin import CvatStandIn
from tests.sidecar.crash import Clock, crash_at, die
from tests.sidecar.scenario import replica_annotations, seed_sloppy_consensus
from tests.sidecar.test_e2e_standin import make_service, make_settings


def _setup(
    standin: CvatStandIn, world: OrgWorld, rev1: CvatClient, clock: Clock, svc: SidecarService
) -> tuple[int, list[int], Callable[[], None]]:
    """First cycle (issues opened), then rev1 resolves the first issue by hand; returns the sloppy
    replica, the issue ids (dismissed first) and a function re-saving the replica unchanged."""
    sloppy_job = world.replica_of(world.parent_job_ids[0], "ann3")
    svc.run_once()
    issues = sorted(rev1.list_issues(job_id=sloppy_job), key=lambda i: i.frame)
    assert issues and not any(i.resolved for i in issues)
    rev1.update_issue(issues[0].id, resolved=True)

    def resave() -> None:
        # ann3 saves again, unchanged: the parent is scored again, every finding still there
        data = replica_annotations(world, range(0, 10), "ann3", sloppy=True, seed=2)
        rev1.put_annotations(sloppy_job, parse_job_annotations(data))
        clock.t += 60

    return sloppy_job, [i.id for i in issues], resave


def _still(rev1: CvatClient, issue_id: int) -> list[str]:
    return [c.message for c in rev1.list_comments(issue_id) if c.message.startswith("still present: ")]


@pytest.fixture
def rev1(cvat_standin: CvatStandIn, cvat_org_world: OrgWorld) -> CvatClient:
    seed_sloppy_consensus(cvat_standin, cvat_org_world)
    return CvatClient(cvat_standin.url, access_token=cvat_standin.add_token("rev1"), org=cvat_org_world.org_slug)


def test_issue_resolved_by_hand_gets_one_still_present_comment(
    cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, rev1: CvatClient, tmp_path: Path
) -> None:
    standin, world = cvat_standin, cvat_org_world
    cfg = make_settings(standin, world, f"sqlite:///{tmp_path}/state.db")
    clock = Clock()
    with make_service(standin, world, cfg, clock) as svc, rev1:
        sloppy_job, issue_ids, resave = _setup(standin, world, rev1, clock, svc)
        dismissed, others = issue_ids[0], issue_ids[1:]
        resave()
        report = svc.run_once()
        assert report.scored_units == 1 and report.issues_opened == 0, report
        still = _still(rev1, dismissed)
        assert len(still) == 1 and "[cvat-ext fp=" in still[0]
        after = {i.id: i for i in rev1.list_issues(job_id=sloppy_job)}
        assert after[dismissed].resolved  # not reopened
        assert not any(after[i].resolved for i in others)  # the others untouched
        assert all(len(rev1.list_comments(i)) == 1 for i in others)
        assert "cvat_ext_sidecar_issues_still_present_total 1.0" in svc.metrics.render().decode()

        # scored again: no second comment, still not reopened
        resave()
        assert svc.run_once().scored_units == 1
        assert len(_still(rev1, dismissed)) == 1
        assert {i.id: i.resolved for i in rev1.list_issues(job_id=sloppy_job)}[dismissed]
    with open_store(cfg.state.url.get_secret_value()) as root:
        assert [a.action for a in root.iter_audit()].count("issue.still_present") == 1


@pytest.mark.parametrize("boundary", ["comment:started", "comment:called", "comment:done"])
def test_kill_around_the_comment_then_restart(
    cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, rev1: CvatClient, tmp_path: Path, boundary: str
) -> None:
    standin, world = cvat_standin, cvat_org_world
    cfg = make_settings(standin, world, f"sqlite:///{tmp_path}/state.db")
    clock = Clock()

    crashing: Hook = crash_at(boundary)
    with rev1:
        dead = make_service(standin, world, cfg, clock, hook=crashing, owner="dead")
        _, issue_ids, resave = _setup(standin, world, rev1, clock, dead)
        resave()
        die(dead, clock, cfg.state.lease_ttl_s)
        with make_service(standin, world, cfg, clock, owner="restarted") as svc:
            svc.run_once()
            resave()
            svc.run_once()
        assert len(_still(rev1, issue_ids[0])) == 1
    with open_store(cfg.state.url.get_secret_value()) as root:
        assert root.scoped(world.org_slug).actions(status="started") == []

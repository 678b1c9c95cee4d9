"""An issue a person resolves in CVAT while its finding persists: one "still present" comment on
the next scoring, no reopening, no second comment (stand-in, real cvat-sdk)."""

from __future__ import annotations

from pathlib import Path

from cvat_ext.annotations.cvat_json import parse_job_annotations
from cvat_ext.cvat.client import CvatClient
from cvat_ext.sidecar import engines
from cvat_ext.sidecar.service import SidecarService
from cvat_ext.sidecar.state import open_store
from tests.conftest import OrgWorld
from tests.cvat_standin import CvatStandIn
from tests.sidecar.scenario import replica_annotations, seed_sloppy_consensus
from tests.sidecar.test_e2e_standin import Clock, make_client, make_settings


def test_issue_resolved_by_hand_gets_one_still_present_comment(
    cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, tmp_path: Path
) -> None:
    standin, world = cvat_standin, cvat_org_world
    seed_sloppy_consensus(standin, world)
    cfg = make_settings(standin, world, f"sqlite:///{tmp_path}/state.db")
    clock = Clock()
    p1 = world.parent_job_ids[0]
    sloppy_job = world.replica_of(p1, "ann3")
    rev1 = CvatClient(standin.url, access_token=standin.add_token("rev1"), org=world.org_slug)
    svc = SidecarService(
        cfg,
        client=make_client(standin, world),
        rules=engines.rule_runner(cfg),
        consensus=engines.consensus_runner(cfg),
        clock=clock,
        sleep=clock.sleep,
        owner="r1",
    )
    with svc, rev1:
        svc.run_once()
        issues = sorted(rev1.list_issues(job_id=sloppy_job), key=lambda i: i.frame)
        assert issues and not any(i.resolved for i in issues)
        # the reviewer resolves the first issue without the annotator fixing anything
        dismissed = issues[0]
        rev1.update_issue(dismissed.id, resolved=True)

        def resave_sloppy_replica() -> None:
            # ann3 saves again, unchanged: the parent is scored again, every finding still there
            data = replica_annotations(world, range(0, 10), "ann3", sloppy=True, seed=2)
            rev1.put_annotations(sloppy_job, parse_job_annotations(data))
            clock.t += 60

        resave_sloppy_replica()
        report = svc.run_once()
        assert report.scored_units == 1 and report.issues_opened == 0, report
        comments = [c.message for c in rev1.list_comments(dismissed.id)]
        still = [m for m in comments if m.startswith("still present: ")]
        assert len(still) == 1 and "[cvat-ext fp=" in still[0]
        after = {i.id: i for i in rev1.list_issues(job_id=sloppy_job)}
        assert after[dismissed.id].resolved  # not reopened
        assert not any(after[i.id].resolved for i in issues[1:])  # the others untouched
        assert all(len(rev1.list_comments(i.id)) == 1 for i in issues[1:])

        # scored again: no second comment, still not reopened
        resave_sloppy_replica()
        assert svc.run_once().scored_units == 1
        assert len(rev1.list_comments(dismissed.id)) == len(comments)
        assert {i.id: i.resolved for i in rev1.list_issues(job_id=sloppy_job)}[dismissed.id]
    with open_store(cfg.state.url.get_secret_value()) as root:
        assert [a.action for a in root.iter_audit()].count("issue.still_present") == 1

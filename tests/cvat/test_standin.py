"""The real cvat-sdk, through CvatClient, against the CVAT 2.73 stand-in (tests/cvat_standin)."""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import pytest

from cvat_ext.annotations.model import JobAnnotations, Shape, ShapeType, Tag
from cvat_ext.cvat import CvatClient, RetryPolicy
from cvat_ext.errors import (
    CvatAuthError,
    CvatConnectionError,
    CvatNotFoundError,
    CvatPermissionError,
    CvatServerError,
)
from tests.conftest import OrgWorld
from tests.cvat.stub import FakeTime
from tests.cvat_standin import CvatStandIn


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def bot(cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, fake_time: FakeTime) -> Iterator[CvatClient]:
    """The QA bot (org maintainer, PAT) in the org context, with injected time."""
    with CvatClient(
        cvat_standin.url,
        access_token=cvat_org_world.bot_token,
        org=cvat_org_world.org_slug,
        sleep=fake_time.sleep,
        clock=fake_time.clock,
        rng=random.Random(0),
        timeout_s=10.0,
    ) as client:
        yield client


def test_about_and_whoami(bot: CvatClient):
    assert bot.about().version_tuple == (2, 73, 0)
    assert bot.whoami().username == "qabot"


def test_job_listing_filters(bot: CvatClient, cvat_org_world: OrgWorld):
    w = cvat_org_world
    jobs = bot.list_jobs(task_id=w.task_id)
    assert sorted(j.id for j in jobs) == sorted(
        [*w.parent_job_ids, *(r for rs in w.replica_job_ids.values() for r in rs), w.gt_job_id]
    )
    parent = w.parent_job_ids[0]
    replicas = bot.list_jobs(type="consensus_replica", parent_job_id=parent)
    assert sorted(j.id for j in replicas) == sorted(w.replica_job_ids[parent])
    assert all(j.parent_job_id == parent and j.type == "consensus_replica" for j in replicas)
    (gt,) = bot.list_jobs(task_id=w.task_id, type="ground_truth")
    assert (gt.id, gt.stage, gt.state) == (w.gt_job_id, "acceptance", "completed")
    by_ann = {j.assignee_username for j in replicas}
    assert by_ann == {"ann1", "ann2", "ann3"}
    # pagination: page_size 2 over 9 jobs -> 5 requests
    before = bot.calls["GET /api/jobs"]
    assert len(list(bot.iter_jobs(task_id=w.task_id, page_size=2))) == 9
    assert bot.calls["GET /api/jobs"] - before == 5
    assert {j.id for j in bot.list_jobs(task_id=w.task_id, stage="acceptance")} == {w.gt_job_id}


def test_updated_date_cursor_sees_annotation_save(bot: CvatClient, cvat_org_world: OrgWorld):
    w = cvat_org_world
    jobs = bot.list_jobs(task_id=w.task_id)
    cursor = max(j.updated_date for j in jobs)
    assert bot.list_jobs(task_id=w.task_id, updated_after=cursor) == []
    replica = w.replica_of(w.parent_job_ids[0], "ann2")
    box = Shape(ShapeType.RECTANGLE, frame=2, label_id=w.label_ids["car"], points=np.array([10.0, 20.0, 110.0, 90.0]))
    bot.put_annotations(replica, JobAnnotations(shapes=(box,)))
    changed = bot.list_jobs(task_id=w.task_id, updated_after=cursor)
    assert [j.id for j in changed] == [replica]
    assert changed[0].updated_date > cursor


def test_annotations_round_trip(bot: CvatClient, cvat_org_world: OrgWorld):
    w = cvat_org_world
    job_id = w.replica_of(w.parent_job_ids[1], "ann1")
    box = Shape(ShapeType.RECTANGLE, 12, w.label_ids["car"], np.array([1.0, 2.0, 50.0, 60.0]), rotation=15.0)
    poly = Shape(ShapeType.POLYGON, 13, w.label_ids["person"], np.array([[0.0, 0.0], [10.0, 0.0], [5.0, 8.0]]))
    tag = Tag(frame=12, label_id=w.label_ids["blurry"])
    saved = bot.put_annotations(job_id, JobAnnotations(shapes=(box, poly), tags=(tag,)))
    assert all(s.id is not None for s in saved.shapes) and len(saved.tags) == 1
    got = bot.get_annotations(job_id)
    assert sorted((s.type.value, s.frame) for s in got.shapes) == [("polygon", 13), ("rectangle", 12)]
    rect = next(s for s in got.shapes if s.type is ShapeType.RECTANGLE)
    assert np.allclose(rect.points, [1.0, 2.0, 50.0, 60.0]) and rect.rotation == 15.0
    extra = Shape(ShapeType.RECTANGLE, 14, w.label_ids["car"], np.array([5.0, 5.0, 9.0, 9.0]))
    created = bot.patch_annotations(job_id, "create", JobAnnotations(shapes=(extra,)))
    assert len(created.shapes) == 1 and created.shapes[0].id is not None
    assert len(bot.get_annotations(job_id).shapes) == 3
    assert bot.get_job_meta(job_id).frame_info(14).width == 640
    assert bot.get_labels(job_id=job_id).by_name["pose"].sublabels


def test_update_job_stage_keeps_state(bot: CvatClient, cvat_org_world: OrgWorld):
    w = cvat_org_world
    job_id = w.replica_of(w.parent_job_ids[0], "ann3")
    job = bot.update_job(job_id, stage="validation")
    assert (job.stage, job.state, job.status) == ("validation", "completed", "validation")
    job = bot.update_job(job_id, stage="annotation", state="rejected", assignee_id=w.user_ids["rev1"])
    assert (job.stage, job.state, job.assignee_username) == ("annotation", "rejected", "rev1")
    assert bot.update_job(job_id, assignee_id=None).assignee_id is None


def test_issues_and_comments(bot: CvatClient, cvat_org_world: OrgWorld, cvat_standin: CvatStandIn):
    w = cvat_org_world
    job_id = w.replica_of(w.parent_job_ids[0], "ann3")
    positions = ([320.0, 240.0], [100.0, 100.0, 180.0, 160.0], [400.0, 300.0, 460.0, 290.0, 470.0, 350.0])
    issues = [bot.create_issue(job_id, 3, p, f"QA {len(p)}", assignee_id=w.user_ids["ann3"]) for p in positions]
    assert [len(i.position) for i in issues] == [2, 4, 6]
    assert {i.id for i in bot.list_issues(job_id=job_id)} == {i.id for i in issues}
    assert len(cvat_standin.issues(job_id=job_id)) == 3
    bot.add_comment(issues[1].id, "IoU 0.41")
    assert sorted(c.message for c in bot.list_comments(issues[1].id)) == ["IoU 0.41", "QA 4"]
    assert bot.update_issue(issues[1].id, resolved=True).resolved


def test_merge_and_quality_settings(bot: CvatClient, cvat_org_world: OrgWorld, cvat_standin: CvatStandIn):
    w = cvat_org_world
    cvat_standin.request_polls = 2
    settings = bot.get_consensus_settings(w.task_id)
    assert bot.update_consensus_settings(settings["id"], iou_threshold=0.5)["iou_threshold"] == 0.5
    rq_id = bot.request_merge(job_id=w.parent_job_ids[0])
    done = bot.wait_request(rq_id, poll_s=1.5)
    assert done["status"] == "finished"
    assert bot.get_job(w.parent_job_ids[0]).state == "completed"
    quality = bot.get_quality_settings(w.task_id)
    assert "iou_threshold" in quality
    patched = bot.update_quality_settings(quality["id"], iou_threshold=0.55, inherit=False)
    assert (patched["iou_threshold"], patched["inherit"]) == (0.55, False)


def test_guide_asset_webhook(bot: CvatClient, cvat_org_world: OrgWorld):
    guide = bot.create_guide(task_id=cvat_org_world.task_id, markdown="# QA report\n\nPending...")
    assert bot.get_task(cvat_org_world.task_id).guide_id == guide.id
    uuid = bot.upload_asset(guide.id, "chart.png", b"\x89PNG\r\n\x1a\n" + bytes(64))
    assert bot.update_guide(guide.id, f"![chart](/api/assets/{uuid})").markdown.endswith(f"{uuid})")
    hook = bot.create_webhook(target_url="http://127.0.0.1:9/hook", events=["update:job", "create:issue"], secret="s")
    assert hook.type == "organization" and set(hook.events) == {"update:job", "create:issue"}
    assert hook.id in {h.id for h in bot.list_webhooks()}
    bot.ping_webhook(hook.id)
    bot.delete_webhook(hook.id)
    assert hook.id not in {h.id for h in bot.list_webhooks()}


def test_503_then_success_via_fault_injection(
    bot: CvatClient, cvat_org_world: OrgWorld, cvat_standin: CvatStandIn, fake_time: FakeTime
):
    job_id = cvat_org_world.parent_job_ids[0]
    cvat_standin.faults.add("GET", rf"^/api/jobs/{job_id}$", "status", status=503, times=2)
    assert bot.get_job(job_id).id == job_id
    assert [s for m, p, s in cvat_standin.request_log if p == f"/api/jobs/{job_id}"] == [503, 503, 200]
    assert len(fake_time.sleeps) == 2 and bot.calls["GET /api/jobs/{id}"] == 3


def test_retry_after_and_reset_via_fault_injection(
    bot: CvatClient, cvat_org_world: OrgWorld, cvat_standin: CvatStandIn, fake_time: FakeTime
):
    cvat_standin.faults.add("GET", r"^/api/jobs$", "retry_after", retry_after_s=4.0)
    cvat_standin.faults.add("GET", r"^/api/jobs$", "reset")
    assert len(bot.list_jobs(task_id=cvat_org_world.task_id)) == 9
    assert fake_time.sleeps[0] == 4.0 and len(fake_time.sleeps) == 2


def test_post_not_retried_via_fault_injection(
    bot: CvatClient, cvat_org_world: OrgWorld, cvat_standin: CvatStandIn, fake_time: FakeTime
):
    job_id = cvat_org_world.parent_job_ids[0]
    cvat_standin.faults.add("POST", r"^/api/issues$", "status", status=502)
    with pytest.raises(CvatServerError, match=rf"job {job_id} frame 1: new issue: POST /api/issues -> 502"):
        bot.create_issue(job_id, 1, [1.0, 2.0], "QA")
    assert fake_time.sleeps == [] and cvat_standin.issues(job_id=job_id) == []


def test_budget_exhausted_via_fault_injection(cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, fake_time: FakeTime):
    cvat_standin.faults.add(None, r"^/api/jobs/", "reset", times=100)
    with (
        CvatClient(
            cvat_standin.url,
            access_token=cvat_org_world.bot_token,
            org=cvat_org_world.org_slug,
            retry=RetryPolicy(max_attempts=5, base_delay_s=1.0, budget_s=60.0, jitter=0.0),
            sleep=fake_time.sleep,
            clock=fake_time.clock,
        ) as client,
        pytest.raises(CvatConnectionError) as info,
    ):
        client.get_job(cvat_org_world.gt_job_id)
    message = str(info.value)
    assert message.startswith(f"CVAT at {cvat_standin.url} unreachable after 5 attempts over 15.0 s: ")
    assert f"job {cvat_org_world.gt_job_id}: GET /api/jobs/{cvat_org_world.gt_job_id}" in message
    assert fake_time.sleeps == [1.0, 2.0, 4.0, 8.0]


def test_permission_and_auth_errors(cvat_standin: CvatStandIn, cvat_org_world: OrgWorld):
    w = cvat_org_world
    other = w.replica_of(w.parent_job_ids[0], "ann1")
    token = cvat_standin.add_token("ann2")
    forbidden = rf"job {other}: GET /api/jobs/{other} -> 403 Forbidden"
    with (
        CvatClient(cvat_standin.url, access_token=token, org=w.org_slug) as worker,
        pytest.raises(CvatPermissionError, match=forbidden),
    ):
        worker.get_job(other)
    with (
        CvatClient(cvat_standin.url, access_token="not-a-token", org=w.org_slug) as bad,
        pytest.raises(CvatAuthError, match="401 Unauthorized"),
    ):
        bad.get_job(other)
    with (
        CvatClient(cvat_standin.url, access_token=w.bot_token, org=w.org_slug) as bot,
        pytest.raises(CvatNotFoundError, match=r"job 999999: GET /api/jobs/999999 -> 404 Not Found"),
    ):
        bot.get_job(999999)


def test_password_login(cvat_standin: CvatStandIn, cvat_org_world: OrgWorld):
    w = cvat_org_world
    with CvatClient(cvat_standin.url, username="ann1", password=w.password, org=w.org_slug) as ann1:
        assert ann1.whoami().username == "ann1"
        mine = w.replica_of(w.parent_job_ids[0], "ann1")
        assert ann1.update_job(mine, state="in progress").state == "in progress"
    with (
        CvatClient(cvat_standin.url, username="ann1", password="wrong", org=w.org_slug) as bad,
        pytest.raises(CvatAuthError),
    ):
        bad.whoami()


def test_calls_counter_matches_server_log(bot: CvatClient, cvat_org_world: OrgWorld, cvat_standin: CvatStandIn):
    start = len(cvat_standin.request_log)
    bot.list_jobs(task_id=cvat_org_world.task_id)
    bot.get_job(cvat_org_world.gt_job_id)
    bot.get_annotations(cvat_org_world.gt_job_id)
    assert sum(bot.calls.values()) == len(cvat_standin.request_log) - start == 3
    assert set(bot.calls) == {"GET /api/jobs", "GET /api/jobs/{id}", "GET /api/jobs/{id}/annotations"}


def test_read_timeout_is_retried_for_get(cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, fake_time: FakeTime):
    job_id = cvat_org_world.gt_job_id
    cvat_standin.faults.add("GET", rf"^/api/jobs/{job_id}$", "timeout", delay_s=1.0)
    with CvatClient(
        cvat_standin.url,
        access_token=cvat_org_world.bot_token,
        org=cvat_org_world.org_slug,
        timeout_s=0.3,
        sleep=fake_time.sleep,
        clock=fake_time.clock,
    ) as client:
        assert client.get_job(job_id).id == job_id
        assert client.calls["GET /api/jobs/{id}"] == 2 and len(fake_time.sleeps) == 1


def test_quality_report_flow(bot: CvatClient, cvat_org_world: OrgWorld, cvat_standin: CvatStandIn):
    w = cvat_org_world
    cvat_standin.request_polls = 1
    rq_id = bot.request_quality_report(w.task_id)
    done = bot.wait_request(rq_id, poll_s=1.0)
    report_id = done["result_id"]
    report = bot.get_quality_report(report_id)
    assert report["target"] == "task" and "accuracy" in report["summary"]
    assert {"parameters", "comparison_summary", "frame_results"} <= set(bot.get_quality_report_data(report_id))
    reports = bot.list_quality_reports(task_id=w.task_id)
    assert report_id in {r["id"] for r in reports} and any(r["target"] == "job" for r in reports)
    assert isinstance(bot.list_quality_conflicts(report_id), list)

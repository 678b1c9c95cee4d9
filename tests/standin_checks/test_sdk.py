"""The real cvat-sdk 2.80 against the stand-in over HTTP: it must deserialize every answer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cvat_sdk import Client, Config, make_client, models
from cvat_sdk.core.proxies.annotations import AnnotationUpdateAction

from tests.conftest import OrgWorld
from tests.cvat_standin import CvatStandIn


@pytest.fixture
def bot(cvat_standin: CvatStandIn, cvat_org_world: OrgWorld) -> Iterator[Client]:
    with make_client(cvat_standin.url, access_token=cvat_org_world.bot_token) as client:
        client.organization_slug = cvat_org_world.org_slug
        yield client


def _rect(label_id: int, frame: int, xyxy: list[float]) -> models.LabeledShapeRequest:
    return models.LabeledShapeRequest(type="rectangle", frame=frame, label_id=label_id, points=xyxy)


def test_sdk_lists_jobs_of_all_types(bot: Client, cvat_org_world: OrgWorld) -> None:
    jobs = bot.jobs.list()
    by_type = sorted(j.type for j in jobs)
    assert by_type.count("annotation") == 2
    assert by_type.count("consensus_replica") == 6
    assert by_type.count("ground_truth") == 1
    replicas = [j for j in jobs if j.parent_job_id == cvat_org_world.parent_job_ids[0]]
    assert sorted(j.assignee.username for j in replicas) == ["ann1", "ann2", "ann3"]


def test_sdk_round_trips_annotations(bot: Client, cvat_org_world: OrgWorld) -> None:
    car = cvat_org_world.label_ids["car"]
    job = bot.jobs.retrieve(cvat_org_world.parent_job_ids[0])
    job.set_annotations(models.LabeledDataRequest(shapes=[_rect(car, 0, [1, 2, 30, 40]), _rect(car, 3, [5, 5, 9, 9])],
                                                  tags=[models.LabeledImageRequest(
                                                      frame=1, label_id=cvat_org_world.label_ids["blurry"])]))
    got = job.get_annotations()
    assert [s.points for s in got.shapes] == [[1.0, 2.0, 30.0, 40.0], [5.0, 5.0, 9.0, 9.0]]
    assert len(got.tags) == 1 and got.tags[0].label_id == cvat_org_world.label_ids["blurry"]
    first_id = got.shapes[0].id
    job.update_annotations(models.PatchedLabeledDataRequest(shapes=[_rect(car, 2, [0, 0, 5, 5])]),
                           action=AnnotationUpdateAction.CREATE)
    job.remove_annotations(ids=[first_id])
    frames = sorted(s.frame for s in job.get_annotations().shapes)
    assert frames == [2, 3]


def test_sdk_patches_job_stage_and_assignee(bot: Client, cvat_org_world: OrgWorld) -> None:
    job = bot.jobs.retrieve(cvat_org_world.parent_job_ids[1])
    job.update(models.PatchedJobWriteRequest(assignee=cvat_org_world.user_ids["rev1"], stage="validation",
                                             state="in progress"))
    again = bot.jobs.retrieve(job.id)
    assert (again.stage, again.state, again.status) == ("validation", "in progress", "validation")
    assert again.assignee.username == "rev1"
    job.update(models.PatchedJobWriteRequest(stage="acceptance"))
    assert (job.stage, job.state) == ("acceptance", "new")


def test_sdk_meta_labels_issues_users(bot: Client, cvat_org_world: OrgWorld) -> None:
    gt = bot.jobs.retrieve(cvat_org_world.gt_job_id)
    meta = gt.get_meta()
    assert meta.included_frames == list(cvat_org_world.gt_frames)
    assert [lb.name for lb in gt.get_labels()] == ["car", "person", "sign", "pose", "blurry"]
    replica = cvat_org_world.replica_of(cvat_org_world.parent_job_ids[0], "ann3")
    issue = bot.issues.create(models.IssueWriteRequest(frame=3, position=[1.0, 2.0, 3.0, 4.0], job=replica,
                                                       message="box too loose",
                                                       assignee=cvat_org_world.user_ids["ann3"]))
    assert [c.message for c in issue.get_comments()] == ["box too loose"]
    assert [i.id for i in bot.jobs.retrieve(replica).get_issues()] == [issue.id]
    assert {u.username for u in bot.users.list()} == {"admin", "ann1", "ann2", "ann3", "rev1", "qabot"}
    members, _ = bot.api_client.memberships_api.list(role="worker")
    assert sorted(m.user.username for m in members.results) == ["ann1", "ann2", "ann3"]


def test_sdk_password_login_uses_session_and_sees_only_own_jobs(cvat_standin: CvatStandIn,
                                                                cvat_org_world: OrgWorld) -> None:
    with Client(cvat_standin.url, config=Config(allow_unsupported_server=True)) as client:
        client.login(("ann2", cvat_org_world.password))
        client.organization_slug = cvat_org_world.org_slug
        jobs = client.jobs.list()
        assert sorted(j.assignee.username for j in jobs) == ["ann2", "ann2"]
        job = jobs[0]
        job.update(models.PatchedJobWriteRequest(state="in progress"))  # unsafe method: needs CSRF header
        assert job.state == "in progress"

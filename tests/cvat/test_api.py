"""CvatClient methods over real HTTP, answered with recorded CVAT 2.73 bodies."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from cvat_ext.annotations.cvat_json import dump_job_annotations, dump_shape, parse_job_annotations
from cvat_ext.cvat import UNSET, CvatClient
from cvat_ext.errors import (
    ConfigError,
    CvatConflictError,
    CvatError,
    CvatNotFoundError,
    CvatRequestFailedError,
    CvatVersionError,
)
from tests.cvat.recorded import load, response_bodies
from tests.cvat.stub import FakeTime, Reply, StubCvat

MakeClient = Callable[..., CvatClient]


def _exchanges(name: str) -> list[dict]:
    return load(name)["exchanges"]


def test_about_parses_version(stub: StubCvat, make_client: MakeClient):
    stub.on("GET", "/api/server/about", Reply(200, response_bodies("01_server_about.json", "GET", "/api")[0]))
    client = make_client(stub.url)
    info = client.about()
    assert (info.version, info.version_tuple) == ("2.73.0", (2, 73, 0))
    features = client.features()
    assert features.flat_quality_settings and not features.quality_settings_put
    assert client.calls["GET /api/server/about"] == 1  # features() reuses about()


def test_old_server_is_refused(stub: StubCvat, make_client: MakeClient):
    stub.on("GET", "/api/server/about", Reply(200, {"name": "CVAT", "version": "2.9.1"}))
    with pytest.raises(CvatVersionError, match=r"2\.9\.1 is older than 2\.73\.0"):
        make_client(stub.url).features()


def test_jobs_follow_next_pages_with_cursor_filter(stub: StubCvat, make_client: MakeClient):
    jobs = response_bodies("30_jobs_list_task.json", "GET", "/api/jobs")[0]["results"]
    page1 = {"count": len(jobs), "next": f"{stub.url}/api/jobs?page=2&page_size=5", "results": jobs[:5]}
    page2 = {"count": len(jobs), "next": None, "results": jobs[5:]}
    stub.on("GET", "/api/jobs", Reply(200, page1), Reply(200, page2))
    stub.on("GET", "/api/server/about", Reply(200, response_bodies("01_server_about.json", "GET", "/api")[0]))
    client = make_client(stub.url, org="qa-eval")
    cursor = datetime(2026, 11, 23, 0, 37, 20, 654278, tzinfo=UTC)
    got = client.list_jobs(task_id=52, type="consensus_replica", updated_after=cursor, page_size=5)
    assert [j.id for j in got] == [j["id"] for j in jobs]
    first, second = stub.requests("GET", "/api/jobs")
    assert json.loads(first.query["filter"][0]) == {">": [{"var": "updated_date"}, "2026-11-23T00:37:20.654278Z"]}
    assert first.query["sort"] == ["updated_date"] and first.query["task_id"] == ["52"]
    assert first.query["type"] == ["consensus_replica"] and first.query["page_size"] == ["5"]
    assert second.query["page"] == ["2"]
    assert client.calls["GET /api/jobs"] == 2


def test_replica_type_follows_server_version(stub: StubCvat, make_client: MakeClient):
    stub.on("GET", "/api/server/about", Reply(200, {"name": "CVAT", "version": "2.80.0"}))
    stub.on("GET", "/api/jobs", Reply(200, {"count": 0, "next": None, "results": []}))
    client = make_client(stub.url)
    client.list_jobs(type="consensus_replica")
    client.list_jobs(type="consensus_replica", parent_job_id=4)
    assert [r.query["type"] for r in stub.requests("GET", "/api/jobs")] == [["replica"], ["replica"]]
    assert client.calls["GET /api/server/about"] == 1


def test_naive_cursor_is_rejected(make_client: MakeClient, stub: StubCvat):
    with pytest.raises(ConfigError, match="timezone-aware"):
        make_client(stub.url).list_jobs(updated_after=datetime(2026, 1, 1))


def test_recorded_jobs_parse():
    bodies = response_bodies("33_job_get.json", "GET", "/api/jobs/")
    from cvat_ext.cvat.wire import job_from_json

    replica, parent, gt = (job_from_json(b) for b in bodies[:3])
    assert (replica.type, replica.parent_job_id, replica.assignee_username) == ("consensus_replica", 131, "ann1")
    assert (parent.consensus_replicas, parent.assignee_id, parent.organization_id) == (3, None, 3)
    assert gt.type == "ground_truth" and gt.frame_count == 5
    assert replica.updated_date.tzinfo is not None and replica.updated_date.utcoffset().total_seconds() == 0


def test_newer_replica_type_is_normalised():
    from cvat_ext.cvat.wire import job_from_json

    body = dict(response_bodies("33_job_get.json", "GET", "/api/jobs/")[0], type="replica")
    assert job_from_json(body).type == "consensus_replica"


def test_update_job_stage_only_resends_current_state(stub: StubCvat, make_client: MakeClient):
    current = dict(response_bodies("33_job_get.json", "GET", "/api/jobs/")[0], state="completed")
    stub.on("GET", "/api/jobs/132", Reply(200, current))
    stub.on("PATCH", "/api/jobs/132", Reply(200, dict(current, stage="validation", status="validation")))
    job = make_client(stub.url).update_job(132, stage="validation")
    assert job.stage == "validation"
    assert stub.requests("PATCH")[0].json() == {"stage": "validation", "state": "completed"}


@pytest.mark.parametrize(
    "kwargs, sent",
    [
        ({"stage": "annotation", "state": "rejected"}, {"stage": "annotation", "state": "rejected"}),
        ({"assignee_id": 6}, {"assignee": 6}),
        ({"assignee_id": None}, {"assignee": None}),
        ({"state": "completed"}, {"state": "completed"}),
    ],
)
def test_update_job_bodies(stub: StubCvat, make_client: MakeClient, kwargs, sent):
    stub.on("PATCH", "/api/jobs/132", Reply(200, response_bodies("33_job_get.json", "GET", "/api/jobs/")[0]))
    make_client(stub.url).update_job(132, **kwargs)
    assert stub.requests("PATCH")[0].json() == sent
    assert not stub.requests("GET")


def test_update_job_nothing_to_change_reads(stub: StubCvat, make_client: MakeClient):
    stub.on("GET", "/api/jobs/132", Reply(200, response_bodies("33_job_get.json", "GET", "/api/jobs/")[0]))
    assert make_client(stub.url).update_job(132, assignee_id=UNSET).id == 132
    assert not stub.requests("PATCH")


@pytest.mark.parametrize("position", [[320.0, 240.0], [100, 100, 180, 160], [400, 300, 460, 290, 470, 350, 410, 360]])
def test_create_issue_positions(stub: StubCvat, make_client: MakeClient, position):
    reply = dict(
        response_bodies("60_issue_create.json", "POST", "/api/issues")[0], position=[float(v) for v in position]
    )
    stub.on("POST", "/api/issues", Reply(201, reply))
    issue = make_client(stub.url).create_issue(134, 3, position, "QA: check", assignee_id=5)
    sent = stub.requests("POST")[0].json()
    assert sent == {
        "frame": 3,
        "position": [float(v) for v in position],
        "job": 134,
        "message": "QA: check",
        "assignee": 5,
    }
    assert issue.position == tuple(float(v) for v in position) and issue.assignee_id == 5 and issue.owner_id == 7


@pytest.mark.parametrize("position", [[], [1.0], [1.0, 2.0, 3.0]])
def test_create_issue_rejects_odd_positions(stub: StubCvat, make_client: MakeClient, position):
    with pytest.raises(ConfigError, match="job 134 frame 3"):
        make_client(stub.url).create_issue(134, 3, position, "x")
    assert not stub.seen


def test_issues_and_comments(stub: StubCvat, make_client: MakeClient):
    stub.on("GET", "/api/issues", Reply(200, response_bodies("61_issues_list_job.json", "GET", "/api/issues")[0]))
    stub.on("POST", "/api/comments", Reply(201, response_bodies("62_comment_create.json", "POST", "/api")[0]))
    stub.on("GET", "/api/comments", Reply(200, response_bodies("63_comments_list_issue.json", "GET", "/api")[0]))
    stub.on("PATCH", "/api/issues/26", Reply(200, response_bodies("64_issue_patch_resolved.json", "PATCH", "/api")[0]))
    client = make_client(stub.url, org="qa-eval")
    issues = client.list_issues(job_id=134)
    assert {i.id for i in issues} >= {25, 26, 27} and all(i.job_id == 134 for i in issues)
    assert stub.requests("GET", "/api/issues")[0].query["job_id"] == ["134"]
    comment = client.add_comment(26, "QA bot: IoU with the reference is 0.41")
    assert (comment.issue_id, comment.owner_id) == (26, 7)
    assert stub.requests("POST", "/api/comments")[0].json() == {"issue": 26, "message": comment.message}
    assert len(client.list_comments(26)) >= 2
    resolved = client.update_issue(26, resolved=True)
    assert resolved.resolved and stub.requests("PATCH")[0].json() == {"resolved": True}


def test_merge_and_wait(stub: StubCvat, make_client: MakeClient, fake_time: FakeTime):
    ex = _exchanges("71_consensus_merge_job.json")
    rq_id = ex[0]["response"]["body"]["rq_id"]
    assert "&" in rq_id and "=" in rq_id
    stub.on("POST", "/api/consensus/merges", Reply(202, ex[0]["response"]["body"]))
    stub.on("GET", f"/api/requests/{rq_id}", *(Reply(200, e["response"]["body"]) for e in ex[1:]))
    client = make_client(stub.url, org="qa-eval")
    got = client.request_merge(job_id=131)
    assert got == rq_id and stub.requests("POST")[0].json() == {"job_id": 131}
    done = client.wait_request(got, poll_s=2.0)
    assert done["status"] == "finished"
    assert fake_time.sleeps == [2.0] * (len(ex) - 2)
    assert client.calls["GET /api/requests/{id}"] == len(ex) - 1


def test_duplicate_merge_409_returns_running_rq_id(stub: StubCvat, make_client: MakeClient):
    conflict = _exchanges("74_consensus_merge_again.json")[1]["response"]
    assert conflict["status"] == 409
    stub.on("POST", "/api/consensus/merges", Reply(409, conflict["body"]))
    assert make_client(stub.url).request_merge(job_id=131) == conflict["body"]["rq_id"]


def test_merge_400_is_error(stub: StubCvat, make_client: MakeClient):
    stub.on("POST", "/api/consensus/merges", Reply(409, {"detail": "something else"}))
    with pytest.raises(CvatConflictError, match="task 5 merge"):
        make_client(stub.url).request_merge(task_id=5)


def test_failed_request_raises_with_message(stub: StubCvat, make_client: MakeClient):
    ex = _exchanges("E07_quality_report_failed_request.json")
    rq_id = ex[0]["response"]["body"]["rq_id"]
    stub.on("POST", "/api/quality/reports", Reply(202, ex[0]["response"]["body"]))
    stub.on("GET", f"/api/requests/{rq_id}", *(Reply(200, e["response"]["body"]) for e in ex[1:]))
    client = make_client(stub.url)
    assert client.request_quality_report(53) == rq_id
    with pytest.raises(CvatRequestFailedError, match=r"request action=calculate&target=task.* failed: TypeError"):
        client.wait_request(rq_id)


def test_wait_request_times_out(stub: StubCvat, make_client: MakeClient, fake_time: FakeTime):
    stub.on("GET", "/api/requests/rq1", Reply(200, {"id": "rq1", "status": "started"}))
    with pytest.raises(CvatError, match="request rq1 still started after"):
        make_client(stub.url).wait_request("rq1", timeout_s=10.0, poll_s=3.0)
    assert sum(fake_time.sleeps) <= 10.0


def test_consensus_settings(stub: StubCvat, make_client: MakeClient):
    ex = _exchanges("70_consensus_settings.json")
    stub.on("GET", "/api/consensus/settings", Reply(200, ex[0]["response"]["body"]))
    stub.on("PATCH", "/api/consensus/settings/18", Reply(200, ex[2]["response"]["body"]))
    client = make_client(stub.url)
    settings = client.get_consensus_settings(52)
    assert settings == {"id": 18, "task_id": 52, "iou_threshold": 0.4}
    assert client.update_consensus_settings(18, iou_threshold=0.5)["iou_threshold"] == 0.5
    assert stub.requests("PATCH")[0].json() == {"iou_threshold": 0.5}


def test_quality_is_raw_json(stub: StubCvat, make_client: MakeClient):
    settings_body = _exchanges("80_quality_settings_get.json")[0]["response"]["body"]
    reports = _exchanges("84_quality_reports_list_task.json")[0]["response"]["body"]
    report_get = _exchanges("85_quality_report_get.json")
    data = _exchanges("87_quality_report_data_task.json")[0]["response"]["body"]
    conflicts = _exchanges("88_quality_conflicts.json")[0]["response"]["body"]
    task_report = next(e["response"]["body"] for e in report_get if e["response"]["body"]["target"] == "task")
    stub.on("GET", "/api/quality/settings", Reply(200, settings_body))
    stub.on("PATCH", "/api/quality/settings/76", Reply(200, dict(settings_body["results"][0], iou_threshold=0.5)))
    stub.on("GET", "/api/quality/reports", Reply(200, reports))
    stub.on("GET", f"/api/quality/reports/{task_report['id']}", Reply(200, task_report))
    stub.on("GET", f"/api/quality/reports/{task_report['id']}/data", Reply(200, data))
    stub.on("GET", "/api/quality/conflicts", Reply(200, conflicts))
    client = make_client(stub.url)
    assert client.get_quality_settings(52)["iou_threshold"] == 0.4
    job_filter = '{"in":[{"var":"type"},["annotation","consensus_replica"]]}'
    updated = client.update_quality_settings(76, iou_threshold=0.5, inherit=False, job_filter=job_filter)
    assert updated["iou_threshold"] == 0.5
    assert stub.requests("PATCH")[0].json() == {"iou_threshold": 0.5, "inherit": False, "job_filter": job_filter}
    assert len(client.list_quality_reports(task_id=52)) == reports["count"]
    report = client.get_quality_report(task_report["id"])
    assert "accuracy" in report["summary"] and "completed" not in report["summary"]["jobs"]
    full = client.get_quality_report_data(task_report["id"])
    assert {"parameters", "comparison_summary", "frame_results"} <= set(full)
    assert len(client.list_quality_conflicts(77)) == conflicts["count"]


def _typed(body: object, model_name: str) -> None:
    from cvat_sdk.api_client import ApiClient, models
    from cvat_sdk.api_client.model_utils import validate_and_convert_types

    model = getattr(models, model_name)
    validate_and_convert_types(body, (model,), ["received_data"], True, True, configuration=ApiClient().configuration)


@pytest.mark.parametrize(
    "name, path, model",
    [
        ("33_job_get.json", "/api/jobs/", "JobRead"),
        ("30_jobs_list_task.json", "/api/jobs", "PaginatedJobReadList"),
        ("40_job_annotations_get_replica.json", "/api/jobs/", "LabeledData"),
        ("41_job_annotations_get_gt.json", "/api/jobs/", "LabeledData"),
        ("80_quality_settings_get.json", "/api/quality/settings/", "QualitySettings"),
    ],
)
def test_sdk_typed_models_read_273_bodies(name: str, path: str, model: str):
    """Jobs, annotations and quality settings of 2.73 deserialize with SDK 2.80's typed models."""
    bodies = response_bodies(name, "GET", path)
    assert bodies
    for body in bodies:
        _typed(body, model)


def test_sdk_typed_model_breaks_on_273_task_report():
    """Why quality calls are raw JSON: SDK 2.80 cannot read a 2.73 *task* report (job reports work)."""
    reports = {e["response"]["body"]["target"]: e["response"]["body"] for e in _exchanges("85_quality_report_get.json")}
    _typed(reports["job"], "QualityReport")
    with pytest.raises(TypeError, match="completed"):
        _typed(reports["task"], "QualityReport")


def test_guide_and_asset(stub: StubCvat, make_client: MakeClient):
    ex = _exchanges("90_guide_and_asset.json")
    stub.on("POST", "/api/guides", Reply(201, ex[0]["response"]["body"]))
    stub.on("POST", "/api/assets", Reply(201, ex[1]["response"]["body"]))
    stub.on("PATCH", "/api/guides/6", Reply(200, ex[2]["response"]["body"]))
    stub.on("GET", "/api/guides/6", Reply(200, ex[3]["response"]["body"]))
    client = make_client(stub.url, org="qa-eval")
    guide = client.create_guide(task_id=52, markdown="# QA report\n\nPending...")
    assert (guide.id, guide.task_id) == (6, 52)
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 32
    uuid = client.upload_asset(6, "qa-chart.png", png)
    assert uuid == ex[1]["response"]["body"]["uuid"]
    upload = stub.requests("POST", "/api/assets")[0]
    assert upload.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert b'name="guide_id"' in upload.body and b"\r\n6\r\n" in upload.body
    assert (
        b'filename="qa-chart.png"' in upload.body and b"Content-Type: image/png" in upload.body and png in upload.body
    )
    assert upload.headers["X-Organization"] == "qa-eval"
    updated = client.update_guide(6, f"![chart](/api/assets/{uuid})")
    assert uuid in updated.markdown and stub.requests("PATCH")[0].json() == {
        "markdown": f"![chart](/api/assets/{uuid})"
    }
    assert client.get_guide(6).markdown == updated.markdown


def test_asset_content_type_is_honoured(stub: StubCvat, make_client: MakeClient):
    stub.on("POST", "/api/assets", Reply(201, {"uuid": "u-1"}))
    make_client(stub.url).upload_asset(6, "report", b"%PDF-1.4", content_type="application/pdf")
    assert b"Content-Type: application/pdf" in stub.requests("POST")[0].body


def test_webhooks(stub: StubCvat, make_client: MakeClient):
    ex = _exchanges("10_webhook_create.json")
    created = ex[0]["response"]["body"]
    stub.on("POST", "/api/webhooks", Reply(201, created))
    stub.on("GET", "/api/webhooks", Reply(200, {"count": 1, "next": None, "results": [created]}))
    stub.on(
        "POST",
        f"/api/webhooks/{created['id']}/ping",
        Reply(200, _exchanges("11_webhook_ping.json")[0]["response"]["body"]),
    )
    stub.on("DELETE", f"/api/webhooks/{created['id']}", Reply(204))
    client = make_client(stub.url, org="qa-eval")
    events = ex[0]["request"]["body"]["events"]
    hook = client.create_webhook(target_url=created["target_url"], events=events, secret="s3cret", description="qa")
    sent = stub.requests("POST", "/api/webhooks")[0].json()
    assert sent["type"] == "organization" and sent["secret"] == "s3cret" and sent["events"] == events
    assert "project_id" not in sent
    assert hook.id == created["id"] and set(hook.events) == set(events)
    assert [w.id for w in client.list_webhooks()] == [created["id"]]
    client.ping_webhook(hook.id)
    client.delete_webhook(hook.id)
    assert client.calls["DELETE /api/webhooks/{id}"] == 1 and client.calls["POST /api/webhooks/{id}/ping"] == 1


def test_users_and_memberships(stub: StubCvat, make_client: MakeClient):
    stub.on("GET", "/api/users", Reply(200, response_bodies("03_users_list_org.json", "GET", "/api/users")[0]))
    members = _exchanges("04_memberships_list_org.json")
    stub.on("GET", "/api/memberships", Reply(200, members[1]["response"]["body"]))
    client = make_client(stub.url, org="qa-eval")
    assert {u.username for u in client.list_users()} >= {"qabot", "ann1", "rev1"}
    workers = client.list_memberships(role="worker")
    assert {m.username for m in workers} == {"ann1", "ann2", "ann3"}
    assert all(m.role == "worker" and m.org_slug == "qa-eval" and m.is_active for m in workers)
    assert stub.requests("GET", "/api/memberships")[0].query["role"] == ["worker"]


def test_memberships_need_org(stub: StubCvat, make_client: MakeClient):
    with pytest.raises(ConfigError, match="organization"):
        make_client(stub.url).list_memberships()


def test_annotations_labels_meta(stub: StubCvat, make_client: MakeClient):
    ann_body = response_bodies("40_job_annotations_get_replica.json", "GET", "/api/jobs/")[0]
    put = _exchanges("42_job_annotations_put.json")[0]
    patch = _exchanges("43_job_annotations_patch_create.json")[0]
    stub.on("GET", "/api/jobs/137/annotations", Reply(200, ann_body))
    stub.on("PUT", "/api/jobs/140/annotations", Reply(200, put["response"]["body"]))
    stub.on("PATCH", "/api/jobs/140/annotations", Reply(200, patch["response"]["body"]))
    stub.on("GET", "/api/labels", Reply(200, response_bodies("22_labels_list_task.json", "GET", "/api/labels")[0]))
    stub.on("GET", "/api/jobs/132/data/meta", Reply(200, response_bodies("34_job_data_meta.json", "GET", "/api")[0]))
    client = make_client(stub.url)
    ann = client.get_annotations(137)
    assert len(ann.shapes) == len(ann_body["shapes"]) and len(ann.tracks) == len(ann_body["tracks"])
    assert client.calls["GET /api/jobs/{id}/annotations"] == 1
    saved = client.put_annotations(140, ann)
    assert len(saved.shapes) == len(put["response"]["body"]["shapes"])
    sent = stub.requests("PUT")[0].json()
    assert len(sent["shapes"]) == len(ann.shapes) and sent["version"] == ann.version
    created = client.patch_annotations(140, "create", ann)
    assert stub.requests("PATCH")[0].query["action"] == ["create"]
    assert len(created.shapes) == len(patch["response"]["body"]["shapes"])
    labels = client.get_labels(task_id=52)
    assert {"car", "person", "sign", "pose", "blurry"} <= set(labels.by_name)
    meta = client.get_job_meta(132)
    assert meta.frame_info(3).width == 640
    with pytest.raises(ConfigError):
        client.patch_annotations(140, "merge", ann)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        client.get_labels(task_id=52, job_id=3)


def test_annotations_as_bytes_are_the_body_cvat_sent(stub: StubCvat, make_client: MakeClient):
    """The raw body reads into the same columns as the decoded one; retries and errors as any call."""
    from cvat_ext.annotations.columnar_json import read_annotations_body, read_annotations_bytes

    ann_body = response_bodies("40_job_annotations_get_replica.json", "GET", "/api/jobs/")[0]
    raw = json.dumps(ann_body, indent=1).encode()
    stub.on("GET", "/api/jobs/137/annotations", Reply(503, {"detail": "busy"}), Reply(200, raw))
    client = make_client(stub.url)
    got = client.get_annotations_bytes(137)
    assert got == raw and client.calls["GET /api/jobs/{id}/annotations"] == 2
    by_bytes = read_annotations_bytes(got, where="job 137", last_frame=20)
    by_body = read_annotations_body(ann_body, where="job 137", last_frame=20)
    assert list(map(dump_shape, by_bytes.shapes.shapes())) == list(map(dump_shape, by_body.shapes.shapes()))
    assert by_bytes.tags == by_body.tags and len(by_bytes.shapes) > 0


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"<html>proxy login</html>", r"job 9 annotations: GET /api/jobs/9/annotations returned a non-JSON body: <ht"),
        (b'{"shapes": [', r"job 9 annotations: GET /api/jobs/9/annotations returned a non-JSON body"),
        (b"[1, 2]", r"job 9 annotations: unexpected CVAT response: expected a JSON object, got list"),
        (b"  ", r"job 9 annotations: unexpected CVAT response: expected a JSON object, got NoneType"),
    ],
)
def test_annotations_bytes_that_are_no_object_fail_like_decoded_ones(
    stub: StubCvat, make_client: MakeClient, body: bytes, error: str
):
    stub.on("GET", "/api/jobs/9/annotations", Reply(200, body), Reply(200, body))
    client = make_client(stub.url)
    with pytest.raises(CvatError, match=error):
        client.get_annotations_bytes(9)
    with pytest.raises(CvatError, match=error):
        client.get_annotations_json(9)


def test_non_json_body_is_clear_error(stub: StubCvat, make_client: MakeClient):
    stub.on("GET", "/api/jobs/5", Reply(200, b"<html>proxy login</html>"))
    with pytest.raises(CvatError, match=r"job 5: GET /api/jobs/5 returned a non-JSON body: <html>"):
        make_client(stub.url).get_job(5)


def test_unexpected_json_shape_names_object(stub: StubCvat, make_client: MakeClient):
    stub.on("GET", "/api/jobs/5", Reply(200, {"id": 5}))
    with pytest.raises(CvatError, match="job 5: unexpected CVAT response: task_id"):
        make_client(stub.url).get_job(5)


def test_annotations_put_as_json_text_send_what_the_objects_send(stub: StubCvat, make_client: MakeClient):
    """A merge written as JSON text goes out as those bytes, with the same headers (auth, org,
    JSON content type) and the same JSON as the PUT of the objects; errors translate by status."""
    ann_body = response_bodies("40_job_annotations_get_replica.json", "GET", "/api/jobs/")[0]
    put = _exchanges("42_job_annotations_put.json")[0]
    saved = Reply(200, put["response"]["body"])
    stub.on("PUT", "/api/jobs/140/annotations", saved, saved)
    stub.on("PUT", "/api/jobs/141/annotations", Reply(404, {"detail": "Not found."}))
    client = make_client(stub.url, org="qa-eval")
    ann = parse_job_annotations(ann_body)
    client.put_annotations(140, ann)
    text = json.dumps(dump_job_annotations(ann), indent=1)
    counts = client.put_annotations_json(140, text)
    want = put["response"]["body"]
    assert counts == {k: len(want[k]) for k in ("shapes", "tags", "tracks")}
    by_objects, by_text = stub.requests("PUT", "/api/jobs/140/annotations")
    assert by_text.body == text.encode() and by_text.json() == by_objects.json()
    for header in ("Content-Type", "X-Organization", "Authorization"):
        assert by_text.headers.get(header) == by_objects.headers.get(header)
    assert client.calls["PUT /api/jobs/{id}/annotations"] == 2
    with pytest.raises(CvatNotFoundError, match="job 141 annotations"):
        client.put_annotations_json(141, text)

"""Webhook CRUD and signed deliveries, compared with what CVAT 2.73 delivered (recordings 12, 47, 54, 65)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from cvat_ext.cvat.signature import verify_signature
from tests.conftest import OrgWorld
from tests.cvat_standin import CvatStandIn
from tests.standin_checks.conftest import Api
from tests.standin_checks.receiver import WebhookReceiver
from tests.standin_checks.replay import RECORDED, structure_diff

SECRET = "qa-eval-webhook-secret"
EVENTS = ["update:job", "create:job", "create:issue", "update:issue", "create:comment", "update:task",
          "update:project", "completed:request[calculate:quality]", "completed:request[merge:job]",
          "completed:request[merge:task]"]


def recorded_deliveries(name: str) -> list[dict[str, Any]]:
    return [d["body"] for d in json.loads((RECORDED / name).read_text())["deliveries"]]


def assert_shaped_like_recorded(payloads: list[dict[str, Any]], recording: str) -> None:
    """Every delivered payload has the structure of a recorded delivery of the same event."""
    recorded = recorded_deliveries(recording)
    for p in payloads:
        like = next(r for r in recorded if r["event"] == p["event"])
        diffs = structure_diff(like, p, opaque=frozenset({"changes", "before_update"}))
        assert not diffs, f"{p['event']}: {diffs}"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


@pytest.fixture
def hook(api: Api, receiver: WebhookReceiver) -> dict[str, Any]:
    code, body = api.post("/api/webhooks", {"target_url": receiver.url, "type": "organization", "events": EVENTS,
                                            "secret": SECRET, "content_type": "application/json",
                                            "is_active": True, "enable_ssl": False, "description": "qa"})
    assert code == 201, body
    return body


def _delivered(cvat_standin: CvatStandIn, receiver: WebhookReceiver) -> list[dict[str, Any]]:
    cvat_standin.flush_webhooks()
    for r in receiver.received:
        assert verify_signature(SECRET, r.body, r.headers["X-Signature-256"]), r.body[:200]
        assert r.headers["Content-Type"] == "application/json"
    return [r.json() for r in receiver.received]


def test_webhook_crud_and_events_list(api: Api, hook: dict[str, Any]) -> None:
    assert hook["events"] == sorted(EVENTS)
    _, listed = api.get("/api/webhooks")
    assert [h["id"] for h in listed["results"]] == [hook["id"]]
    code, patched = api.patch(f"/api/webhooks/{hook['id']}", {"is_active": False})
    assert code == 200 and patched["is_active"] is False
    _, events = api.get("/api/webhooks/events", type="organization")
    assert {"key": "completed:request[merge:job]", "group": {"display_name": "Consensus merge"}} in events["events"]
    assert api.post("/api/webhooks", {"target_url": "http://x", "type": "organization", "events": ["nope"]})[0] == 400
    assert api.call("DELETE", f"/api/webhooks/{hook['id']}")[0] == 204
    assert api.get(f"/api/webhooks/{hook['id']}")[0] == 404


def test_ping_is_delivered_synchronously(api: Api, cvat_standin: CvatStandIn, receiver: WebhookReceiver,
                                         hook: dict[str, Any]) -> None:
    code, delivery = api.post(f"/api/webhooks/{hook['id']}/ping")
    assert code == 200 and delivery["status_code"] == 200 and delivery["event"] == "ping"
    (payload,) = _delivered(cvat_standin, receiver)
    assert not structure_diff(recorded_deliveries("12_webhook_delivered_ping.json")[0], payload)
    _, deliveries = api.get(f"/api/webhooks/{hook['id']}/deliveries")
    assert deliveries["count"] == 1


def test_job_patches_raise_update_job_and_task_like_cvat(api: Api, cvat_standin: CvatStandIn,
                                                         receiver: WebhookReceiver, hook: dict[str, Any],
                                                         cvat_org_world: OrgWorld) -> None:
    sandbox = cvat_standin.add_task("sandbox", project_id=cvat_org_world.project_id, frames=4, owner="qabot")
    job = cvat_standin.jobs(task_id=sandbox)[0]["id"]
    for body in ({"assignee": cvat_org_world.user_ids["ann2"]}, {"stage": "validation", "state": "in progress"},
                 {"stage": "acceptance"}, {"state": "completed"}, {"stage": "annotation", "state": "rejected"}):
        assert api.patch(f"/api/jobs/{job}", body)[0] == 200
    payloads = _delivered(cvat_standin, receiver)
    recorded = recorded_deliveries("54_webhook_delivered_job_updates.json")
    assert Counter(p["event"] for p in payloads) == Counter(p["event"] for p in recorded)
    assert_shaped_like_recorded(payloads, "54_webhook_delivered_job_updates.json")
    stage_change = [p for p in payloads if p["event"] == "update:job"][1]
    assert set(stage_change["changes"]) == {"updated_date", "status", "stage", "state"}
    assert stage_change["changes"]["state"] == {"from": "new", "to": "in progress"}


def test_annotation_save_raises_updated_date_only(api: Api, cvat_standin: CvatStandIn, receiver: WebhookReceiver,
                                                  hook: dict[str, Any], cvat_org_world: OrgWorld) -> None:
    job = cvat_org_world.parent_job_ids[0]
    api.put(f"/api/jobs/{job}/annotations", {"shapes": [{"type": "rectangle", "frame": 0, "points": [0, 0, 1, 1],
                                                         "label_id": cvat_org_world.label_ids["car"]}]})
    payloads = _delivered(cvat_standin, receiver)
    assert [p["event"] for p in payloads] == ["update:job", "update:task", "update:project"]
    assert all(list(p["changes"]) == ["updated_date"] for p in payloads)
    assert_shaped_like_recorded(payloads, "47_webhook_delivered_annotation_save.json")


def test_issue_events(api: Api, cvat_standin: CvatStandIn, receiver: WebhookReceiver, hook: dict[str, Any],
                      cvat_org_world: OrgWorld) -> None:
    job = cvat_org_world.replica_of(cvat_org_world.parent_job_ids[0], "ann3")
    _, issue = api.post("/api/issues", {"job": job, "frame": 3, "position": [1.0, 2.0], "message": "m"})
    api.patch(f"/api/issues/{issue['id']}", {"resolved": True})
    payloads = _delivered(cvat_standin, receiver)
    assert [p["event"] for p in payloads] == ["create:issue", "create:comment", "update:issue"]
    assert payloads[0]["issue"]["comments"]["count"] == 0
    assert_shaped_like_recorded(payloads, "65_webhook_delivered_issues.json")


def test_merge_completion_event_and_subscription_filter(api: Api, cvat_standin: CvatStandIn,
                                                        receiver: WebhookReceiver, cvat_org_world: OrgWorld) -> None:
    api.post("/api/webhooks", {"target_url": receiver.url, "type": "organization",
                               "events": ["completed:request[merge:job]"], "secret": SECRET})
    parent = cvat_org_world.parent_job_ids[0]
    api.patch(f"/api/jobs/{cvat_org_world.gt_job_id}", {"state": "in progress"})  # not subscribed
    _, body = api.post("/api/consensus/merges", {"job_id": parent})
    payloads = _delivered(cvat_standin, receiver)
    assert [p["event"] for p in payloads] == ["completed:request[merge:job]"]
    assert payloads[0]["request"]["id"] == body["rq_id"] and payloads[0]["request"]["status"] == "finished"


def test_project_webhook_scope(api: Api, cvat_standin: CvatStandIn, receiver: WebhookReceiver,
                               cvat_org_world: OrgWorld) -> None:
    other = cvat_standin.add_project("other", org=cvat_org_world.org_slug, labels=[{"name": "x"}], owner="qabot")
    code, _ = api.post("/api/webhooks", {"target_url": receiver.url, "type": "project", "project_id": other,
                                         "events": ["update:job"], "secret": SECRET})
    assert code == 201
    api.patch(f"/api/jobs/{cvat_org_world.gt_job_id}", {"state": "in progress"})
    other_task = cvat_standin.add_task("t", project_id=other, frames=2, owner="qabot")
    api.patch(f"/api/jobs/{cvat_standin.jobs(task_id=other_task)[0]['id']}", {"state": "in progress"})
    payloads = _delivered(cvat_standin, receiver)
    assert [p["job"]["task_id"] for p in payloads] == [other_task]


def test_merge_raises_worker_style_events(api: Api, cvat_standin: CvatStandIn, receiver: WebhookReceiver,
                                          hook: dict[str, Any], cvat_org_world: OrgWorld) -> None:
    assert api.post("/api/consensus/merges", {"job_id": cvat_org_world.parent_job_ids[0]})[0] == 202
    payloads = _delivered(cvat_standin, receiver)
    recorded = recorded_deliveries("73_webhook_delivered_merge_job.json")
    assert [p["event"] for p in payloads] == [r["event"] for r in recorded]
    assert_shaped_like_recorded(payloads, "73_webhook_delivered_merge_job.json")
    job_events = [p for p in payloads if p["event"] == "update:job"]
    assert job_events[0]["job"]["url"].startswith("/api/jobs/") and job_events[0]["job"]["issues"] is None
    assert set(job_events[1]["changes"]) == {"updated_date", "state"}
    assert set(payloads[0]["sender"]) == {"id", "username", "email"}


def test_quality_settings_and_report_events(api: Api, cvat_standin: CvatStandIn, receiver: WebhookReceiver,
                                            hook: dict[str, Any], cvat_org_world: OrgWorld) -> None:
    _, page = api.get("/api/quality/settings", task_id=cvat_org_world.task_id)
    api.patch(f"/api/quality/settings/{page['results'][0]['id']}", {"iou_threshold": 0.5})
    api.post("/api/quality/reports", {"task_id": cvat_org_world.task_id})
    payloads = _delivered(cvat_standin, receiver)
    assert [p["event"] for p in payloads] == ["update:task", "completed:request[calculate:quality]"]
    assert_shaped_like_recorded(payloads[:1], "82w_webhook_delivered_quality_settings.json")
    assert_shaped_like_recorded(payloads[1:], "89_webhook_delivered_quality.json")
    assert payloads[1]["request"]["result_id"] is not None

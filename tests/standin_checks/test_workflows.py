"""Issues, comments, consensus merges, async requests, quality reports, guides and assets."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.conftest import OrgWorld
from tests.cvat_standin import CvatStandIn
from tests.standin_checks.conftest import Api


def _rect(label_id: int, frame: int, xyxy: list[float]) -> dict[str, Any]:
    return {"type": "rectangle", "frame": frame, "label_id": label_id, "points": xyxy}


def test_issue_lifecycle(api: Api, cvat_org_world: OrgWorld) -> None:
    w = cvat_org_world
    job = w.replica_of(w.parent_job_ids[0], "ann3")
    code, issue = api.post("/api/issues", {"job": job, "frame": 3, "position": [1.0, 2.0],
                                           "message": "first", "assignee": w.user_ids["ann3"]})
    assert code == 201 and issue["comments"]["count"] == 1 and issue["owner"]["username"] == "qabot"
    code, comment = api.post("/api/comments", {"issue": issue["id"], "message": "second"})
    assert code == 201 and comment["issue"] == issue["id"]
    _, comments = api.get("/api/comments", issue_id=issue["id"])
    assert [c["message"] for c in comments["results"]] == ["second", "first"]
    code, patched = api.patch(f"/api/issues/{issue['id']}", {"resolved": True})
    assert code == 200 and patched["resolved"] and patched["updated_date"] > issue["updated_date"]
    _, listed = api.get("/api/issues", job_id=job)
    assert [i["id"] for i in listed["results"]] == [issue["id"]]
    _, job_body = api.get(f"/api/jobs/{job}")
    assert job_body["issues"]["count"] == 1
    assert api.post("/api/issues", {"job": job, "frame": 0, "position": [1.0], "message": "x"})[0] == 400
    assert api.post("/api/issues", {"job": job, "frame": 0})[0] == 400
    assert api.call("DELETE", f"/api/issues/{issue['id']}")[0] == 204
    assert api.get(f"/api/issues/{issue['id']}")[0] == 404


def test_consensus_settings_ignore_unknown_fields(api: Api, cvat_org_world: OrgWorld) -> None:
    _, page = api.get("/api/consensus/settings", task_id=cvat_org_world.task_id)
    (settings,) = page["results"]
    assert settings["iou_threshold"] == 0.4
    assert api.patch(f"/api/consensus/settings/{settings['id']}", {"iou_threshold": 0.5})[1]["iou_threshold"] == 0.5
    assert api.patch(f"/api/consensus/settings/{settings['id']}", {"quorum": 0.6}) == (200, {**settings,
                                                                                             "iou_threshold": 0.5})
    assert api.patch(f"/api/consensus/settings/{settings['id']}", {"iou_threshold": 7})[0] == 400


def test_merge_replaces_parent_with_first_completed_replica(api: Api, cvat_standin: CvatStandIn,
                                                            cvat_org_world: OrgWorld) -> None:
    w = cvat_org_world
    parent = w.parent_job_ids[0]
    car, person = w.label_ids["car"], w.label_ids["person"]
    r1, r2, r3 = w.replica_job_ids[parent]
    cvat_standin.set_annotations(r1, {"shapes": [_rect(car, 0, [0, 0, 10, 10]), _rect(person, 1, [0, 0, 5, 5])],
                                      "tags": [{"frame": 0, "label_id": w.label_ids["blurry"]}]})
    cvat_standin.set_annotations(r2, {"shapes": [_rect(car, 0, [1, 1, 10, 10])]})
    cvat_standin.set_job(r3, state="new")
    cvat_standin.set_job(r1, state="in progress")  # r2 is the first *completed* replica
    cvat_standin.request_polls = 2
    code, body = api.post("/api/consensus/merges", {"job_id": parent})
    assert (code, body) == (202, {"rq_id": f"action=merge&target=job&target_id={parent}"})
    assert api.post("/api/consensus/merges", {"job_id": parent}) == (409, body)
    statuses = [api.get(f"/api/requests/{body['rq_id']}")[1]["status"] for _ in range(3)]
    assert statuses == ["queued", "started", "finished"]
    _, merged = api.get(f"/api/jobs/{parent}/annotations")
    assert [(s["frame"], s["source"], s["score"]) for s in merged["shapes"]] == [(0, "consensus", 1.0)]
    _, job = api.get(f"/api/jobs/{parent}")
    assert (job["stage"], job["state"]) == ("annotation", "completed")


def test_merge_preconditions(api: Api, cvat_standin: CvatStandIn, cvat_org_world: OrgWorld) -> None:
    plain = cvat_standin.add_task("plain", project_id=cvat_org_world.project_id, frames=4, owner="qabot")
    assert api.post("/api/consensus/merges", {"task_id": plain}) == (400, ["Consensus is not enabled in this task"])
    replica = cvat_org_world.replica_of(cvat_org_world.parent_job_ids[0], "ann1")
    assert api.post("/api/consensus/merges", {"job_id": replica})[0] == 400
    for job_id in cvat_org_world.replica_job_ids[cvat_org_world.parent_job_ids[1]]:
        cvat_standin.set_job(job_id, stage="annotation", state="new")
    assert api.post("/api/consensus/merges", {"job_id": cvat_org_world.parent_job_ids[1]})[0] == 400
    code, body = api.post("/api/consensus/merges", {"task_id": cvat_org_world.task_id})
    assert code == 202 and body["rq_id"].startswith("action=merge&target=task")
    assert api.get(f"/api/requests/{body['rq_id']}")[1]["status"] == "finished"
    assert api.get("/api/requests/action=merge&target=job&target_id=0")[0] == 404


def test_quality_report_flow(api: Api, cvat_standin: CvatStandIn, cvat_org_world: OrgWorld) -> None:
    w = cvat_org_world
    car = w.label_ids["car"]
    cvat_standin.set_annotations(w.gt_job_id, {"shapes": [_rect(car, 1, [0, 0, 10, 10]),
                                                          _rect(car, 7, [20, 20, 40, 40])]})
    ann1 = w.replica_of(w.parent_job_ids[0], "ann1")
    cvat_standin.set_annotations(ann1, {"shapes": [_rect(car, 1, [0, 0, 10, 10]), _rect(car, 8, [0, 0, 3, 3])]})
    _, settings_page = api.get("/api/quality/settings", task_id=w.task_id)
    settings_id = settings_page["results"][0]["id"]
    code, settings = api.patch(f"/api/quality/settings/{settings_id}", {"inherit": False, "iou_threshold": 0.5})
    assert code == 200 and settings["iou_threshold"] == 0.5
    assert api.patch(f"/api/quality/settings/{settings_id}", {"iou_threshold": "high"})[0] == 400
    code, body = api.post("/api/quality/reports", {"task_id": w.task_id})
    assert code == 202
    _, request = api.get(f"/api/requests/{body['rq_id']}")
    assert request["status"] == "finished" and request["operation"]["type"] == "calculate:quality"
    _, task_report = api.get(f"/api/quality/reports/{request['result_id']}")
    assert task_report["target"] == "task" and task_report["summary"]["jobs"]["included"] == 8
    _, jobs_page = api.get("/api/quality/reports", job_id=ann1)
    (job_report,) = jobs_page["results"]
    s = job_report["summary"]
    assert (s["valid_count"], s["gt_count"], s["ds_count"]) == (1, 2, 2)
    assert s["conflicts_by_type"] == {"missing_annotation": 1, "extra_annotation": 1}
    assert job_report["assignee"]["username"] == "ann1"
    _, conflicts = api.get("/api/quality/conflicts", report_id=task_report["id"])
    assert {c["report_id"] for c in conflicts["results"]} > {job_report["id"]}
    code, data = api.get(f"/api/quality/reports/{job_report['id']}/data")
    assert code == 200 and " " in data["created_date"] and set(data["frame_results"]) == {"1", "7", "8"}


def test_quality_report_needs_completed_gt(api: Api, cvat_standin: CvatStandIn, cvat_org_world: OrgWorld) -> None:
    task = cvat_standin.add_task("no gt", project_id=cvat_org_world.project_id, frames=4, owner="qabot")
    code, body = api.post("/api/quality/reports", {"task_id": task})
    assert code == 400 and body[0].startswith("Quality reports require a Ground Truth job")
    gt = cvat_standin.add_gt_job(task, [0, 1], stage="annotation", state="new")
    assert api.post("/api/quality/reports", {"task_id": task})[0] == 400
    cvat_standin.set_job(gt, stage="acceptance", state="completed")
    assert api.post("/api/quality/reports", {"task_id": task})[0] == 202


@pytest.mark.parametrize("filtered", [False, True])
def test_quality_job_filter(api: Api, cvat_org_world: OrgWorld, filtered: bool) -> None:
    _, page = api.get("/api/quality/settings", task_id=cvat_org_world.task_id)
    flt = '{"==": [{"var": "type"}, "annotation"]}' if filtered else ""
    api.patch(f"/api/quality/settings/{page['results'][0]['id']}", {"inherit": False, "job_filter": flt})
    _, body = api.post("/api/quality/reports", {"task_id": cvat_org_world.task_id})
    _, request = api.get(f"/api/requests/{body['rq_id']}")
    _, report = api.get(f"/api/quality/reports/{request['result_id']}")
    assert report["summary"]["jobs"]["included"] == (2 if filtered else 8)


def test_guide_and_asset(api: Api, cvat_standin: CvatStandIn, cvat_org_world: OrgWorld) -> None:
    code, guide = api.post("/api/guides", {"task_id": cvat_org_world.task_id, "markdown": "# QA\n"})
    assert code == 201 and set(guide) == {"id", "task_id", "project_id", "markdown"}
    png = b"\x89PNG\r\n\x1a\n" + b"x" * 20
    resp = api.session.post(f"{cvat_standin.url}/api/assets", files={"file": ("chart.png", png, "image/png")},
                            data={"guide_id": str(guide["id"])}, timeout=10)
    assert resp.status_code == 201
    asset = resp.json()
    code, patched = api.patch(f"/api/guides/{guide['id']}", {"markdown": f"![c](/api/assets/{asset['uuid']})\n"})
    assert code == 200 and patched["markdown"].endswith(")")
    got = api.session.get(f"{cvat_standin.url}/api/assets/{asset['uuid']}", timeout=10)
    assert got.content == png and got.headers["Content-Type"] == "image/png"
    _, task = api.get(f"/api/tasks/{cvat_org_world.task_id}")
    assert task["guide_id"] == guide["id"]
    assert api.get(f"/api/guides/{guide['id']}")[1]["created_date"]
    anon = requests.get(f"{cvat_standin.url}/api/assets/{asset['uuid']}", timeout=10)
    assert anon.status_code == 401


def test_injected_request_failure(api: Api, cvat_standin: CvatStandIn, cvat_org_world: OrgWorld) -> None:
    parent = cvat_org_world.parent_job_ids[0]
    cvat_standin.fail_next_request("merge:job", "TypeError: boom\n")
    _, body = api.post("/api/consensus/merges", {"job_id": parent})
    _, request = api.get(f"/api/requests/{body['rq_id']}")
    assert (request["status"], request["message"]) == ("failed", "TypeError: boom\n")
    _, job = api.get(f"/api/jobs/{parent}")
    assert job["state"] == "new"  # the work did not run
    _, body = api.post("/api/consensus/merges", {"job_id": parent})
    assert api.get(f"/api/requests/{body['rq_id']}")[1]["status"] == "finished"

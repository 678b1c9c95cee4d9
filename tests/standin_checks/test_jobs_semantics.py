"""Jobs, filters, pagination, permissions and annotation semantics of the stand-in (plain HTTP)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from tests.conftest import OrgWorld
from tests.cvat_standin import CvatStandIn
from tests.standin_checks.conftest import Api, make_api


def _ids(body: dict[str, Any]) -> list[int]:
    return [r["id"] for r in body["results"]]


def test_jobs_default_order_is_descending_id_and_pages_link(api: Api, cvat_org_world: OrgWorld) -> None:
    status, first = api.get("/api/jobs", page_size=4)
    assert status == 200 and first["count"] == 9
    seen = _ids(first)
    url = first["next"]
    while url:
        page = api.session.get(url, timeout=10).json()
        seen += _ids(page)
        url = page["next"]
    assert seen == sorted(seen, reverse=True) and len(seen) == 9
    assert api.get("/api/jobs", page=4, page_size=4)[0] == 404


@pytest.mark.parametrize(("query", "expected"), [
    ({"type": "ground_truth"}, lambda w: [w.gt_job_id]),
    ({"type": "consensus_replica", "parent_job_id": "P0"}, lambda w: sorted(w.replica_job_ids[w.parent_job_ids[0]],
                                                                              reverse=True)),
    ({"assignee": "ann2"}, lambda w: sorted((w.replica_of(p, "ann2") for p in w.parent_job_ids), reverse=True)),
    ({"filter": json.dumps({"and": [{"==": [{"var": "type"}, "annotation"]}, {"!": {"var": "assignee"}}]})},
     lambda w: sorted(w.parent_job_ids, reverse=True)),
    ({"filter": json.dumps({"in": [{"var": "stage"}, ["acceptance", "validation"]]})}, lambda w: [w.gt_job_id]),
    ({"filter": json.dumps({"or": [{"==": [{"var": "id"}, "P0"]}, {">=": [{"var": "id"}, "GT"]}]}),
      "sort": "id"}, lambda w: [w.parent_job_ids[0], w.gt_job_id]),
])
def test_job_filters(api: Api, cvat_org_world: OrgWorld, query: dict[str, str], expected: Any) -> None:
    w = cvat_org_world
    subst = {'"P0"': str(w.parent_job_ids[0]), '"GT"': str(w.gt_job_id), "P0": str(w.parent_job_ids[0])}
    q = {}
    for k, v in query.items():
        for a, b in subst.items():
            v = v.replace(a, b)
        q[k] = v
    status, body = api.get("/api/jobs", **q)
    assert status == 200, body
    assert _ids(body) == expected(w)


def test_updated_date_cursor_and_sort(api: Api, cvat_standin: CvatStandIn, cvat_org_world: OrgWorld) -> None:
    _, everything = api.get("/api/jobs", sort="updated_date", page_size="all")
    dates = [j["updated_date"] for j in everything["results"]]
    assert dates == sorted(dates)
    cursor = max(dates)
    job_id = cvat_org_world.parent_job_ids[1]
    api.put(f"/api/jobs/{job_id}/annotations", {"shapes": [], "tags": [], "tracks": []})
    flt = json.dumps({">": [{"var": "updated_date"}, cursor]})
    status, changed = api.get("/api/jobs", filter=flt, sort="-updated_date")
    assert status == 200 and _ids(changed) == [job_id]


def test_bad_filter_and_sort_are_400(api: Api) -> None:
    assert api.get("/api/jobs", filter="{not json")[0] == 400
    assert api.get("/api/jobs", filter=json.dumps({"xor": [1, 2]}))[0] == 400
    assert api.get("/api/jobs", sort="nope")[0] == 400


@pytest.mark.parametrize(("body", "stage", "state", "status"), [
    ({"stage": "validation", "state": "in progress"}, "validation", "in progress", "validation"),
    ({"stage": "acceptance"}, "acceptance", "new", "validation"),
    ({"stage": "acceptance", "state": "completed"}, "acceptance", "completed", "completed"),
    ({"state": "rejected"}, "annotation", "rejected", "annotation"),
])
def test_job_patch_stage_state_status(api: Api, cvat_org_world: OrgWorld, body: dict[str, str], stage: str,
                                      state: str, status: str) -> None:
    job_id = cvat_org_world.parent_job_ids[0]
    _, before = api.get(f"/api/jobs/{job_id}")
    code, job = api.patch(f"/api/jobs/{job_id}", body)
    assert code == 200
    assert (job["stage"], job["state"], job["status"]) == (stage, state, status)
    assert job["updated_date"] > before["updated_date"]


def test_job_patch_assignee_validation(api: Api, cvat_org_world: OrgWorld) -> None:
    job_id = cvat_org_world.parent_job_ids[0]
    code, job = api.patch(f"/api/jobs/{job_id}", {"assignee": cvat_org_world.user_ids["ann1"]})
    assert code == 200 and job["assignee"]["username"] == "ann1" and job["assignee_updated_date"]
    assert api.patch(f"/api/jobs/{job_id}", {"assignee": 9999})[0] == 400
    assert api.patch(f"/api/jobs/{job_id}", {"stage": "done"})[0] == 400
    code, job = api.patch(f"/api/jobs/{job_id}", {"assignee": None})
    assert code == 200 and job["assignee"] is None


def test_auth_errors(cvat_standin: CvatStandIn, cvat_org_world: OrgWorld) -> None:
    job = cvat_org_world.replica_of(cvat_org_world.parent_job_ids[0], "ann1")
    anon = requests.get(f"{cvat_standin.url}/api/jobs/{job}", timeout=10)
    assert anon.status_code == 401 and anon.headers["WWW-Authenticate"] == "Token"
    bad = make_api(cvat_standin, token="nope").get("/api/users/self")
    assert bad == (401, {"detail": "Invalid token."})
    assert make_api(cvat_standin, basic=("ann1", "wrong")).get("/api/jobs")[0] == 401
    assert requests.get(f"{cvat_standin.url}/api/server/about", timeout=10).status_code == 200


def test_permissions(cvat_standin: CvatStandIn, cvat_org_world: OrgWorld) -> None:
    w = cvat_org_world
    p0 = w.parent_job_ids[0]
    ann1_job, ann2_job = w.replica_of(p0, "ann1"), w.replica_of(p0, "ann2")
    outsider = make_api(cvat_standin, basic=("annotator1", w.password))
    assert outsider.get(f"/api/jobs/{ann1_job}")[0] == 403
    assert make_api(cvat_standin, basic=("annotator1", w.password), org=None).get(f"/api/jobs/{ann1_job}")[0] == 403
    ann2 = make_api(cvat_standin, basic=("ann2", w.password))
    assert ann2.get(f"/api/jobs/{ann1_job}")[0] == 403
    assert ann2.patch(f"/api/jobs/{ann1_job}", {"stage": "acceptance"})[0] == 403
    assert ann2.patch(f"/api/jobs/{ann2_job}", {"stage": "acceptance"})[0] == 403  # workers never change stage
    assert ann2.patch(f"/api/jobs/{ann2_job}", {"state": "in progress"})[0] == 200
    assert ann2.put(f"/api/jobs/{ann2_job}/annotations", {"shapes": []})[0] == 200
    assert ann2.put(f"/api/jobs/{ann1_job}/annotations", {"shapes": []})[0] == 403
    rev1 = make_api(cvat_standin, basic=("rev1", w.password))
    assert rev1.patch(f"/api/jobs/{ann1_job}", {"stage": "validation", "state": "in progress"})[0] == 200
    ro = make_api(cvat_standin, token=cvat_standin.add_token("qabot", read_only=True))
    assert ro.get(f"/api/jobs/{ann1_job}")[0] == 200
    assert ro.patch(f"/api/jobs/{ann1_job}", {"state": "new"})[0] == 403
    assert make_api(cvat_standin, token=w.bot_token).get("/api/jobs/999999") == (
        404, {"detail": "No Job matches the given query."})


def test_org_context_scopes_lists(cvat_standin: CvatStandIn, cvat_org_world: OrgWorld) -> None:
    cvat_standin.add_user("solo")
    cvat_standin.add_task("personal", labels=[{"name": "x", "type": "rectangle"}], frames=3, owner="solo")
    solo = make_api(cvat_standin, basic=("solo", "password"), org=None)
    _, mine = solo.get("/api/jobs")
    assert mine["count"] == 1
    assert solo.get("/api/jobs", org="qa-eval")[0] == 403
    bot = make_api(cvat_standin, token=cvat_org_world.bot_token, org=None)
    _, in_org = bot.get("/api/jobs", org="qa-eval")
    assert in_org["count"] == 9
    _, users = bot.get("/api/users", org="qa-eval")
    assert set(users["results"][0]) == {"url", "id", "username", "first_name", "last_name"}
    assert users["count"] == 6


def _shape(label_id: int, frame: int, points: list[float], shape_type: str = "rectangle", **extra: Any
           ) -> dict[str, Any]:
    return {"type": shape_type, "frame": frame, "label_id": label_id, "points": points, **extra}


def test_annotation_ids_echo_and_touch(api: Api, cvat_org_world: OrgWorld) -> None:
    w = cvat_org_world
    job_id = w.parent_job_ids[0]
    _, job_before = api.get(f"/api/jobs/{job_id}")
    skeleton = _shape(w.label_ids["pose"], 1, [], "skeleton", elements=[
        {"type": "points", "frame": 1, "label_id": w.label_ids[n], "points": [i, i]}
        for i, n in enumerate(("head", "l_hand", "r_hand", "l_foot", "r_foot"))])
    code, put = api.put(f"/api/jobs/{job_id}/annotations", {
        "shapes": [_shape(w.label_ids["car"], 0, [0, 0, 10, 10]), skeleton],
        "tags": [{"frame": 2, "label_id": w.label_ids["blurry"]}], "tracks": []})
    assert code == 200 and put["version"] == 0 and put["intervals"] == []
    ids = [s["id"] for s in put["shapes"]] + [e["id"] for e in put["shapes"][1]["elements"]]
    assert len(set(ids)) == 7 and ids[:2] == sorted(ids[:2]) and min(ids[2:]) > max(ids[:2])
    _, job_after = api.get(f"/api/jobs/{job_id}")
    assert job_after["updated_date"] > job_before["updated_date"]
    code, created = api.patch(f"/api/jobs/{job_id}/annotations",
                              {"shapes": [_shape(w.label_ids["car"], 99, [1, 1, 2, 2])]}, action="create")
    assert code == 200 and [s["frame"] for s in created["shapes"]] == [99]  # frames are not checked (surprise 7)
    car_id = put["shapes"][0]["id"]
    code, updated = api.patch(f"/api/jobs/{job_id}/annotations", {"shapes": [
        {**put["shapes"][0], "points": [5, 5, 20, 20], "rotation": 15.0}]}, action="update")
    assert code == 200 and updated["shapes"][0]["id"] == car_id
    code, _ = api.patch(f"/api/jobs/{job_id}/annotations", {"shapes": [{"id": car_id}]}, action="delete")
    assert code == 400
    code, deleted = api.patch(f"/api/jobs/{job_id}/annotations", {"shapes": [
        {"id": car_id, "type": "rectangle", "frame": 0, "label_id": w.label_ids["car"]}]}, action="delete")
    assert code == 200 and "elements" not in deleted["shapes"][0]
    _, now = api.get(f"/api/jobs/{job_id}/annotations")
    assert sorted(s["type"] for s in now["shapes"]) == ["rectangle", "skeleton"]
    assert [s["frame"] for s in now["shapes"] if s["type"] == "rectangle"] == [99]


@pytest.mark.parametrize(("shape_type", "points", "ok"), [
    ("rectangle", [0, 0, 1, 1], True), ("rectangle", [0, 0, 1], False), ("polygon", [0, 0, 5, 0, 5, 5], True),
    ("polygon", [10, 10, 50, 50], False), ("polyline", [0, 0, 1, 1], True), ("polyline", [0, 0], False),
    ("points", [3, 4], True), ("ellipse", [5, 5, 8, 2], True), ("ellipse", [5, 5, 8], False),
    ("mask", [0, 4, 2, 1, 3, 2], True), ("mask", [1, 2, 3], False), ("cuboid", list(range(16)), True),
    ("circle", [1, 2, 3], False),
])
def test_annotation_points_validation(api: Api, cvat_org_world: OrgWorld, shape_type: str, points: list[float],
                                      ok: bool) -> None:
    job_id = cvat_org_world.parent_job_ids[0]
    code, body = api.patch(f"/api/jobs/{job_id}/annotations",
                           {"shapes": [_shape(cvat_org_world.label_ids["person"], 0, points, shape_type)]},
                           action="create")
    assert code == (200 if ok else 400), body
    if not ok:
        assert list(body) == ["shapes"]


def test_annotation_unknown_label_and_missing_fields(api: Api, cvat_org_world: OrgWorld) -> None:
    job_id = cvat_org_world.parent_job_ids[0]
    code, body = api.patch(f"/api/jobs/{job_id}/annotations", {"shapes": [_shape(9999, 0, [0, 0, 1, 1])]},
                           action="create")
    assert code == 400 and "label_id" in body["shapes"][0]
    code, body = api.patch(f"/api/jobs/{job_id}/annotations", {"tags": [{"frame": 0}]}, action="create")
    assert code == 400 and body == {"tags": [{"label_id": ["This field is required."]}]}
    assert api.patch(f"/api/jobs/{job_id}/annotations", {}, action="merge")[0] == 400
    assert api.get(f"/api/jobs/{job_id}/annotations", format="CVAT for images 1.1")[0] == 410
    assert api.get(f"/api/jobs/{job_id}/annotations/")[0] == 200


def test_job_meta_and_gt_job(api: Api, cvat_org_world: OrgWorld) -> None:
    _, meta = api.get(f"/api/jobs/{cvat_org_world.gt_job_id}/data/meta")
    assert meta["size"] == 5 and meta["included_frames"] == [1, 7, 8, 11, 15]
    assert [f["name"] for f in meta["frames"]].count("placeholder.jpg") == 15
    _, job = api.get(f"/api/jobs/{cvat_org_world.gt_job_id}")
    assert (job["start_frame"], job["stop_frame"], job["frame_count"]) == (0, 19, 5)
    _, task = api.get(f"/api/tasks/{cvat_org_world.task_id}")
    assert task["jobs"]["count"] == 9 and task["consensus_enabled"] and task["validation_mode"] == "gt"
    code, _ = api.post("/api/jobs", {"type": "ground_truth", "task_id": cvat_org_world.task_id,
                                     "frame_selection_method": "manual", "frames": [0]})
    assert code == 400  # one GT job per task


def test_labels_endpoint(api: Api, cvat_org_world: OrgWorld) -> None:
    _, by_job = api.get("/api/labels", job_id=cvat_org_world.parent_job_ids[0])
    _, by_project = api.get("/api/labels", project_id=cvat_org_world.project_id)
    assert by_job == by_project
    pose = next(lb for lb in by_job["results"] if lb["name"] == "pose")
    assert [s["name"] for s in pose["sublabels"]] == ["head", "l_hand", "r_hand", "l_foot", "r_foot"]
    assert all(f'data-label-id="{s["id"]}"' in pose["svg"] for s in pose["sublabels"])
    sign = next(lb for lb in by_job["results"] if lb["name"] == "sign")
    assert [a["values"] for a in sign["attributes"]] == [["stop", "yield", "other"], ["false"]]


def test_task_and_project_lists(api: Api, cvat_standin: CvatStandIn, cvat_org_world: OrgWorld) -> None:
    other = cvat_standin.add_task("other", project_id=cvat_org_world.project_id, frames=2, owner="qabot")
    _, tasks = api.get("/api/tasks", project_id=cvat_org_world.project_id)
    assert _ids(tasks) == [other, cvat_org_world.task_id]
    _, gt_tasks = api.get("/api/tasks", validation_mode="gt")
    assert _ids(gt_tasks) == [cvat_org_world.task_id]
    _, projects = api.get("/api/projects")
    assert _ids(projects) == [cvat_org_world.project_id] and projects["results"][0]["tasks"]["count"] == 2
    ann1 = make_api(cvat_standin, basic=("ann1", cvat_org_world.password))
    assert _ids(ann1.get("/api/tasks")[1]) == [cvat_org_world.task_id]  # via an assigned replica

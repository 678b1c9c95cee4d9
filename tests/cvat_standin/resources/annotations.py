"""/api/jobs/{id}/annotations: GET, PUT, PATCH ?action=create|update|delete, DELETE.

Objects are stored in canonical GET form. Validation follows what the recordings show (E04, 45):
points length per shape type, required ``type``/``frame``/``label_id``, and labels of the task;
frames outside the job and boxes outside the image are accepted as sent (surprise 7).
PUT/PATCH answer with LabeledData echoing the saved objects (surprise 1); ``version`` is always 0.
"""

from __future__ import annotations

import copy
from typing import Any

from tests.cvat_standin.resources import webhooks
from tests.cvat_standin.resources.jobs import load_job
from tests.cvat_standin.routing import HttpError, Request, Response, Router, bad_request
from tests.cvat_standin.world import JobRec, World

KINDS = ("tags", "shapes", "tracks")
SOURCES = ("manual", "auto", "semi-auto", "file", "consensus")
GONE_TEXT = (
    "This endpoint is no longer supported.\nTo initiate the export process, use POST "
    "/api/jobs/id/dataset/export?save_images=False.\nTo check the process status, use GET /api/requests/rq_id,\n"
    "where rq_id is obtained from the response of the previous request.\nTo download the prepared file, use the "
    "result_url obtained from the response of the previous request.\n"
)
ID_KIND = {"tags": "tag", "shapes": "shape", "tracks": "track"}


def register(r: Router) -> None:
    r.add("GET", "/api/jobs/{id}/annotations", get_annotations)
    r.add("PUT", "/api/jobs/{id}/annotations", put_annotations)
    r.add("PATCH", "/api/jobs/{id}/annotations", patch_annotations)
    r.add("DELETE", "/api/jobs/{id}/annotations", delete_annotations)


def labeled_data(ann: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {"version": 0, "tags": copy.deepcopy(ann["tags"]), "shapes": copy.deepcopy(ann["shapes"]),
            "tracks": copy.deepcopy(ann["tracks"]), "intervals": []}


def get_annotations(ctx: Request) -> Response:
    job = load_job(ctx)
    if "format" in ctx.query or "action" in ctx.query:
        return Response(410, content_type="text/html; charset=utf-8", raw=GONE_TEXT.encode())
    return Response(body=labeled_data(job.annotations))


# validation -----------------------------------------------------------------------------------------
def _points_ok(shape_type: str, points: list[Any]) -> bool:
    n = len(points)
    rules = {
        "rectangle": n == 4, "ellipse": n == 4, "cuboid": n == 16, "polygon": n >= 6 and n % 2 == 0,
        "polyline": n >= 4 and n % 2 == 0, "points": n >= 2 and n % 2 == 0, "mask": n >= 5, "skeleton": True,
    }
    return rules.get(shape_type, False)


def _validate_object(w: World, job: JobRec, kind: str, obj: Any, *, delete: bool) -> dict[str, list[str]]:
    """DRF-style field errors of one tag/shape/track ({} when valid)."""
    if not isinstance(obj, dict):
        return {"non_field_errors": ["Invalid data. Expected a dictionary."]}
    errors: dict[str, list[str]] = {}
    required = ["frame", "label_id"] + (["type"] if kind == "shapes" else [])
    for name in required:
        if name not in obj:
            errors[name] = ["This field is required."]
    if delete:
        if "id" not in obj:
            errors["id"] = ["This field is required."]
        return errors
    if kind == "shapes" and "type" in obj and not _points_ok(obj["type"], obj.get("points", [])):
        errors["points"] = [f"invalid length for shape type '{obj['type']}'"]
    if obj.get("source", "manual") not in SOURCES:
        errors["source"] = [f'"{obj["source"]}" is not a valid choice.']
    label_ids = _label_ids(w, job)
    if "label_id" in obj and obj["label_id"] not in label_ids:
        errors["label_id"] = [f"label {obj['label_id']} is not a label of task {job.task_id}"]
    return errors


def _label_ids(w: World, job: JobRec) -> set[int]:
    ids: set[int] = set()
    for lb in w.task_labels(job.task_id):
        ids.add(lb.id)
        ids.update(lb.sublabel_ids)
    return ids


def validate_payload(w: World, job: JobRec, data: Any, *, delete: bool = False) -> dict[str, list[dict[str, Any]]]:
    """The payload as {kind: [objects]}; 400 with per-object errors when anything is invalid."""
    if not isinstance(data, dict):
        raise bad_request({"non_field_errors": ["Invalid data. Expected a dictionary."]})
    out: dict[str, list[dict[str, Any]]] = {}
    errors: dict[str, list[dict[str, list[str]]]] = {}
    for kind in KINDS:
        items = data.get(kind, [])
        if not isinstance(items, list):
            raise bad_request({kind: ['Expected a list of items but got type "dict".']})
        item_errors = [_validate_object(w, job, kind, obj, delete=delete) for obj in items]
        if any(item_errors):
            errors[kind] = item_errors
        out[kind] = items
    if errors:
        raise bad_request(errors)
    return out


# canonical forms ------------------------------------------------------------------------------------
def _attrs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"spec_id": a["spec_id"], "value": str(a["value"])} for a in obj.get("attributes", [])]


def canonical_tag(obj: dict[str, Any], tag_id: int) -> dict[str, Any]:
    return {"id": tag_id, "label_id": obj["label_id"], "frame": obj["frame"], "group": obj.get("group") or 0,
            "source": obj.get("source", "manual"), "attributes": _attrs(obj)}


def canonical_shape(w: World, obj: dict[str, Any], *, element: bool = False, keep_id: bool = False) -> dict[str, Any]:
    """GET form of a shape; new ids for it and its elements unless ``keep_id``."""
    shape: dict[str, Any] = {
        "id": obj["id"] if keep_id else w.next_id("shape"), "label_id": obj["label_id"], "type": obj["type"],
        "frame": obj["frame"], "group": obj.get("group") or 0, "source": obj.get("source", "manual"),
        "score": float(obj.get("score", 1.0)), "occluded": bool(obj.get("occluded", False)),
        "outside": bool(obj.get("outside", False)), "z_order": int(obj.get("z_order", 0)),
        "rotation": float(obj.get("rotation", 0.0)), "points": [float(p) for p in obj.get("points", [])],
        "attributes": _attrs(obj),
    }
    if not element:
        shape["elements"] = obj.get("elements", [])
    return shape


def _assign_element_ids(w: World, shapes: list[dict[str, Any]], *, keep_id: bool) -> None:
    """Elements get ids after all top-level shapes of the request, as CVAT's bulk insert does."""
    for shape in shapes:
        shape["elements"] = [canonical_shape(w, {**e, "frame": e.get("frame", shape["frame"])}, element=True,
                                             keep_id=keep_id and "id" in e)
                             for e in shape["elements"]]


def canonical_track(w: World, obj: dict[str, Any], *, keep_id: bool = False) -> dict[str, Any]:
    shapes = []
    for s in obj.get("shapes", []):
        shapes.append({
            "id": s["id"] if keep_id and "id" in s else w.next_id("tracked_shape"), "type": s["type"],
            "frame": s["frame"], "occluded": bool(s.get("occluded", False)),
            "outside": bool(s.get("outside", False)), "z_order": int(s.get("z_order", 0)),
            "rotation": float(s.get("rotation", 0.0)), "points": [float(p) for p in s.get("points", [])],
            "attributes": _attrs(s),
        })
    return {
        "id": obj["id"] if keep_id and "id" in obj else w.next_id("track"), "label_id": obj["label_id"],
        "frame": obj["frame"], "group": obj.get("group") or 0, "source": obj.get("source", "manual"),
        "shapes": shapes, "attributes": _attrs(obj),
        "elements": [canonical_track(w, e, keep_id=keep_id) for e in obj.get("elements", [])],
    }


def canonicalize(w: World, payload: dict[str, list[dict[str, Any]]], *, keep_ids: bool = False
                 ) -> dict[str, list[dict[str, Any]]]:
    """New canonical objects for a payload (fresh ids unless ``keep_ids`` and the object has one)."""
    tags = [canonical_tag(t, t["id"] if keep_ids and "id" in t else w.next_id("tag")) for t in payload["tags"]]
    shapes = [canonical_shape(w, s, keep_id=keep_ids and "id" in s) for s in payload["shapes"]]
    _assign_element_ids(w, shapes, keep_id=keep_ids)
    tracks = [canonical_track(w, t, keep_id=keep_ids) for t in payload["tracks"]]
    return {"tags": tags, "shapes": shapes, "tracks": tracks}


# verbs ----------------------------------------------------------------------------------------------
def _touch_and_emit(ctx: Request, job: JobRec) -> None:
    """Saving touches job/task/project ``updated_date`` and raises their update events."""
    before = ctx.w.touch_job(job)
    webhooks.emit_annotations_saved(ctx, job, before)


def _saved(ctx: Request, job: JobRec, echo: dict[str, list[dict[str, Any]]]) -> Response:
    _touch_and_emit(ctx, job)
    return Response(body={"version": 0, **echo, "intervals": []})


def put_annotations(ctx: Request) -> Response:
    w = ctx.w
    job = load_job(ctx, write=True)
    payload = validate_payload(w, job, ctx.json())
    job.annotations = canonicalize(w, payload)
    return _saved(ctx, job, copy.deepcopy(job.annotations))


def patch_annotations(ctx: Request) -> Response:
    w = ctx.w
    job = load_job(ctx, write=True)
    action = ctx.query.get("action")
    if action not in ("create", "update", "delete"):
        raise bad_request({"action": ["expected one of: create, update, delete"]})
    payload = validate_payload(w, job, ctx.json(), delete=action == "delete")
    if action == "create":
        echo = canonicalize(w, payload)
        for kind in KINDS:
            job.annotations[kind].extend(copy.deepcopy(echo[kind]))
    elif action == "update":
        echo = _update(w, job, payload)
    else:
        echo = _delete(job, payload)
    return _saved(ctx, job, echo)


def _update(w: World, job: JobRec, payload: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    echo: dict[str, list[dict[str, Any]]] = {k: [] for k in KINDS}
    for kind in KINDS:
        stored = {o["id"]: i for i, o in enumerate(job.annotations[kind])}
        for obj in payload[kind]:
            if "id" not in obj:  # update without id acts as create
                new = canonicalize(w, {**{k: [] for k in KINDS}, kind: [obj]})[kind][0]
                job.annotations[kind].append(new)
                echo[kind].append(copy.deepcopy(new))
                continue
            if obj["id"] not in stored:
                raise HttpError(400, [f"{ID_KIND[kind]} {obj['id']} does not exist in job {job.id}"])
            merged = {**job.annotations[kind][stored[obj["id"]]], **obj}
            new = canonicalize(w, {**{k: [] for k in KINDS}, kind: [merged]}, keep_ids=True)[kind][0]
            job.annotations[kind][stored[obj["id"]]] = new
            echo[kind].append(copy.deepcopy(new))
    return echo


def _delete(job: JobRec, payload: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    echo: dict[str, list[dict[str, Any]]] = {k: [] for k in KINDS}
    for kind in KINDS:
        ids = {o["id"] for o in payload[kind]}
        kept = [o for o in job.annotations[kind] if o["id"] not in ids]
        gone = [o for o in job.annotations[kind] if o["id"] in ids]
        job.annotations[kind] = kept
        for obj in gone:
            sent = next(o for o in payload[kind] if o["id"] == obj["id"])
            echoed = {k: v for k, v in obj.items() if k != "elements" or "elements" in sent}
            echo[kind].append(copy.deepcopy(echoed))
    return echo


def delete_annotations(ctx: Request) -> Response:
    job = load_job(ctx, write=True)
    job.annotations = {k: [] for k in KINDS}
    _touch_and_emit(ctx, job)
    return Response(204, None)

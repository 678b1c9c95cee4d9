"""/api/consensus/settings, /api/consensus/merges and /api/requests/{rq_id}.

Merge semantics (deliberately simple, not CVAT's IntersectMerge): the replicas taking part are those
not in (annotation, new); the parent's annotations are replaced by the annotations of the **first
completed replica** (lowest job id with state ``completed``), or of the first taking part when none is
completed. Shapes get ``source: consensus`` and ``score`` = share of taking-part replicas having a
shape with the same (frame, label, type); tags keep ``source: file`` (surprise 16). The parent's state
becomes ``completed``; its stage is left unchanged.

Async requests answer ``request_polls`` unfinished polls of ``GET /api/requests/{rq_id}`` (``queued``,
then ``started``) before ``finished`` (default 0: done at once); the work runs when it finishes.
A second request for the same target while one is unfinished answers 409 ``{"rq_id"}``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from tests.cvat_standin import serializers as ser
from tests.cvat_standin.access import require_job_view, require_task_maintainer
from tests.cvat_standin.filters import paginate
from tests.cvat_standin.resources import webhooks
from tests.cvat_standin.resources.annotations import canonicalize
from tests.cvat_standin.routing import HttpError, Request, Response, Router, bad_request, forbidden, not_found
from tests.cvat_standin.world import JobRec, RequestRec, World, iso

NO_CACHE = {"Cache-Control": "max-age=0, no-cache, no-store, must-revalidate, private"}


def register(r: Router) -> None:
    r.add("GET", "/api/consensus/settings", list_settings)
    r.add("GET", "/api/consensus/settings/{id}", get_settings)
    r.add("PATCH", "/api/consensus/settings/{id}", patch_settings)
    r.add("POST", "/api/consensus/merges", create_merge)
    r.add("GET", "/api/requests/{id}", get_request)


def _require_maintainer_of_task(ctx: Request, task_id: int) -> None:
    require_task_maintainer(ctx.w, ctx.me, ctx.w.tasks[task_id])


def list_settings(ctx: Request) -> Response:
    w = ctx.w
    items = list(w.consensus_settings.values())
    if "task_id" in ctx.query:
        tid = int(ctx.query["task_id"])
        if tid not in w.tasks:
            raise not_found("Task")
        _require_maintainer_of_task(ctx, tid)
        items = [s for s in items if s.task_id == tid]
    else:
        items = [s for s in items if s.task_id is not None and w.tasks[s.task_id].org_id == ctx.org_id]
    return Response(body=paginate(ctx, sorted(items, key=lambda s: s.id), ser.settings))


def _load_settings(ctx: Request) -> Any:
    s = ctx.w.consensus_settings.get(ctx.int_param())
    if s is None:
        raise not_found("ConsensusSettings")
    assert s.task_id is not None
    _require_maintainer_of_task(ctx, s.task_id)
    return s


def get_settings(ctx: Request) -> Response:
    return Response(body=ser.settings(_load_settings(ctx)))


def patch_settings(ctx: Request) -> Response:
    """Only ``iou_threshold`` is writable; unknown fields (``quorum``) are ignored (surprise 18)."""
    s = _load_settings(ctx)
    body = ctx.json_object()
    if "iou_threshold" in body:
        value = body["iou_threshold"]
        if not isinstance(value, int | float) or not 0 <= value <= 1:
            raise bad_request({"iou_threshold": ["Ensure this value is between 0 and 1."]})
        s.values["iou_threshold"] = float(value)
        s.updated_date = ctx.w.now()
    return Response(body=ser.settings(s))


# async requests ------------------------------------------------------------------------------------
def start_request(ctx: Request, rq_id: str, rq_type: str, target: str, *, task_id: int, job_id: int | None,
                  run: Callable[[], int | None]) -> Response:
    """Register an async request (409 while the same one is unfinished); answers 202 ``{rq_id}``."""
    w = ctx.w
    existing = w.requests.get(rq_id)
    if existing is not None and existing.status in ("queued", "started"):
        raise HttpError(409, {"rq_id": rq_id})
    task = w.tasks[task_id]
    w.requests[rq_id] = RequestRec(rq_id, rq_type, target, ctx.me.id, task.org_id, task.project_id, task_id,
                                   job_id, w.now(), w.request_polls, run)
    if w.request_polls == 0:
        finish_request(w, w.requests[rq_id])
    return Response(202, {"rq_id": rq_id})


def finish_request(w: World, r: RequestRec) -> None:
    """Run the request's work now and raise its ``completed:request[...]`` webhook."""
    r.started_date = r.started_date or w.now()
    failures = w.request_failures.get(r.type)
    if failures:
        r.status, r.message = "failed", failures.pop(0)
    else:
        try:
            r.result_id = r.run()
            r.status = "finished"
        except HttpError as err:
            r.status, r.message = "failed", str(err.body)
    r.finished_date = w.now()
    webhooks.emit_request_completed(w, r)


def get_request(ctx: Request) -> Response:
    """The first of ``request_polls`` unfinished polls answers ``queued``, later ones ``started``."""
    w = ctx.w
    r = w.requests.get(ctx.params["id"])
    if r is None:
        raise not_found("Request")
    if r.owner_id != ctx.me.id and not ctx.me.is_superuser:
        raise forbidden()
    if r.status in ("queued", "started"):
        if r.polls_left > 0:
            body = ser.request(w, r)
            r.polls_left -= 1
            r.status, r.started_date = "started", r.started_date or w.now()
            return Response(body=body, headers=NO_CACHE)
        finish_request(w, r)
    return Response(body=ser.request(w, r), headers=NO_CACHE)


# merge ---------------------------------------------------------------------------------------------
def create_merge(ctx: Request) -> Response:
    w = ctx.w
    body = ctx.json_object()
    if "job_id" in body:
        parent = w.jobs.get(body["job_id"])
        if parent is None:
            raise not_found("Job")
        require_job_view(w, ctx.me, parent)
        task_id = parent.task_id
        parents = [parent]
        target, rq_type = "job", "merge:job"
    elif "task_id" in body:
        if body["task_id"] not in w.tasks:
            raise not_found("Task")
        task_id = body["task_id"]
        parents = [j for j in w.jobs.values() if j.task_id == task_id and j.type == "annotation"]
        target, rq_type = "task", "merge:task"
    else:
        raise bad_request({"non_field_errors": ["one of job_id, task_id is required"]})
    _require_maintainer_of_task(ctx, task_id)
    if w.tasks[task_id].consensus_replicas == 0:
        raise bad_request(["Consensus is not enabled in this task"])
    for parent in parents:
        if parent.type != "annotation" or parent.parent_job_id is not None:
            raise bad_request([f"Job {parent.id} is not a consensus parent job"])
        if parent.stage != "annotation":
            raise bad_request([f"Job {parent.id} is not in the annotation stage"])
    if not any(_taking_part(w, p) for p in parents):
        raise bad_request(["No annotated consensus replicas found"])
    target_id = parents[0].id if target == "job" else task_id
    rq_id = f"action=merge&target={target}&target_id={target_id}"

    sender_id = ctx.me.id

    def run() -> None:
        for parent in parents:
            merge_parent(w, parent, sender_id)
        return None

    return start_request(ctx, rq_id, rq_type, target, task_id=task_id,
                         job_id=parents[0].id if target == "job" else None, run=run)


def _taking_part(w: World, parent: JobRec) -> list[JobRec]:
    replicas = sorted((j for j in w.jobs.values() if j.parent_job_id == parent.id), key=lambda j: j.id)
    return [r for r in replicas if (r.stage, r.state) != ("annotation", "new")]


def merge_parent(w: World, parent: JobRec, sender_id: int) -> None:
    """Replace the parent's annotations (see the module docstring for the rule); worker-style events."""
    replicas = _taking_part(w, parent)
    if not replicas:
        return
    chosen = next((r for r in replicas if r.state == "completed"), replicas[0])
    votes: dict[tuple[int, int, str], int] = {}
    for r in replicas:
        for key in {(s["frame"], s["label_id"], s["type"]) for s in r.annotations["shapes"]}:
            votes[key] = votes.get(key, 0) + 1
    merged = canonicalize(w, copy.deepcopy(chosen.annotations))
    for shape in merged["shapes"]:
        shape["source"] = "consensus"
        shape["score"] = round(votes.get((shape["frame"], shape["label_id"], shape["type"]), 1) / len(replicas), 2)
    for tag in merged["tags"]:
        tag["source"] = "file"
    for track in merged["tracks"]:
        track["source"] = "consensus"
    parent.annotations = merged
    sender = webhooks.worker_sender(w, sender_id)
    before = w.touch_job(parent)
    webhooks.emit_saved(w, parent, before, base="", sender=sender, job_body=webhooks.worker_job(w, parent))
    old = {"updated_date": iso(parent.updated_date), "state": parent.state}
    parent.state = "completed"
    parent.updated_date = w.now()
    task = w.tasks[parent.task_id]
    webhooks.emit_change(w, "job", webhooks.worker_job(w, parent), old,
                         {"updated_date": iso(parent.updated_date), "state": parent.state}, sender=sender,
                         org_id=task.org_id, project_id=task.project_id)

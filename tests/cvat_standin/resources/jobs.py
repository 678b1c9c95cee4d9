"""/api/projects/{id}, /api/tasks/{id}, /api/labels, /api/jobs (list, get, patch, GT create/delete, data/meta)."""

from __future__ import annotations

from typing import Any

from tests.cvat_standin import serializers as ser
from tests.cvat_standin.access import (
    can_view_job,
    in_context,
    require_job_edit,
    require_job_view,
    require_org_role,
    role_rank,
)
from tests.cvat_standin.filters import apply_list_params, paginate
from tests.cvat_standin.resources import webhooks
from tests.cvat_standin.routing import Request, Response, Router, bad_request, forbidden, not_found
from tests.cvat_standin.world import ROLE_RANK, JobRec, ProjectRec, TaskRec, World, iso

STAGES = ("annotation", "validation", "acceptance")
STATES = ("new", "in progress", "completed", "rejected")
JOB_FILTERS = ("task_id", "project_id", "type", "parent_job_id", "stage", "state", "assignee", "task_name",
               "project_name", "dimension", "mode", "media_type")


def register(r: Router) -> None:
    r.add("GET", "/api/projects", list_projects)
    r.add("GET", "/api/projects/{id}", get_project)
    r.add("GET", "/api/tasks", list_tasks)
    r.add("GET", "/api/tasks/{id}", get_task)
    r.add("GET", "/api/tasks/{id}/validation_layout", get_validation_layout)
    r.add("GET", "/api/labels", list_labels)
    r.add("GET", "/api/labels/{id}", get_label)
    r.add("GET", "/api/jobs", list_jobs)
    r.add("POST", "/api/jobs", create_gt_job)
    r.add("GET", "/api/jobs/{id}", get_job)
    r.add("PATCH", "/api/jobs/{id}", patch_job)
    r.add("DELETE", "/api/jobs/{id}", delete_job)
    r.add("GET", "/api/jobs/{id}/data/meta", job_meta)
    r.add("GET", "/api/jobs/{id}/data", job_frame)


# lookups with permissions -------------------------------------------------------------------------
def load_job(ctx: Request, *, write: bool = False, manage: bool = False) -> JobRec:
    job = ctx.w.jobs.get(ctx.int_param())
    if job is None:
        raise not_found("Job")
    if write:
        require_job_edit(ctx.w, ctx.me, job, manage=manage)
    else:
        require_job_view(ctx.w, ctx.me, job)
    return job


def load_task(ctx: Request, task_id: int) -> TaskRec:
    task = ctx.w.tasks.get(task_id)
    if task is None:
        raise not_found("Task")
    if not can_view_task(ctx.w, ctx, task):
        raise forbidden()
    return task


def can_view_task(w: World, ctx: Request, task: TaskRec) -> bool:
    me = ctx.me
    if me.id in (task.owner_id, task.assignee_id) or role_rank(w, me, task.org_id) >= ROLE_RANK["supervisor"]:
        return True
    return any(can_view_job(w, me, j) for j in w.jobs.values() if j.task_id == task.id)


def can_view_project(w: World, ctx: Request, p: ProjectRec) -> bool:
    if p.owner_id == ctx.me.id or role_rank(w, ctx.me, p.org_id) >= ROLE_RANK["supervisor"]:
        return True
    return any(can_view_task(w, ctx, t) for t in w.tasks.values() if t.project_id == p.id)


def get_project(ctx: Request) -> Response:
    w = ctx.w
    p = w.projects.get(ctx.int_param())
    if p is None:
        raise not_found("Project")
    if not can_view_project(w, ctx, p):
        raise forbidden()
    return Response(body=ser.project(w, ctx.base_url, p))


def list_projects(ctx: Request) -> Response:
    w = ctx.w
    items = [p for p in w.projects.values() if in_context(ctx, p.org_id) and can_view_project(w, ctx, p)]
    items = apply_list_params(ctx, items, lambda p: {"id": p.id, "name": p.name,
                                                     "owner": w.users[p.owner_id].username,
                                                     "updated_date": iso(p.updated_date)},
                              simple_filters=("name", "owner"))
    return Response(body=paginate(ctx, items, lambda p: ser.project(w, ctx.base_url, p)))


def get_task(ctx: Request) -> Response:
    return Response(body=ser.task(ctx.w, ctx.base_url, load_task(ctx, ctx.int_param())))


def get_validation_layout(ctx: Request) -> Response:
    return Response(body=ser.validation_layout(ctx.w, load_task(ctx, ctx.int_param())))


def list_tasks(ctx: Request) -> Response:
    w = ctx.w
    items = [t for t in w.tasks.values() if in_context(ctx, t.org_id) and can_view_task(w, ctx, t)]
    items = apply_list_params(ctx, items, lambda t: {
        "id": t.id, "name": t.name, "project_id": t.project_id, "owner": w.users[t.owner_id].username,
        "updated_date": iso(t.updated_date), "status": ser.task(w, "", t)["status"],
        "validation_mode": ser.task(w, "", t)["validation_mode"]},
        simple_filters=("name", "project_id", "owner", "status", "validation_mode"))
    return Response(body=paginate(ctx, items, lambda t: ser.task(w, ctx.base_url, t)))


# labels -------------------------------------------------------------------------------------------
def list_labels(ctx: Request) -> Response:
    w = ctx.w
    q = ctx.query
    if "job_id" in q:
        job = w.jobs.get(int(q["job_id"]))
        if job is None:
            raise not_found("Job")
        require_job_view(w, ctx.me, job)
        labels = w.task_labels(job.task_id)
    elif "task_id" in q:
        labels = w.task_labels(load_task(ctx, int(q["task_id"])).id)
    elif "project_id" in q:
        pid = int(q["project_id"])
        if pid not in w.projects:
            raise not_found("Project")
        labels = [lb for lb in w.labels.values() if lb.project_id == pid and lb.parent_id is None]
    else:
        labels = [lb for lb in w.labels.values() if lb.parent_id is None and in_context(ctx, _label_org(w, lb))]
    labels = apply_list_params(ctx, labels, lambda lb: {"id": lb.id, "name": lb.name, "type": lb.type,
                                                        "color": lb.color, "parent_id": lb.parent_id},
                               simple_filters=("name", "type", "color", "parent_id"), default_sort="id")
    return Response(body=paginate(ctx, labels, lambda lb: ser.label(w, lb)))


def _label_org(w: World, lb: Any) -> int | None:
    if lb.project_id is not None:
        return w.projects[lb.project_id].org_id
    return w.tasks[lb.task_id].org_id


def get_label(ctx: Request) -> Response:
    lb = ctx.w.labels.get(ctx.int_param())
    if lb is None:
        raise not_found("Label")
    return Response(body=ser.label(ctx.w, lb))


# jobs ---------------------------------------------------------------------------------------------
def job_row(w: World, j: JobRec) -> dict[str, Any]:
    """The values CVAT's job filters and sort see."""
    t = w.tasks[j.task_id]
    return {
        "id": j.id, "task_id": j.task_id, "project_id": t.project_id, "type": j.type,
        "parent_job_id": j.parent_job_id, "stage": j.stage, "state": j.state, "status": ser.job_status(j),
        "assignee": w.users[j.assignee_id].username if j.assignee_id else None,
        "task_name": t.name, "project_name": w.projects[t.project_id].name if t.project_id else None,
        "dimension": "2d", "mode": "annotation", "media_type": "image",
        "updated_date": iso(j.updated_date), "created_date": iso(j.created_date), "frame_count": len(j.frames),
    }


def list_jobs(ctx: Request) -> Response:
    w = ctx.w
    visible = [j for j in w.jobs.values()
               if in_context(ctx, w.job_org(j)) and can_view_job(w, ctx.me, j)]
    jobs = apply_list_params(ctx, visible, lambda j: job_row(w, j), simple_filters=JOB_FILTERS)
    return Response(body=paginate(ctx, jobs, lambda j: ser.job(w, ctx.base_url, j)))


def get_job(ctx: Request) -> Response:
    return Response(body=ser.job(ctx.w, ctx.base_url, load_job(ctx)))


def patch_job(ctx: Request) -> Response:
    """``{assignee, stage, state}``; a stage change without a state resets the state to ``new``."""
    w = ctx.w
    body = ctx.json_object()
    job = load_job(ctx, write=True, manage="stage" in body or "assignee" in body)
    errors: dict[str, list[str]] = {}
    if "stage" in body and body["stage"] not in STAGES:
        errors["stage"] = [f'"{body["stage"]}" is not a valid choice.']
    if "state" in body and body["state"] not in STATES:
        errors["state"] = [f'"{body["state"]}" is not a valid choice.']
    assignee = body.get("assignee", job.assignee_id)
    if assignee is not None and (not isinstance(assignee, int) or assignee not in w.users):
        errors["assignee"] = [f'Invalid pk "{assignee}" - object does not exist.']
    if errors:
        raise bad_request(errors)
    now = w.now()
    before = _job_tracked(job)
    task_body = ser.task(w, ctx.base_url, w.tasks[job.task_id])
    task_before = {"updated_date": task_body["updated_date"], "status": task_body["status"]}
    if "assignee" in body and assignee != job.assignee_id:
        job.assignee_id = assignee
        job.assignee_updated_date = now
    if "stage" in body and body["stage"] != job.stage:
        job.stage = body["stage"]
        job.state = "new"
    if "state" in body:
        job.state = body["state"]
    job.updated_date = now
    after = _job_tracked(job)
    webhooks.emit_job_update(ctx, job, before, after, task_before)
    return Response(body=ser.job(w, ctx.base_url, job))


def _job_tracked(job: JobRec) -> dict[str, Any]:
    return {"updated_date": iso(job.updated_date), "assignee_id": job.assignee_id,
            "assignee_updated_date": iso(job.assignee_updated_date), "stage": job.stage, "state": job.state,
            "status": ser.job_status(job)}


def create_gt_job(ctx: Request) -> Response:
    """``POST /api/jobs {type: ground_truth, task_id, frame_selection_method: manual, frames}`` only."""
    w = ctx.w
    body = ctx.json_object()
    if body.get("type") != "ground_truth":
        raise bad_request({"type": ["Only ground_truth jobs can be created"]})
    task = load_task(ctx, int(body.get("task_id", 0)))
    require_org_role(w, ctx.me, task.org_id, "maintainer", owner_id=task.owner_id)
    if any(j.task_id == task.id and j.type == "ground_truth" for j in w.jobs.values()):
        raise bad_request(["A task can have only 1 ground truth job"])
    frames = body.get("frames")
    if body.get("frame_selection_method") != "manual" or not isinstance(frames, list) or not frames:
        raise bad_request({"frame_selection_method": ["the stand-in supports only 'manual' with 'frames'"]})
    if any(not isinstance(f, int) or not 0 <= f < task.size for f in frames):
        raise bad_request({"frames": [f"frames must be in [0, {task.size - 1}]"]})
    job = add_job(w, task, "ground_truth", 0, task.size - 1, included_frames=sorted(set(frames)))
    webhooks.emit(w, "create:job", {"job": ser.job(w, ctx.base_url, job),
                                    "sender": ser.basic_user(w, ctx.base_url, ctx.me.id)},
                  org_id=task.org_id, project_id=task.project_id)
    return Response(201, ser.job(w, ctx.base_url, job), headers={"Location": f"{ctx.base_url}/api/jobs/{job.id}"})


def add_job(w: World, task: TaskRec, job_type: str, start: int, stop: int, *, parent_job_id: int | None = None,
            included_frames: list[int] | None = None) -> JobRec:
    now = w.now()
    job = JobRec(w.next_id("job"), task.id, job_type, "annotation", "new", start, stop, now, now,
                 parent_job_id=parent_job_id, included_frames=included_frames)
    w.jobs[job.id] = job
    return job


def delete_job(ctx: Request) -> Response:
    job = load_job(ctx, write=True, manage=True)
    if job.type != "ground_truth":
        raise bad_request(["Only ground truth jobs can be deleted"])
    del ctx.w.jobs[job.id]
    return Response(204, None)


def job_meta(ctx: Request) -> Response:
    job = load_job(ctx)
    return Response(body=data_meta(ctx.w.tasks[job.task_id], job.start_frame, job.stop_frame, job.included_frames))


def data_meta(task: TaskRec, start: int, stop: int, included_frames: list[int] | None) -> dict[str, Any]:
    """``/data/meta`` of frames ``start..stop`` (a job's, or the whole task's)."""
    frames = []
    for f in range(start, stop + 1):
        if task.images:
            image = task.images[f]
            name, width, height = image.name, image.width, image.height
        else:
            name, (width, height) = f"frame_{f:03d}.png", task.frame_size
        if included_frames is not None and f not in included_frames:
            name = "placeholder.jpg"
        frames.append({"width": width, "height": height, "name": name, "related_files": 0,
                       "has_related_context": False})
    size = len(included_frames) if included_frames is not None else stop - start + 1
    return {
        "chapters": None, "chunks_updated_date": iso(task.created_date), "chunk_size": ser.CHUNK_SIZE,
        "size": size, "image_quality": 95, "start_frame": start, "stop_frame": stop, "frame_filter": "",
        "frames": frames, "deleted_frames": [], "included_frames": included_frames, "storage": "local",
        "cloud_storage_id": None,
    }


def job_frame(ctx: Request) -> Response:
    """``?type=frame&number=N&quality=original|compressed``: a deterministic grey PNG per (task, frame)."""
    job = load_job(ctx)
    if ctx.query.get("type") != "frame":
        raise bad_request({"type": ["only type=frame is served by the stand-in"]})
    if ctx.query.get("quality", "compressed") not in ("original", "compressed"):
        raise bad_request({"quality": ["expected original or compressed"]})
    try:
        number = int(ctx.query.get("number", ""))
    except ValueError:
        raise bad_request({"number": ["A valid integer is required."]}) from None
    if number not in job.frames:
        raise bad_request({"detail": "The frame number doesn't belong to the job"})
    data, content_type = frame_bytes(ctx.w.tasks[job.task_id], number)
    return Response(content_type=content_type, raw=data)


def frame_bytes(task: TaskRec, number: int) -> tuple[bytes, str]:
    """Frame ``number``: the uploaded file of a task created over HTTP, else a generated PNG."""
    if task.images:
        image = task.images[number]
        return image.data, image.content_type
    return frame_png(task.id, number, task.frame_size), "image/png"


def frame_png(task_id: int, frame: int, size: tuple[int, int]) -> bytes:
    """An 8-bit greyscale PNG whose rows are a gradient shifted by ``task_id`` and ``frame``."""
    import struct
    import zlib

    width, height = size

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + bytes(((x + 7 * frame + 13 * task_id) & 0xFF) for x in range(width))
    rows = row * height
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")

"""Task creation over HTTP: ``POST /api/tasks``, ``POST|GET /api/tasks/{id}/data`` (recording T01).

What cvat-sdk's ``tasks.create_from_data`` does, and what the stand-in answers:

1. ``POST /api/tasks {name, project_id | labels, segment_size?, consensus_replicas?}`` → 201, the task
   without data (``size`` and the ``data_*`` fields absent; ``data`` null, ``dimension``/``mode``/
   ``media_type`` ``""``, ``overlap`` null, as recorded).
2. ``POST /api/tasks/{id}/data/`` with ``Upload-Start`` → 202, empty body.
3. ``POST /api/tasks/{id}/data/`` with ``Upload-Multiple``, multipart ``client_files[i]`` → 200, empty
   body (repeated while files remain; files larger than the SDK's request size would go over TUS,
   which the stand-in does not serve: 400).
4. ``POST /api/tasks/{id}/data/`` with ``Upload-Finish`` and ``{image_quality, sorting_method, ...}``
   → 202 ``{rq_id: "action=create&target=task&target_id=N"}``; the ``create:task`` request makes the
   jobs (one per segment, each followed by its consensus replicas) when it finishes.
A POST without any of the three headers carries files and fields in one multipart body (the
single-request form). ``GET /api/tasks/{id}/data/?type=frame&number=N`` returns the uploaded file.

The job layout, the quality settings and the consensus settings of a task are made by
:func:`build_task_jobs`, shared with ``CvatStandIn.add_task``.
"""

from __future__ import annotations

import io
import re
from typing import Any

from tests.cvat_standin import serializers as ser
from tests.cvat_standin.access import require_org_role
from tests.cvat_standin.resources import webhooks
from tests.cvat_standin.resources.consensus import start_request
from tests.cvat_standin.resources.guides import parse_multipart
from tests.cvat_standin.resources.jobs import add_job, data_meta, frame_bytes, load_task
from tests.cvat_standin.resources.quality import DEFAULT_QUALITY
from tests.cvat_standin.routing import HttpError, Request, Response, Router, bad_request, not_found
from tests.cvat_standin.world import ImageRec, SettingsRec, TaskRec, World

SORTING_METHODS = ("lexicographical", "natural", "predefined", "random")
TASK_FIELDS = {"name", "project_id", "labels", "segment_size", "consensus_replicas", "assignee_id", "overlap",
               "subset", "bug_tracker", "source_storage", "target_storage"}


def register(r: Router) -> None:
    r.add("POST", "/api/tasks", create_task)
    r.add("POST", "/api/tasks/{id}/data", upload_data)
    r.add("GET", "/api/tasks/{id}/data", task_frame)
    r.add("GET", "/api/tasks/{id}/data/meta", task_meta)


def add_quality_settings(w: World, *, task_id: int | None, project_id: int | None) -> None:
    now = w.now()
    s = SettingsRec(w.next_id("quality_settings"), "quality", task_id, project_id, dict(DEFAULT_QUALITY), now, now)
    w.quality_settings[s.id] = s


def build_task_jobs(w: World, task: TaskRec) -> None:
    """Annotation jobs per segment, each followed by its replicas; quality (+ consensus) settings."""
    annotated = task.size - task.validation_pool  # a gt_pool task's validation frames are in no annotation job
    for start in range(0, annotated, task.segment_size):
        stop = min(start + task.segment_size, annotated) - 1
        parent = add_job(w, task, "annotation", start, stop)
        for _ in range(task.consensus_replicas):
            add_job(w, task, "consensus_replica", start, stop, parent_job_id=parent.id)
    add_quality_settings(w, task_id=task.id, project_id=None)
    if task.consensus_replicas:
        now = w.now()
        cs = SettingsRec(w.next_id("consensus_settings"), "consensus", task.id, None, {"iou_threshold": 0.4}, now, now)
        w.consensus_settings[cs.id] = cs


# POST /api/tasks ------------------------------------------------------------------------------------
def _int_field(body: dict[str, Any], name: str, *, minimum: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise bad_request({name: [f"Ensure this value is greater than or equal to {minimum}."]})
    return value


def create_task(ctx: Request) -> Response:
    """Tasks are created in a project of the request's organization (inline labels are not served)."""
    w = ctx.w
    body = ctx.json_object()
    unknown = sorted(set(body) - TASK_FIELDS)
    if unknown:
        raise bad_request({k: ["Unknown field."] for k in unknown})
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise bad_request({"name": ["This field is required."]})
    if body.get("labels"):
        raise bad_request({"labels": ["the stand-in creates tasks in a project only (give project_id)"]})
    project_id = _int_field(body, "project_id", minimum=1)
    if project_id is None:
        raise bad_request({"project_id": ["This field is required."]})
    project = w.projects.get(project_id)
    if project is None:
        raise bad_request({"project_id": [f'Invalid pk "{project_id}" - object does not exist.']})
    if ctx.org_given and project.org_id != ctx.org_id:
        raise bad_request({"project_id": ["The project is in another organization."]})
    require_org_role(w, ctx.me, project.org_id, "supervisor", owner_id=project.owner_id)
    replicas = _int_field(body, "consensus_replicas", minimum=0) or 0
    if replicas == 1:
        raise bad_request({"consensus_replicas": ["Consensus replicas must be 0 or greater than 1."]})
    now = w.now()
    task = TaskRec(w.next_id("task"), name, project.org_id, project_id, ctx.me.id, 0, (0, 0),
                   _int_field(body, "segment_size", minimum=1) or 0, replicas, now, now, images=[], has_data=False)
    w.tasks[task.id] = task
    rendered = ser.task(w, ctx.base_url, task)
    webhooks.emit(w, "create:task", {"task": rendered, "sender": ser.basic_user(w, ctx.base_url, ctx.me.id)},
                  org_id=task.org_id, project_id=task.project_id)
    return Response(201, rendered, headers={"Location": f"{ctx.base_url}/api/tasks/{task.id}"})


# POST /api/tasks/{id}/data ----------------------------------------------------------------------------
def _load_task_for_upload(ctx: Request) -> TaskRec:
    task = load_task(ctx, ctx.int_param())
    require_org_role(ctx.w, ctx.me, task.org_id, "supervisor", owner_id=task.owner_id)
    if task.has_data:
        raise bad_request(["Adding more data is not supported"])
    return task


def _image(name: str, data: bytes) -> ImageRec:
    """An uploaded file as an image record; CVAT refuses files it cannot read as images."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            fmt = (img.format or "").lower()
    except (UnidentifiedImageError, OSError) as exc:
        raise bad_request({"client_files": [f"{name}: not an image ({exc})"]}) from exc
    return ImageRec(name.rsplit("/", 1)[-1], data, width, height, f"image/{'jpeg' if fmt == 'jpg' else fmt}")


def _receive_files(ctx: Request, task: TaskRec) -> dict[str, str]:
    """Store the multipart ``client_files[i]`` of one request; returns the other (text) fields."""
    fields = parse_multipart(ctx)
    if task.upload is None:
        task.upload = []
    text: dict[str, str] = {}
    for key, (filename, _ctype, data) in fields.items():
        if re.fullmatch(r"client_files\[\d+\]", key):
            task.upload.append(_image(filename or key, data))
        else:
            text[key] = data.decode("utf-8", "replace")
    return text


def _natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _order(images: list[ImageRec], sorting_method: str, file_order: Any) -> list[ImageRec]:
    if sorting_method == "predefined" and file_order:
        by_name = {i.name: i for i in images}
        names = [str(n).rsplit("/", 1)[-1] for n in file_order]
        if sorted(names) != sorted(by_name):
            raise bad_request({"upload_file_order": ["must list every uploaded file once"]})
        return [by_name[n] for n in names]
    if sorting_method == "lexicographical":
        return sorted(images, key=lambda i: i.name)
    if sorting_method == "natural":
        return sorted(images, key=lambda i: _natural_key(i.name))
    return list(images)  # predefined (upload order); random: the stand-in keeps upload order too


def _finish_upload(ctx: Request, task: TaskRec, fields: dict[str, Any]) -> Response:
    sorting = str(fields.get("sorting_method", "lexicographical"))
    if sorting not in SORTING_METHODS:
        raise bad_request({"sorting_method": [f'"{sorting}" is not a valid choice.']})
    if not task.upload:
        raise bad_request({"client_files": ["No media data found"]})
    images = _order(task.upload, sorting, fields.get("upload_file_order"))
    w = ctx.w

    def run() -> int | None:
        task.images, task.upload = images, None
        task.size = len(images)
        task.frame_size = (images[0].width, images[0].height)
        task.segment_size = task.segment_size or task.size
        build_task_jobs(w, task)
        task.has_data = True
        task.updated_date = w.now()
        return None

    return start_request(ctx, f"action=create&target=task&target_id={task.id}", "create:task", "task",
                         task_id=task.id, job_id=None, run=run)


def upload_data(ctx: Request) -> Response:
    task = _load_task_for_upload(ctx)
    headers = {k.lower() for k in ctx.headers}
    if "upload-start" in headers:
        task.upload = []
        return Response(202, raw=b"", content_type="")
    if "upload-multiple" in headers:
        _receive_files(ctx, task)
        return Response(200, raw=b"", content_type="")
    if "upload-finish" in headers:
        return _finish_upload(ctx, task, ctx.json_object() if ctx.raw_body else {})
    if "tus-resumable" in headers:
        raise HttpError(400, {"detail": "the stand-in does not serve TUS uploads (files above the SDK's request size)"})
    fields = _receive_files(ctx, task)  # the single-request form: files and fields in one body
    return _finish_upload(ctx, task, fields)


# GET /api/tasks/{id}/data ----------------------------------------------------------------------------
def task_frame(ctx: Request) -> Response:
    task = load_task(ctx, ctx.int_param())
    if ctx.query.get("type") != "frame":
        raise bad_request({"type": ["only type=frame is served by the stand-in"]})
    if not task.has_data:
        raise not_found("Data")
    try:
        number = int(ctx.query.get("number", ""))
    except ValueError:
        raise bad_request({"number": ["A valid integer is required."]}) from None
    if not 0 <= number < task.size:
        raise bad_request({"detail": f"The frame number should be in the [0, {task.size - 1}] range"})
    data, content_type = frame_bytes(task, number)
    return Response(content_type=content_type, raw=data)


def task_meta(ctx: Request) -> Response:
    task = load_task(ctx, ctx.int_param())
    if not task.has_data:
        raise not_found("Data")
    return Response(body=data_meta(task, 0, task.size - 1, None))

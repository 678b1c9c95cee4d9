"""POST /api/tasks (in a project) and POST /api/tasks/{id}/data (one multipart "Data" request).

A task created here has no frames until its data is attached, either by one multipart "Data"
request (``client_files`` parts + ``image_quality``; what ``CvatClient.create_task`` sends) or by
cvat-sdk's ``Upload-Start`` / ``Upload-Multiple`` / ``Upload-Finish`` sequence (recording T01).
Files keep their upload order (``sorting_method`` is not applied). The finish answers 202
``{rq_id}`` (``action=create&target=task&target_id=N``) and the request completes like every
async request; frames are the uploaded files, served as stored by
``GET /api/jobs/{id}/data?type=frame`` and ``GET /api/tasks/{id}/data?type=frame``. TUS chunked
uploads are not implemented (400).
"""

from __future__ import annotations

import io
import mimetypes

from tests.cvat_standin import serializers as ser
from tests.cvat_standin.access import require_org_role
from tests.cvat_standin.resources import webhooks
from tests.cvat_standin.resources.consensus import start_request
from tests.cvat_standin.resources.guides import multipart_parts
from tests.cvat_standin.resources.quality import DEFAULT_QUALITY
from tests.cvat_standin.routing import Request, Response, Router, bad_request
from tests.cvat_standin.world import SettingsRec, TaskRec


def register(r: Router) -> None:
    r.add("POST", "/api/tasks", create_task)
    r.add("POST", "/api/tasks/{id}/data", create_data)
    r.add("GET", "/api/tasks/{id}/data", task_frame)


def content_type(filename: str) -> str:
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def create_task(ctx: Request) -> Response:
    w = ctx.w
    body = ctx.json_object()
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise bad_request({"name": ["This field is required."]})
    project = w.projects.get(body.get("project_id")) if isinstance(body.get("project_id"), int) else None
    if project is None:
        if "labels" in body:
            raise bad_request({"labels": ["the stand-in creates tasks in a project only (give project_id)"]})
        raise bad_request({"project_id": ["Invalid pk - object does not exist."]})
    require_org_role(w, ctx.me, project.org_id, "supervisor", owner_id=project.owner_id)
    segment_size = body.get("segment_size") or 0
    if not isinstance(segment_size, int) or segment_size < 0:
        raise bad_request({"segment_size": ["Ensure this value is greater than or equal to 0."]})
    now = w.now()
    task = TaskRec(w.next_id("task"), name, project.org_id, project.id, ctx.me.id, 0, (0, 0), segment_size, 0, now,
                   now, files=[])
    w.tasks[task.id] = task
    settings = SettingsRec(w.next_id("quality_settings"), "quality", task.id, None, dict(DEFAULT_QUALITY), now, now)
    w.quality_settings[settings.id] = settings
    webhooks.emit(w, "create:task", {"task": ser.task(w, ctx.base_url, task),
                                     "sender": ser.basic_user(w, ctx.base_url, ctx.me.id)},
                  org_id=task.org_id, project_id=task.project_id)
    return Response(201, ser.task(w, ctx.base_url, task), headers={"Location": f"{ctx.base_url}/api/tasks/{task.id}"})


def _client_files(ctx: Request) -> list[tuple[str, bytes]]:
    return [(filename or f"file_{i}", data) for i, (name, filename, _, data) in enumerate(multipart_parts(ctx))
            if name.startswith("client_files")]


def _image_quality(value: object) -> int:
    text = value.decode() if isinstance(value, bytes) else str(value) if value is not None else ""
    if not text.isdigit() or not 1 <= int(text) <= 100:
        raise bad_request({"image_quality": ["This field is required."]})
    return int(text)


def create_data(ctx: Request) -> Response:
    """One "Data" request (multipart, no upload headers), or cvat-sdk's sequence: ``Upload-Start``
    (202), ``Upload-Multiple`` multipart parts (200 each), ``Upload-Finish`` with the JSON options
    (202 ``{rq_id}``). TUS chunks (``Upload-Length``) are not implemented."""
    from tests.cvat_standin.resources.jobs import load_task

    w = ctx.w
    task = load_task(ctx, ctx.int_param())
    require_org_role(w, ctx.me, task.org_id, "supervisor", owner_id=task.owner_id)
    if task.size:
        raise bad_request({"detail": "Adding more data is not supported"})
    if "upload-length" in ctx.headers or "tus-resumable" in ctx.headers:
        raise bad_request({"detail": "the stand-in does not implement TUS chunked uploads"})
    if task.files is None:
        task.files = []
    if "upload-start" in ctx.headers and "upload-finish" not in ctx.headers:
        task.files = []
        return Response(202, content_type="", raw=b"")  # CVAT answers these two without a body
    if "upload-multiple" in ctx.headers:
        task.files += _client_files(ctx)
        return Response(200, content_type="", raw=b"")
    if "upload-finish" in ctx.headers:
        quality = _image_quality(ctx.json_object().get("image_quality"))
    else:  # a single Data request
        parts = multipart_parts(ctx)
        task.files = _client_files(ctx)
        quality = _image_quality(next((d for n, _, _, d in parts if n == "image_quality"), None))
    del quality  # validated only: the stand-in serves the files as uploaded
    return _attach(ctx, task)


def _attach(ctx: Request, task: TaskRec) -> Response:
    from PIL import Image

    from tests.cvat_standin.resources.jobs import add_job

    w = ctx.w
    files = list(task.files or [])
    if not files:
        raise bad_request({"client_files": ["No media data found"]})
    sizes = []
    for filename, data in files:
        try:
            with Image.open(io.BytesIO(data)) as img:
                sizes.append(img.size)
        except OSError:
            raise bad_request({"client_files": [f"{filename}: not an image"]}) from None

    def run() -> int:
        task.files = files
        task.size = len(files)
        task.frame_size = sizes[0]
        seg = task.segment_size or task.size
        task.segment_size = seg
        for start in range(0, task.size, seg):
            add_job(w, task, "annotation", start, min(start + seg, task.size) - 1)
        task.updated_date = w.now()
        return task.id

    return start_request(ctx, f"action=create&target=task&target_id={task.id}", "create:task", "task",
                         task_id=task.id, job_id=None, run=run)


def task_frame(ctx: Request) -> Response:
    """``GET /api/tasks/{id}/data?type=frame&number=N``: an uploaded frame as stored."""
    from tests.cvat_standin.resources.jobs import load_task

    task = load_task(ctx, ctx.int_param())
    if ctx.query.get("type") != "frame":
        raise bad_request({"type": ["only type=frame is served by the stand-in"]})
    try:
        number = int(ctx.query.get("number", ""))
    except ValueError:
        raise bad_request({"number": ["A valid integer is required."]}) from None
    if not task.files or not 0 <= number < task.size:
        raise bad_request({"detail": "The frame number doesn't belong to the task"})
    name, data = task.files[number]
    return Response(content_type=content_type(name), raw=data)

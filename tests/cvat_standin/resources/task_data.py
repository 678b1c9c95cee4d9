"""POST /api/tasks (in a project) and POST /api/tasks/{id}/data (one multipart "Data" request).

A task created here has no frames until its data is attached. The data request takes
``client_files`` parts (in order; CVAT's ``sorting_method`` "predefined" keeps that order, the only
one the stand-in implements) and ``image_quality``, answers 202 ``{rq_id}``
(``action=create&target=task&target_id=N``), and the request finishes like every async request:
the frames are the uploaded files, served as stored by ``GET /api/jobs/{id}/data?type=frame``.
TUS chunked uploads (``Upload-Start``/``Upload-Finish`` headers) are not implemented: 400.
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


def create_data(ctx: Request) -> Response:
    from PIL import Image

    from tests.cvat_standin.resources.jobs import add_job, load_task

    w = ctx.w
    task = load_task(ctx, ctx.int_param())
    require_org_role(w, ctx.me, task.org_id, "supervisor", owner_id=task.owner_id)
    if any(h in ctx.headers for h in ("upload-start", "upload-finish", "upload-multiple")):
        raise bad_request({"detail": "the stand-in takes one multipart Data request (no TUS)"})
    if task.files:
        raise bad_request({"detail": "Adding more data is not supported"})
    parts = multipart_parts(ctx)
    files = [(filename or f"file_{i}", data) for i, (name, filename, _, data) in enumerate(parts)
             if name.startswith("client_files")]
    quality = [data for name, _, _, data in parts if name == "image_quality"]
    if not files:
        raise bad_request({"client_files": ["No media data found"]})
    if not quality or not quality[0].decode().isdigit() or not 1 <= int(quality[0].decode()) <= 100:
        raise bad_request({"image_quality": ["This field is required."]})
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

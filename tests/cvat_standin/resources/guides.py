"""/api/guides (POST/GET/PATCH/DELETE) and /api/assets (multipart POST, GET, DELETE)."""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import uuid
from email.utils import format_datetime

from tests.cvat_standin import serializers as ser
from tests.cvat_standin.access import require_org_role, role_rank
from tests.cvat_standin.resources import webhooks
from tests.cvat_standin.routing import Request, Response, Router, bad_request, forbidden, not_found
from tests.cvat_standin.world import ROLE_RANK, AssetRec, GuideRec, World, iso

MAX_ASSET_BYTES = 10 * 1024 * 1024


def register(r: Router) -> None:
    r.add("POST", "/api/guides", create_guide)
    r.add("GET", "/api/guides/{id}", get_guide)
    r.add("PATCH", "/api/guides/{id}", patch_guide)
    r.add("DELETE", "/api/guides/{id}", delete_guide)
    r.add("POST", "/api/assets", create_asset)
    r.add("GET", "/api/assets/{uuid}", get_asset)
    r.add("DELETE", "/api/assets/{uuid}", delete_asset)


def _guide_org(w: World, g: GuideRec) -> tuple[int | None, int]:
    if g.task_id is not None:
        t = w.tasks[g.task_id]
        return t.org_id, t.owner_id
    p = w.projects[g.project_id or 0]
    return p.org_id, p.owner_id


def _load(ctx: Request, *, write: bool) -> GuideRec:
    g = ctx.w.guides.get(ctx.int_param())
    if g is None:
        raise not_found("AnnotationGuide")
    org_id, owner_id = _guide_org(ctx.w, g)
    if write:
        require_org_role(ctx.w, ctx.me, org_id, "maintainer", owner_id=owner_id)
    elif ctx.me.id != owner_id and role_rank(ctx.w, ctx.me, org_id) < ROLE_RANK["worker"]:
        raise forbidden()
    return g


def _touch_owner(ctx: Request, g: GuideRec) -> None:
    """Guide writes touch the task (``update:task`` webhook, recording 91)."""
    w = ctx.w
    if g.task_id is None:
        return
    task = w.tasks[g.task_id]
    before = {"updated_date": iso(task.updated_date), "guide_id": task.guide_id}
    task.guide_id = g.id
    task.updated_date = g.updated_date
    webhooks.emit_update(ctx, "task", ser.task(w, ctx.base_url, task), before,
                         {"updated_date": iso(task.updated_date), "guide_id": task.guide_id},
                         org_id=task.org_id, project_id=task.project_id)


def create_guide(ctx: Request) -> Response:
    w = ctx.w
    body = ctx.json_object()
    task_id, project_id = body.get("task_id"), body.get("project_id")
    if (task_id is None) == (project_id is None):
        raise bad_request({"non_field_errors": ["exactly one of task_id, project_id is required"]})
    if task_id is not None and task_id not in w.tasks:
        raise bad_request({"task_id": [f'Invalid pk "{task_id}" - object does not exist.']})
    if project_id is not None and project_id not in w.projects:
        raise bad_request({"project_id": [f'Invalid pk "{project_id}" - object does not exist.']})
    now = w.now()
    g = GuideRec(w.next_id("guide"), task_id, project_id, str(body.get("markdown", "")), now, now)
    org_id, owner_id = _guide_org(w, g)
    require_org_role(w, ctx.me, org_id, "maintainer", owner_id=owner_id)
    if any(x.task_id == task_id and x.project_id == project_id for x in w.guides.values()):
        raise bad_request({"non_field_errors": ["the target already has a guide"]})
    w.guides[g.id] = g
    if project_id is not None:
        w.projects[project_id].guide_id = g.id
    _touch_owner(ctx, g)
    return Response(201, ser.guide(g, with_dates=False))


def get_guide(ctx: Request) -> Response:
    return Response(body=ser.guide(_load(ctx, write=False), with_dates=True))


def patch_guide(ctx: Request) -> Response:
    g = _load(ctx, write=True)
    body = ctx.json_object()
    if "markdown" in body:
        g.markdown = str(body["markdown"]).rstrip("\n")  # the server strips trailing newlines (recording 90)
    g.updated_date = ctx.w.now()
    _touch_owner(ctx, g)
    return Response(body=ser.guide(g, with_dates=False))


def delete_guide(ctx: Request) -> Response:
    w = ctx.w
    g = _load(ctx, write=True)
    for a in [a.uuid for a in w.assets.values() if a.guide_id == g.id]:
        del w.assets[a]
    if g.task_id is not None:
        w.tasks[g.task_id].guide_id = None
    if g.project_id is not None:
        w.projects[g.project_id].guide_id = None
    del w.guides[g.id]
    return Response(204, None)


def multipart_parts(ctx: Request) -> list[tuple[str, str | None, str, bytes]]:
    """Form parts in order as (name, filename, content_type, data); names may repeat."""
    ctype = ctx.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        raise bad_request({"detail": f'Unsupported media type "{ctype}" in request.'})
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {ctype}\r\n\r\n".encode() + ctx.raw_body)
    parts = []
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        parts.append((name, part.get_filename(), part.get_content_type(), data))
    return parts


def _parse_multipart(ctx: Request) -> dict[str, tuple[str | None, str, bytes]]:
    """Form fields as {name: (filename, content_type, data)} (the last part of a repeated name)."""
    return {name: (filename, ctype, data) for name, filename, ctype, data in multipart_parts(ctx)}


def create_asset(ctx: Request) -> Response:
    w = ctx.w
    fields = _parse_multipart(ctx)
    if "file" not in fields or "guide_id" not in fields:
        raise bad_request({k: ["This field is required."] for k in ("file", "guide_id") if k not in fields})
    guide_id = int(fields["guide_id"][2].decode())
    g = w.guides.get(guide_id)
    if g is None:
        raise bad_request({"guide_id": [f'Invalid pk "{guide_id}" - object does not exist.']})
    org_id, owner_id = _guide_org(w, g)
    require_org_role(w, ctx.me, org_id, "maintainer", owner_id=owner_id)
    filename, content_type, data = fields["file"]
    if len(data) > MAX_ASSET_BYTES:
        raise bad_request({"file": ["Maximum size of asset is 10 MB"]})
    rec = AssetRec(str(uuid.uuid4()), g.id, filename or "file", content_type, data, ctx.me.id, w.now())
    w.assets[rec.uuid] = rec
    return Response(201, {"uuid": rec.uuid, "filename": rec.filename, "created_date": iso(rec.created_date),
                          "owner": ser.basic_user(w, ctx.base_url, rec.owner_id), "guide_id": rec.guide_id})


def _load_asset(ctx: Request) -> AssetRec:
    a = ctx.w.assets.get(ctx.params["uuid"])
    if a is None:
        raise not_found("Asset")
    org_id, owner_id = _guide_org(ctx.w, ctx.w.guides[a.guide_id])
    if ctx.me.id != owner_id and role_rank(ctx.w, ctx.me, org_id) < ROLE_RANK["worker"]:
        raise forbidden()
    return a


def get_asset(ctx: Request) -> Response:
    a = _load_asset(ctx)
    return Response(content_type=a.content_type, raw=a.data, headers={
        "Content-Disposition": f'inline; filename="{a.filename}"',
        "Last-Modified": format_datetime(a.created_date, usegmt=True),
        "ETag": f'W/"{hashlib.md5(a.data).hexdigest()}"',
    })


def delete_asset(ctx: Request) -> Response:
    a = _load_asset(ctx)
    del ctx.w.assets[a.uuid]
    return Response(204, None)

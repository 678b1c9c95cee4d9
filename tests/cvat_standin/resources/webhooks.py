"""/api/webhooks CRUD, /ping, /deliveries, /events, and delivery of signed events to ``target_url``.

Events raised (as the recordings show for API-made changes): ``update:job`` (+ ``update:task`` when the
task status changes) on job PATCH; ``update:job``/``update:task``/``update:project`` with
``changes={updated_date}`` on annotation saves; ``create:issue`` + ``create:comment`` on issue creation;
``update:issue``; ``create:comment``; ``completed:request[...]`` when an async request finishes.
Deliveries are POSTed by one background thread (:class:`Deliverer`) with ``X-Signature-256``
(cvat_ext.cvat.signature.sign) when the webhook has a secret; ``ping`` is delivered synchronously.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from cvat_ext.cvat.signature import sign
from tests.cvat_standin import serializers as ser
from tests.cvat_standin.access import in_context, require_org_role
from tests.cvat_standin.filters import apply_list_params, paginate
from tests.cvat_standin.routing import Request, Response, Router, bad_request, not_found
from tests.cvat_standin.world import DeliveryRec, IssueRec, JobRec, RequestRec, WebhookRec, World, iso

log = logging.getLogger(__name__)
USER_AGENT = "CVAT/2.73.0 python-requests/2.33.1"
GROUPS = {"project": "Project", "task": "Task", "job": "Job", "issue": "Issue", "comment": "Comment",
          "organization": "Organization", "invitation": "Invitation", "membership": "Membership"}
REQUEST_EVENTS = {"export:annotations": "Dataset export", "export:dataset": "Dataset export",
                  "export:backup": "Backup export", "create:task": "Task creation", "merge:task": "Consensus merge",
                  "merge:job": "Consensus merge", "calculate:quality": "Quality calculation"}


def all_events(webhook_type: str) -> list[dict[str, Any]]:
    out = []
    for res, group in GROUPS.items():
        actions = {"organization": ("update",), "invitation": ("create", "delete")}.get(
            res, ("create", "update", "delete"))
        if webhook_type == "project" and res in ("organization", "invitation", "membership"):
            continue
        out += [{"key": f"{a}:{res}", "group": {"display_name": group}} for a in actions]
    out += [{"key": f"completed:request[{k}]", "group": {"display_name": g}} for k, g in REQUEST_EVENTS.items()]
    return out


def register(r: Router) -> None:
    r.add("GET", "/api/webhooks/events", list_events)
    r.add("GET", "/api/webhooks", list_webhooks)
    r.add("POST", "/api/webhooks", create_webhook)
    r.add("GET", "/api/webhooks/{id}", get_webhook)
    r.add("PATCH", "/api/webhooks/{id}", patch_webhook)
    r.add("PUT", "/api/webhooks/{id}", patch_webhook)
    r.add("DELETE", "/api/webhooks/{id}", delete_webhook)
    r.add("POST", "/api/webhooks/{id}/ping", ping_webhook)
    r.add("GET", "/api/webhooks/{id}/deliveries", list_deliveries)


# delivery ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outgoing:
    delivery_id: int
    url: str
    body: bytes
    headers: dict[str, str]


class Deliverer:
    """One thread POSTing queued webhook deliveries; :meth:`flush` waits until the queue is empty."""

    def __init__(self, world: World, timeout_s: float = 10.0) -> None:
        self.world = world
        self.timeout_s = timeout_s
        self._queue: queue.Queue[Outgoing | None] = queue.Queue()
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # targets are local
        self._thread = threading.Thread(target=self._run, name="standin-webhooks", daemon=True)
        self._thread.start()

    def submit(self, out: Outgoing) -> None:
        self._queue.put(out)

    def flush(self) -> None:
        self._queue.join()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=self.timeout_s + 1)

    def _run(self) -> None:
        while True:
            out = self._queue.get()
            try:
                if out is None:
                    return
                self.send(out)
            finally:
                self._queue.task_done()

    def send(self, out: Outgoing) -> tuple[int | None, str]:
        req = urllib.request.Request(out.url, data=out.body, headers=out.headers, method="POST")
        status: int | None
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                status, text = resp.status, resp.read(1 << 20).decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read(1 << 20).decode("utf-8", "replace")
        except (OSError, urllib.error.URLError) as exc:
            status, text = None, str(exc)
            log.debug("standin: webhook delivery %d to %s failed: %s", out.delivery_id, out.url, exc)
        with self.world.lock:
            rec = self.world.deliveries.get(out.delivery_id)
            if rec is not None:
                rec.status_code = status
                rec.response = text
        return status, text


def _prepare(w: World, hook: WebhookRec, event: str, payload: dict[str, Any], changed: str) -> Outgoing:
    body = json.dumps(payload).encode("utf-8")
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    if hook.secret:
        headers["X-Signature-256"] = sign(hook.secret, body)
    rec = DeliveryRec(w.next_id("delivery"), hook.id, event, None, changed, payload, "", w.now())
    w.deliveries[rec.id] = rec
    return Outgoing(rec.id, hook.target_url, body, headers)


def emit(w: World, event: str, payload: dict[str, Any], *, org_id: int | None, project_id: int | None,
         changed: str = "") -> int:
    """Queue ``event`` for every active webhook subscribed to it in scope; returns how many."""
    sent = 0
    for hook in list(w.webhooks.values()):
        if not hook.is_active or event not in hook.events:
            continue
        in_scope = (hook.type == "organization" and hook.org_id is not None and hook.org_id == org_id) or (
            hook.type == "project" and project_id is not None and hook.project_id == project_id)
        if not in_scope:
            continue
        out = _prepare(w, hook, event, {"event": event, "webhook_id": hook.id, **payload}, changed)
        deliverer = w.deliverer
        if deliverer is not None:
            deliverer.submit(out)
        sent += 1
    return sent


def _changes(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    keys = [k for k in after if before.get(k) != after[k]]
    return {k: before.get(k) for k in keys}, {k: {"from": before.get(k), "to": after[k]} for k in keys}


def emit_change(w: World, resource: str, body: dict[str, Any], before: dict[str, Any], after: dict[str, Any], *,
                sender: dict[str, Any] | None, org_id: int | None, project_id: int | None) -> None:
    """``update:<resource>`` with ``before_update``/``changes`` for the fields that changed (none: no event)."""
    before_update, changes = _changes(before, after)
    if not changes:
        return
    emit(w, f"update:{resource}", {resource: body, "sender": sender, "before_update": before_update,
                                   "changes": changes},
         org_id=org_id, project_id=project_id, changed=",".join(changes))


def emit_update(ctx: Request, resource: str, body: dict[str, Any], before: dict[str, Any], after: dict[str, Any],
                *, org_id: int | None, project_id: int | None) -> None:
    """An API-raised update: absolute URLs and a BasicUser sender."""
    emit_change(ctx.w, resource, body, before, after, sender=ser.basic_user(ctx.w, ctx.base_url, ctx.me.id),
                org_id=org_id, project_id=project_id)


def worker_sender(w: World, user_id: int) -> dict[str, Any]:
    """Background workers send ``{id, username, email}`` (surprise 12)."""
    u = w.users[user_id]
    return {"id": u.id, "username": u.username, "email": u.email}


def worker_job(w: World, job: JobRec) -> dict[str, Any]:
    """A job as worker-raised events show it: relative URLs, no task/project names, ``issues`` null."""
    return {**ser.job(w, "", job), "task_name": None, "project_name": None, "issues": None}


def emit_job_update(ctx: Request, job: JobRec, before: dict[str, Any], after: dict[str, Any],
                    task_before: dict[str, Any]) -> None:
    """``update:job`` for a PATCH; ``update:task`` only when the task's derived status changed."""
    w = ctx.w
    task = w.tasks[job.task_id]
    emit_update(ctx, "job", ser.job(w, ctx.base_url, job), before, after, org_id=task.org_id,
                project_id=task.project_id)
    task_body = ser.task(w, ctx.base_url, task)
    if task_body["status"] != task_before["status"]:
        task.updated_date = job.updated_date
        task_body = ser.task(w, ctx.base_url, task)
        emit_update(ctx, "task", task_body, task_before, {"updated_date": task_body["updated_date"],
                                                          "status": task_body["status"]},
                    org_id=task.org_id, project_id=task.project_id)


def emit_annotations_saved(ctx: Request, job: JobRec, before: dict[str, str | None]) -> None:
    """Annotation saves touch updated_date only: ``update:job``, ``update:task``, ``update:project``."""
    emit_saved(ctx.w, job, before, base=ctx.base_url, sender=ser.basic_user(ctx.w, ctx.base_url, ctx.me.id),
               job_body=ser.job(ctx.w, ctx.base_url, job))


def emit_saved(w: World, job: JobRec, before: dict[str, str | None], *, base: str, sender: dict[str, Any] | None,
               job_body: dict[str, Any]) -> None:
    """The three ``updated_date`` events of a save (``before``: old dates keyed job/task/project)."""
    task = w.tasks[job.task_id]
    scope = {"org_id": task.org_id, "project_id": task.project_id}
    emit_change(w, "job", job_body, {"updated_date": before.get("job")}, {"updated_date": iso(job.updated_date)},
                sender=sender, **scope)
    emit_change(w, "task", ser.task(w, base, task), {"updated_date": before.get("task")},
                {"updated_date": iso(task.updated_date)}, sender=sender, **scope)
    if task.project_id is not None:
        project = w.projects[task.project_id]
        emit_change(w, "project", ser.project(w, base, project), {"updated_date": before.get("project")},
                    {"updated_date": iso(project.updated_date)}, sender=sender, **scope)


def emit_issue_created(ctx: Request, issue: IssueRec, first_comment_id: int) -> None:
    w = ctx.w
    task = w.tasks[w.jobs[issue.job_id].task_id]
    sender = ser.basic_user(w, ctx.base_url, ctx.me.id)
    body = ser.issue(w, ctx.base_url, issue)
    body["comments"]["count"] = 0  # surprise 14: the first comment follows in its own event
    emit(w, "create:issue", {"issue": body, "sender": sender}, org_id=task.org_id, project_id=task.project_id)
    emit(w, "create:comment", {"comment": ser.comment(w, ctx.base_url, w.comments[first_comment_id]),
                               "sender": sender}, org_id=task.org_id, project_id=task.project_id)


def emit_request_completed(w: World, r: RequestRec) -> None:
    emit(w, f"completed:request[{r.type}]", {"request": ser.request(w, r)}, org_id=r.org_id,
         project_id=r.project_id)


# CRUD -------------------------------------------------------------------------------------------------
def _load(ctx: Request) -> WebhookRec:
    hook = ctx.w.webhooks.get(ctx.int_param())
    if hook is None:
        raise not_found("Webhook")
    require_org_role(ctx.w, ctx.me, hook.org_id, "maintainer", owner_id=hook.owner_id)
    return hook


def list_events(ctx: Request) -> Response:
    kind = ctx.query.get("type", "all")
    return Response(body={"webhook_type": kind, "events": all_events(kind)})


def list_webhooks(ctx: Request) -> Response:
    w = ctx.w
    hooks = [h for h in w.webhooks.values() if in_context(ctx, h.org_id)
             and (ctx.me.is_superuser or h.owner_id == ctx.me.id or w.role_of(ctx.me.id, h.org_id)
                  in ("maintainer", "owner"))]
    hooks = apply_list_params(ctx, hooks, lambda h: {"id": h.id, "type": h.type, "project_id": h.project_id,
                                                     "target_url": h.target_url},
                              simple_filters=("type", "project_id", "target_url"))
    return Response(body=paginate(ctx, hooks, lambda h: ser.webhook(w, ctx.base_url, h)))


def _check_fields(w: World, body: dict[str, Any], *, partial: bool) -> None:
    errors: dict[str, list[str]] = {}
    for name in ("target_url", "events", "type"):
        if not partial and name not in body:
            errors[name] = ["This field is required."]
    known = {e["key"] for e in all_events("all")}
    bad = [e for e in body.get("events", []) if e not in known]
    if bad:
        errors["events"] = [f"unsupported events: {bad}"]
    if body.get("type", "organization") not in ("organization", "project"):
        errors["type"] = [f'"{body["type"]}" is not a valid choice.']
    if body.get("type") == "project" and body.get("project_id") not in w.projects:
        errors["project_id"] = ["project webhooks need an existing project_id"]
    if errors:
        raise bad_request(errors)


def create_webhook(ctx: Request) -> Response:
    w = ctx.w
    body = ctx.json_object()
    _check_fields(w, body, partial=False)
    org_id = ctx.org_id
    project_id = body.get("project_id") if body["type"] == "project" else None
    if project_id is not None:
        org_id = w.projects[project_id].org_id
        owner = w.projects[project_id].owner_id
    else:
        owner = None
    if body["type"] == "organization" and org_id is None:
        raise bad_request({"type": ["organization webhooks need an organization context"]})
    require_org_role(w, ctx.me, org_id, "maintainer", owner_id=owner)
    now = w.now()
    hook = WebhookRec(w.next_id("webhook"), body["target_url"], body["type"], list(body["events"]),
                      body.get("secret", ""), body.get("content_type", "application/json"),
                      bool(body.get("is_active", True)), bool(body.get("enable_ssl", True)),
                      body.get("description", ""), ctx.me.id, org_id, project_id, now, now)
    w.webhooks[hook.id] = hook
    return Response(201, ser.webhook(w, ctx.base_url, hook),
                    headers={"Location": f"{ctx.base_url}/api/webhooks/{hook.id}"})


def get_webhook(ctx: Request) -> Response:
    return Response(body=ser.webhook(ctx.w, ctx.base_url, _load(ctx)))


def patch_webhook(ctx: Request) -> Response:
    hook = _load(ctx)
    body = ctx.json_object()
    _check_fields(ctx.w, body, partial=ctx.method == "PATCH")
    for name in ("target_url", "description", "content_type", "is_active", "enable_ssl", "secret"):
        if name in body:
            setattr(hook, name, body[name])
    if "events" in body:
        hook.events = list(body["events"])
    hook.updated_date = ctx.w.now()
    return Response(body=ser.webhook(ctx.w, ctx.base_url, hook))


def delete_webhook(ctx: Request) -> Response:
    hook = _load(ctx)
    del ctx.w.webhooks[hook.id]
    return Response(204, None)


def delivery_json(rec: DeliveryRec) -> dict[str, Any]:
    return {"id": rec.id, "webhook_id": rec.webhook_id, "event": rec.event, "status_code": rec.status_code,
            "redelivery": False, "attempt": 1, "request_duration": 1, "created_date": iso(rec.created_date),
            "updated_date": iso(rec.created_date), "changed_fields": rec.changed_fields, "request": rec.request,
            "response": rec.response}


def ping_webhook(ctx: Request) -> Response:
    """Delivered synchronously (after the world lock is released); answers the delivery record."""
    w = ctx.w
    hook = _load(ctx)
    payload = {"event": "ping", "webhook": ser.webhook(w, ctx.base_url, hook),
               "sender": ser.basic_user(w, ctx.base_url, ctx.me.id)}
    out = _prepare(w, hook, "ping", payload, "")
    deliverer = w.deliverer

    def finalize() -> dict[str, Any]:
        if deliverer is not None:
            deliverer.send(out)
        with w.lock:
            return delivery_json(w.deliveries[out.delivery_id])

    return Response(body=None, finalize=finalize)


def list_deliveries(ctx: Request) -> Response:
    hook = _load(ctx)
    recs = sorted((d for d in ctx.w.deliveries.values() if d.webhook_id == hook.id), key=lambda d: -d.id)
    return Response(body=paginate(ctx, recs, delivery_json))

"""/api/issues and /api/comments."""

from __future__ import annotations

from typing import Any

from tests.cvat_standin import serializers as ser
from tests.cvat_standin.access import can_view_job, in_context, require_job_view, role_rank
from tests.cvat_standin.filters import apply_list_params, paginate
from tests.cvat_standin.resources import webhooks
from tests.cvat_standin.routing import Request, Response, Router, bad_request, forbidden, not_found
from tests.cvat_standin.world import ROLE_RANK, CommentRec, IssueRec, World, iso


def register(r: Router) -> None:
    r.add("GET", "/api/issues", list_issues)
    r.add("POST", "/api/issues", create_issue)
    r.add("GET", "/api/issues/{id}", get_issue)
    r.add("PATCH", "/api/issues/{id}", patch_issue)
    r.add("DELETE", "/api/issues/{id}", delete_issue)
    r.add("GET", "/api/comments", list_comments)
    r.add("POST", "/api/comments", create_comment)
    r.add("GET", "/api/comments/{id}", get_comment)


def _issue_visible(w: World, ctx: Request, issue: IssueRec) -> bool:
    return can_view_job(w, ctx.me, w.jobs[issue.job_id]) or issue.assignee_id == ctx.me.id


def _load_issue(ctx: Request, issue_id: int) -> IssueRec:
    issue = ctx.w.issues.get(issue_id)
    if issue is None:
        raise not_found("Issue")
    if not _issue_visible(ctx.w, ctx, issue):
        raise forbidden()
    return issue


def _check_user(w: World, value: Any, field: str) -> dict[str, list[str]]:
    if value is None or (isinstance(value, int) and value in w.users):
        return {}
    return {field: [f'Invalid pk "{value}" - object does not exist.']}


def _check_position(value: Any) -> dict[str, list[str]]:
    if not isinstance(value, list) or len(value) < 2 or len(value) % 2 or not all(
            isinstance(v, int | float) for v in value):
        return {"position": ["expected an even list of at least 2 numbers"]}
    return {}


def create_issue(ctx: Request) -> Response:
    """``{job, frame, position, message, assignee?, resolved?}``; the message becomes the first comment."""
    w = ctx.w
    body = ctx.json_object()
    errors: dict[str, list[str]] = {}
    for name in ("job", "frame", "position", "message"):
        if name not in body:
            errors[name] = ["This field is required."]
    if errors:
        raise bad_request(errors)
    job = w.jobs.get(body["job"]) if isinstance(body["job"], int) else None
    if job is None:
        raise bad_request({"job": [f'Invalid pk "{body["job"]}" - object does not exist.']})
    require_job_view(w, ctx.me, job)
    errors.update(_check_position(body["position"]))
    errors.update(_check_user(w, body.get("assignee"), "assignee"))
    if not isinstance(body["frame"], int) or body["frame"] < 0:
        errors["frame"] = ["A valid integer is required."]
    if errors:
        raise bad_request(errors)
    now = w.now()
    issue = IssueRec(w.next_id("issue"), job.id, body["frame"], [float(v) for v in body["position"]], ctx.me.id,
                     body.get("assignee"), bool(body.get("resolved", False)), now, now)
    w.issues[issue.id] = issue
    first = CommentRec(w.next_id("comment"), issue.id, ctx.me.id, str(body["message"]), now, now)
    w.comments[first.id] = first
    webhooks.emit_issue_created(ctx, issue, first.id)
    return Response(201, ser.issue(w, ctx.base_url, issue))


def issue_row(w: World, i: IssueRec) -> dict[str, Any]:
    job = w.jobs[i.job_id]
    return {"id": i.id, "job_id": i.job_id, "task_id": job.task_id,
            "project_id": w.tasks[job.task_id].project_id, "frame_id": i.frame, "resolved": i.resolved,
            "owner": w.users[i.owner_id].username,
            "assignee": w.users[i.assignee_id].username if i.assignee_id else None,
            "updated_date": iso(i.updated_date), "created_date": iso(i.created_date)}


def list_issues(ctx: Request) -> Response:
    w = ctx.w
    items = [i for i in w.issues.values()
             if in_context(ctx, w.job_org(w.jobs[i.job_id])) and _issue_visible(w, ctx, i)]
    items = apply_list_params(ctx, items, lambda i: issue_row(w, i),
                              simple_filters=("job_id", "task_id", "project_id", "frame_id", "resolved", "owner",
                                              "assignee"))
    return Response(body=paginate(ctx, items, lambda i: ser.issue(w, ctx.base_url, i)))


def get_issue(ctx: Request) -> Response:
    return Response(body=ser.issue(ctx.w, ctx.base_url, _load_issue(ctx, ctx.int_param())))


def patch_issue(ctx: Request) -> Response:
    w = ctx.w
    issue = _load_issue(ctx, ctx.int_param())
    body = ctx.json_object()
    errors = _check_user(w, body.get("assignee"), "assignee")
    if "position" in body:
        errors.update(_check_position(body["position"]))
    if errors:
        raise bad_request(errors)
    before = {"updated_date": iso(issue.updated_date), "resolved": issue.resolved, "assignee_id": issue.assignee_id,
              "position": list(issue.position)}
    if "resolved" in body:
        issue.resolved = bool(body["resolved"])
    if "assignee" in body:
        issue.assignee_id = body["assignee"]
    if "position" in body:
        issue.position = [float(v) for v in body["position"]]
    issue.updated_date = w.now()
    after = {"updated_date": iso(issue.updated_date), "resolved": issue.resolved, "assignee_id": issue.assignee_id,
             "position": list(issue.position)}
    task = w.tasks[w.jobs[issue.job_id].task_id]
    webhooks.emit_update(ctx, "issue", ser.issue(w, ctx.base_url, issue), before, after, org_id=task.org_id,
                         project_id=task.project_id)
    return Response(body=ser.issue(w, ctx.base_url, issue))


def delete_issue(ctx: Request) -> Response:
    w = ctx.w
    issue = _load_issue(ctx, ctx.int_param())
    if issue.owner_id != ctx.me.id and role_rank(w, ctx.me, w.job_org(w.jobs[issue.job_id])) < ROLE_RANK[
            "maintainer"]:
        raise forbidden()
    for cid in [c.id for c in w.comments.values() if c.issue_id == issue.id]:
        del w.comments[cid]
    del w.issues[issue.id]
    return Response(204, None)


def create_comment(ctx: Request) -> Response:
    w = ctx.w
    body = ctx.json_object()
    errors: dict[str, list[str]] = {n: ["This field is required."] for n in ("issue", "message") if n not in body}
    if errors:
        raise bad_request(errors)
    if not isinstance(body["issue"], int) or body["issue"] not in w.issues:
        raise bad_request({"issue": [f'Invalid pk "{body["issue"]}" - object does not exist.']})
    issue = _load_issue(ctx, body["issue"])
    now = w.now()
    c = CommentRec(w.next_id("comment"), issue.id, ctx.me.id, str(body["message"]), now, now)
    w.comments[c.id] = c
    task = w.tasks[w.jobs[issue.job_id].task_id]
    webhooks.emit(w, "create:comment", {"comment": ser.comment(w, ctx.base_url, c),
                                        "sender": ser.basic_user(w, ctx.base_url, ctx.me.id)},
                  org_id=task.org_id, project_id=task.project_id)
    return Response(201, ser.comment(w, ctx.base_url, c))


def list_comments(ctx: Request) -> Response:
    w = ctx.w
    items = [c for c in w.comments.values() if _issue_visible(w, ctx, w.issues[c.issue_id])
             and in_context(ctx, w.job_org(w.jobs[w.issues[c.issue_id].job_id]))]
    items = apply_list_params(ctx, items, lambda c: {"id": c.id, "issue_id": c.issue_id,
                                                     "owner": w.users[c.owner_id].username,
                                                     "frame_id": w.issues[c.issue_id].frame,
                                                     "job_id": w.issues[c.issue_id].job_id},
                              simple_filters=("issue_id", "owner", "frame_id", "job_id"))
    return Response(body=paginate(ctx, items, lambda c: ser.comment(w, ctx.base_url, c)))


def get_comment(ctx: Request) -> Response:
    c = ctx.w.comments.get(ctx.int_param())
    if c is None:
        raise not_found("Comment")
    _load_issue(ctx, c.issue_id)
    return Response(body=ser.comment(ctx.w, ctx.base_url, c))

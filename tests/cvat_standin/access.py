"""Authentication (Bearer PAT, legacy Token, session cookie, Basic) and the permission rules.

A simplified model of CVAT's IAM that keeps the outcomes the recordings show:

* no or invalid credentials -> 401 with ``WWW-Authenticate: Token``;
* an org context the user is not a member of -> 403;
* org maintainers/owners (and superusers) may do everything inside their org; supervisors may read
  everything and change jobs (stage, state, assignee); workers see and change only what is assigned
  to them (job assignee, or the parent task's/project's owner), and may never change a job's stage
  or assignee;
* read-only tokens allow only GET/HEAD/OPTIONS.
"""

from __future__ import annotations

import base64
import binascii
import http.cookies

from tests.cvat_standin.routing import HttpError, Request, forbidden
from tests.cvat_standin.world import ROLE_RANK, JobRec, TaskRec, UserRec, World

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def unauthorized(detail: str) -> HttpError:
    return HttpError(401, {"detail": detail}, headers={"WWW-Authenticate": "Token"})


def authenticate(w: World, ctx: Request) -> UserRec | None:
    """The user behind the request's credentials; None when none were sent; 401 when they are wrong."""
    header = ctx.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme == "bearer":
        for tok in w.tokens.values():
            if tok.value == value:
                if tok.read_only and ctx.method not in SAFE_METHODS:
                    raise forbidden()
                return w.users[tok.user_id]
        raise unauthorized("Invalid token.")
    if scheme == "token":
        if value in w.sessions:
            return w.users[w.sessions[value]]
        raise unauthorized("Invalid token.")
    if scheme == "basic":
        try:
            username, _, password = base64.b64decode(value).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise unauthorized("Invalid basic header. Credentials not correctly base64 encoded.") from exc
        for user in w.users.values():
            if user.username == username and user.password == password:
                return user
        raise unauthorized("Invalid username/password.")
    if header:
        raise unauthorized("Invalid token.")
    return _session_user(w, ctx)


def _session_user(w: World, ctx: Request) -> UserRec | None:
    cookies = http.cookies.SimpleCookie()
    try:
        cookies.load(ctx.headers.get("cookie", ""))
    except http.cookies.CookieError:
        return None
    sid = cookies.get("sessionid")
    if sid is None or sid.value not in w.sessions:
        return None
    if ctx.method not in SAFE_METHODS and ctx.headers.get("x-csrftoken") != w.csrf.get(sid.value):
        raise HttpError(403, {"detail": "CSRF Failed: CSRF token missing."})
    return w.users[w.sessions[sid.value]]


def resolve_org(w: World, ctx: Request) -> None:
    """Set ``ctx.org_id`` from ``X-Organization`` or ``?org=`` / ``?org_id=``; 403 for non-members."""
    slug = ctx.headers.get("x-organization")
    if slug is None:
        slug = ctx.query.get("org")
    org_id_raw = ctx.query.get("org_id")
    if slug is None and org_id_raw is None:
        return
    ctx.org_given = True
    if slug:
        org = w.org_by_slug(slug)
        if org is None:
            raise HttpError(404, {"detail": "No Organization matches the given query."})
        ctx.org_id = org.id
    elif org_id_raw:
        ctx.org_id = int(org_id_raw)
        if ctx.org_id not in w.orgs:
            raise HttpError(404, {"detail": "No Organization matches the given query."})
    user = ctx.user
    if ctx.org_id is not None and user is not None and not user.is_superuser and w.role_of(user.id, ctx.org_id) is None:
        raise forbidden()


def role_rank(w: World, user: UserRec, org_id: int | None) -> int:
    """0 = no role; superusers rank above owners."""
    if user.is_superuser:
        return 10
    role = w.role_of(user.id, org_id)
    return ROLE_RANK.get(role, 0) if role else 0


def in_context(ctx: Request, org_id: int | None) -> bool:
    """Whether an object of ``org_id`` is listed under the request's org context."""
    if not ctx.org_given:
        return True
    return org_id == ctx.org_id


def job_is_staff(w: World, user: UserRec, job: JobRec) -> bool:
    task = w.tasks[job.task_id]
    if user.id in (job.assignee_id, task.owner_id, task.assignee_id):
        return True
    return task.project_id is not None and w.projects[task.project_id].owner_id == user.id


def can_view_job(w: World, user: UserRec, job: JobRec) -> bool:
    org_id = w.job_org(job)
    if org_id is None:
        return user.is_superuser or job_is_staff(w, user, job)
    rank = role_rank(w, user, org_id)
    if rank >= ROLE_RANK["supervisor"]:
        return True
    return rank >= ROLE_RANK["worker"] and job_is_staff(w, user, job)


def require_job_view(w: World, user: UserRec, job: JobRec) -> None:
    if not can_view_job(w, user, job):
        raise forbidden()


def require_job_edit(w: World, user: UserRec, job: JobRec, *, manage: bool) -> None:
    """``manage``: the change touches stage or assignee (supervisor or higher, or the task owner)."""
    require_job_view(w, user, job)
    org_id = w.job_org(job)
    rank = role_rank(w, user, org_id) if org_id is not None else (10 if user.is_superuser else 0)
    if rank >= ROLE_RANK["supervisor"]:
        return
    task = w.tasks[job.task_id]
    if manage and user.id != task.owner_id:
        raise forbidden()


def require_org_role(w: World, user: UserRec, org_id: int | None, role: str, *, owner_id: int | None = None) -> None:
    """At least ``role`` in ``org_id``; outside orgs only the owner (or a superuser) passes."""
    if user.is_superuser or (owner_id is not None and owner_id == user.id):
        return
    if org_id is None or role_rank(w, user, org_id) < ROLE_RANK[role]:
        raise forbidden()


def require_task_maintainer(w: World, user: UserRec, task: TaskRec) -> None:
    """The task owner, or an org maintainer/owner (quality reports, consensus, settings)."""
    if user.id != task.owner_id and role_rank(w, user, task.org_id) < ROLE_RANK["maintainer"]:
        raise forbidden()

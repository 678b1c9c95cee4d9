"""/api/server/about, /api/auth/*, /api/users, /api/memberships."""

from __future__ import annotations

from tests.cvat_standin import serializers as ser
from tests.cvat_standin.access import in_context
from tests.cvat_standin.filters import apply_list_params, paginate
from tests.cvat_standin.routing import Request, Response, Router, bad_request, not_found
from tests.cvat_standin.world import TokenRec, iso

ABOUT_DESCRIPTION = "CVAT stand-in for cvat-ext tests (in-process HTTP server speaking the CVAT 2.73 REST API)."


def register(r: Router) -> None:
    r.add("GET", "/api/server/about", about, anonymous=True)
    r.add("POST", "/api/auth/login", login, anonymous=True)
    r.add("POST", "/api/auth/logout", logout, anonymous=True)
    r.add("POST", "/api/auth/access_tokens", create_token)
    r.add("GET", "/api/users/self", users_self)
    r.add("GET", "/api/users", list_users)
    r.add("GET", "/api/users/{id}", get_user)
    r.add("GET", "/api/memberships", list_memberships)


def about(ctx: Request) -> Response:
    version = ctx.w.version
    return Response(body={"name": "Computer Vision Annotation Tool", "description": ABOUT_DESCRIPTION,
                          "version": version, "logo_url": f"{ctx.base_url}/static/logo.svg",
                          "subtitle": "Open Data Annotation Platform"})


def login(ctx: Request) -> Response:
    """``{username|email, password}`` -> ``{"key"}`` plus session cookies (what cvat-sdk's login uses)."""
    w = ctx.w
    body = ctx.json_object()
    name = body.get("username") or body.get("email")
    for user in w.users.values():
        if name in (user.username, user.email) and body.get("password") == user.password:
            key = w.new_secret(20)
            csrf = w.new_secret(16)
            w.sessions[key] = user.id
            w.csrf[key] = csrf
            user.last_login = w.now()
            return Response(body={"key": key}, cookies={"sessionid": key, "csrftoken": csrf})
    raise bad_request({"non_field_errors": ["Unable to log in with provided credentials."]})


def logout(ctx: Request) -> Response:
    return Response(body={"detail": "Successfully logged out."})


def create_token(ctx: Request) -> Response:
    w = ctx.w
    body = ctx.json_object()
    if not isinstance(body.get("name"), str) or not body["name"]:
        raise bad_request({"name": ["This field is required."]})
    rec = TokenRec(w.next_id("token"), ctx.me.id, w.new_secret(32), body["name"], bool(body.get("read_only")),
                   w.now())
    w.tokens[rec.id] = rec
    return Response(201, {"id": rec.id, "name": rec.name, "created_date": iso(rec.created_date),
                          "updated_date": iso(rec.created_date), "expiry_date": body.get("expiry_date"),
                          "last_used_date": None, "read_only": rec.read_only,
                          "owner": ser.basic_user(w, ctx.base_url, rec.user_id), "value": rec.value})


def users_self(ctx: Request) -> Response:
    return Response(body=ser.full_user(ctx.me, ctx.base_url))


def _visible_user_ids(ctx: Request) -> set[int]:
    w = ctx.w
    if ctx.org_id is not None:
        return {m.user_id for m in w.memberships.values() if m.org_id == ctx.org_id}
    return set(w.users)


def list_users(ctx: Request) -> Response:
    w = ctx.w
    ids = _visible_user_ids(ctx)
    users = apply_list_params(
        ctx, [u for u in w.users.values() if u.id in ids],
        lambda u: {"id": u.id, "username": u.username, "first_name": u.first_name, "last_name": u.last_name,
                   "is_active": True},
        simple_filters=("username", "first_name", "last_name", "is_active"))
    if ctx.me.is_superuser:
        return Response(body=paginate(ctx, users, lambda u: ser.full_user(u, ctx.base_url)))
    return Response(body=paginate(ctx, users, lambda u: ser.basic_user(w, ctx.base_url, u.id)))


def get_user(ctx: Request) -> Response:
    w = ctx.w
    user = w.users.get(ctx.int_param())
    if user is None:
        raise not_found("User")
    if ctx.me.is_superuser or user.id == ctx.me.id:
        return Response(body=ser.full_user(user, ctx.base_url))
    return Response(body=ser.basic_user(w, ctx.base_url, user.id))


def list_memberships(ctx: Request) -> Response:
    w = ctx.w
    me = ctx.me
    my_orgs = {m.org_id for m in w.memberships.values() if m.user_id == me.id}
    items = [m for m in w.memberships.values()
             if in_context(ctx, m.org_id) and (me.is_superuser or m.org_id in my_orgs)]
    items = apply_list_params(
        ctx, items,
        lambda m: {"id": m.id, "role": m.role, "user": w.users[m.user_id].username, "is_active": True,
                   "organization": m.org_id},
        simple_filters=("role", "user", "is_active"))
    return Response(body=paginate(ctx, items, lambda m: ser.membership(w, ctx.base_url, m)))


"""Request/response value types and the URL router of the CVAT stand-in.

Handlers are plain functions ``(ctx: Request) -> Response``; they raise :class:`HttpError`
for error answers. Paths are matched with and without a trailing slash, as CVAT does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.cvat_standin.world import UserRec, World

JSON_TYPE = "application/vnd.cvat+json"


class HttpError(Exception):
    """An error answer: ``status`` with a JSON ``body`` (CVAT shapes: {"detail"}, a list, a field map)."""

    def __init__(self, status: int, body: Any = None, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status}: {body!r}")
        self.status = status
        self.body = body
        self.headers = headers or {}


def not_found(model: str) -> HttpError:
    return HttpError(404, {"detail": f"No {model} matches the given query."})


def forbidden() -> HttpError:
    return HttpError(403, {"detail": "You do not have permission to perform this action."})


def bad_request(body: Any) -> HttpError:
    return HttpError(400, body)


@dataclass
class Request:
    """One parsed HTTP request plus the authenticated user and the organization context."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    raw_body: bytes
    params: dict[str, str] = field(default_factory=dict)
    user: UserRec | None = None
    org_id: int | None = None  # the org selected by X-Organization / ?org= (None: no context)
    org_given: bool = False  # an org context was sent, possibly "" (personal workspace)
    world: World | None = None
    base_url: str = ""

    def json(self) -> Any:
        if not self.raw_body:
            return None
        try:
            return json.loads(self.raw_body)
        except ValueError as exc:
            raise bad_request({"detail": f"JSON parse error - {exc}"}) from exc

    def json_object(self) -> dict[str, Any]:
        data = self.json()
        if not isinstance(data, dict):
            raise bad_request({"non_field_errors": ["Invalid data. Expected a dictionary."]})
        return data

    def int_param(self, name: str = "id") -> int:
        return int(self.params[name])

    @property
    def w(self) -> World:
        assert self.world is not None, "request not bound to a world"
        return self.world

    @property
    def me(self) -> UserRec:
        assert self.user is not None, "handler needs an authenticated user"
        return self.user


@dataclass
class Response:
    status: int = 200
    body: Any = None
    content_type: str = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None  # a non-JSON body (asset download, 410 text)
    cookies: dict[str, str] = field(default_factory=dict)
    # computes ``body`` after the world lock is released (e.g. a synchronous webhook ping)
    finalize: Callable[[], Any] | None = None


Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Route:
    method: str
    template: str  # "/api/jobs/{id}" (CVAT schema style)
    regex: re.Pattern[str]
    handler: Handler
    anonymous: bool


class Router:
    """Maps (method, path) to handlers; ``{name}`` in a template matches one path segment."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, template: str, handler: Handler, *, anonymous: bool = False) -> None:
        pattern = re.sub(r"\{(\w+)\}", lambda m: f"(?P<{m.group(1)}>[^/]+)", template.rstrip("/"))
        self.routes.append(Route(method, template, re.compile(f"^{pattern}/?$"), handler, anonymous))

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route and its path parameters; raises 405 when only the method does not match."""
        path_matched = False
        for route in self.routes:
            m = route.regex.match(path)
            if m is None:
                continue
            if route.method == method:
                return route, m.groupdict()
            path_matched = True
        if path_matched:
            raise HttpError(405, {"detail": f'Method "{method}" not allowed.'})
        return None

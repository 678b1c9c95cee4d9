"""Fixtures of the stand-in's own tests: an authenticated requests session for the QA bot."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.conftest import OrgWorld
from tests.cvat_standin import CvatStandIn


class Api:
    """Thin JSON helper: ``api.get("/api/jobs", task_id=1)`` -> (status, body)."""

    def __init__(self, base: str, session: requests.Session) -> None:
        self.base = base
        self.session = session

    def call(self, method: str, path: str, body: Any = None, **query: Any) -> tuple[int, Any]:
        resp = self.session.request(method, self.base + path, json=body, params=query or None, timeout=10)
        ctype = resp.headers.get("Content-Type", "")
        return resp.status_code, resp.json() if "json" in ctype and resp.content else resp.text

    def get(self, path: str, **query: Any) -> tuple[int, Any]:
        return self.call("GET", path, **query)

    def post(self, path: str, body: Any = None, **query: Any) -> tuple[int, Any]:
        return self.call("POST", path, body, **query)

    def patch(self, path: str, body: Any = None, **query: Any) -> tuple[int, Any]:
        return self.call("PATCH", path, body, **query)

    def put(self, path: str, body: Any = None, **query: Any) -> tuple[int, Any]:
        return self.call("PUT", path, body, **query)


def make_api(standin: CvatStandIn, *, token: str | None = None, basic: tuple[str, str] | None = None,
             org: str | None = "qa-eval") -> Api:
    session = requests.Session()
    if token is not None:
        session.headers["Authorization"] = f"Bearer {token}"
    if basic is not None:
        session.auth = basic
    if org is not None:
        session.headers["X-Organization"] = org
    return Api(standin.url, session)


@pytest.fixture
def api(cvat_standin: CvatStandIn, cvat_org_world: OrgWorld) -> Iterator[Api]:
    """The QA bot (org maintainer, Bearer PAT, X-Organization: qa-eval)."""
    api = make_api(cvat_standin, token=cvat_org_world.bot_token)
    yield api
    api.session.close()

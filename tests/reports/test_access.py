"""Sign-in to the report pages: CVAT decides who may see which organization; sessions expire."""

from __future__ import annotations

import pytest

from cvat_ext.cvat.client import CvatClient
from cvat_ext.reports.access import AccessDenied, Sessions, Viewer, cvat_verifier
from tests.conftest import OrgWorld
from tests.cvat_standin import CvatStandIn


def _verifier(standin: CvatStandIn, orgs: tuple[str, ...]):  # type: ignore[no-untyped-def]
    return cvat_verifier(orgs, lambda **kw: CvatClient(standin.url, timeout_s=10, **kw))


@pytest.mark.parametrize(("username", "allowed"), [
    ("qabot", {"qa-eval"}),  # maintainer
    ("rev1", {"qa-eval"}),  # supervisor
    ("admin", {"qa-eval"}),  # owner; the personal workspace is for superusers only
    ("root", {"qa-eval", ""}),  # superuser: every configured organization, the personal workspace too
])
def test_managers_get_their_organizations(cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, username: str,
                                          allowed: set[str]) -> None:
    cvat_standin.add_user("root", password=cvat_org_world.password, is_superuser=True)
    verify = _verifier(cvat_standin, ("qa-eval", ""))
    viewer = verify(token=None, username=username, password=cvat_org_world.password)
    assert viewer == Viewer(username, frozenset(allowed))


def test_a_personal_access_token_signs_in_too(cvat_standin: CvatStandIn, cvat_org_world: OrgWorld) -> None:
    viewer = _verifier(cvat_standin, ("qa-eval",))(token=cvat_org_world.bot_token, username=None, password=None)
    assert viewer == Viewer("qabot", frozenset({"qa-eval"}))


@pytest.mark.parametrize(("token", "username", "password", "status"), [
    (None, "ann1", "password", 403),  # a worker
    (None, "annotator1", "password", 403),  # not a member
    (None, "rev1", "wrong", 401),
    ("forged-token", None, None, 401),
    (None, None, None, 401),
    (None, "rev1", None, 401),
])
def test_others_are_refused(cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, token: str | None,
                            username: str | None, password: str | None, status: int) -> None:
    with pytest.raises(AccessDenied) as err:
        _verifier(cvat_standin, ("qa-eval",))(token=token, username=username, password=password)
    assert err.value.status == status


def test_sessions_expire_and_are_bounded() -> None:
    now = [1000.0]
    sessions = Sessions(ttl_s=60, max_sessions=2, clock=lambda: now[0])
    viewer = Viewer("rev1", frozenset({"qa-eval"}))
    a = sessions.create(viewer)
    assert sessions.get(a) == viewer and sessions.get("forged") is None and sessions.get(None) is None
    now[0] += 61
    assert sessions.get(a) is None
    b, c, d = (sessions.create(viewer) for _ in range(3))
    assert sessions.get(b) is None and sessions.get(c) == viewer and sessions.get(d) == viewer
    sessions.drop(c)
    assert sessions.get(c) is None

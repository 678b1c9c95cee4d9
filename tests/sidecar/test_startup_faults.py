"""Start-up under CVAT's bad moments: login and the first calls are retried like any other call,
and a start-up that still fails says what happened (real cvat-sdk over HTTP to the stand-in)."""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

import pytest

from cvat_ext.cvat.client import CvatClient
from cvat_ext.cvat.records import RetryPolicy
from cvat_ext.errors import ConfigError
from cvat_ext.sidecar.service import SidecarService
from tests.conftest import OrgWorld
from tests.cvat_standin import CvatStandIn
from tests.sidecar.test_e2e_standin import Clock, make_settings

LOGIN = r"^/api/auth/login$"


def warm_up(standin: CvatStandIn) -> None:
    """The stand-in's first answer loads its response schema (~1 s): done before faults are set."""
    with urllib.request.urlopen(f"{standin.url}/api/server/about", timeout=30):
        pass


def password_service(standin: CvatStandIn, world: OrgWorld, tmp_path: Path, *, attempts: int) -> SidecarService:
    cfg = make_settings(standin, world, f"sqlite:///{tmp_path}/state.db")
    clock = Clock()
    client = CvatClient(
        standin.url,
        username="rev1",
        password=world.password,
        org=world.org_slug,
        retry=RetryPolicy(max_attempts=attempts, base_delay_s=0.5, max_delay_s=2.0, budget_s=30.0, jitter=0.0),
        timeout_s=1.0,
        sleep=clock.sleep,
        clock=clock,
    )
    return SidecarService(cfg, client=client, rules=None, consensus=None, clock=clock, sleep=clock.sleep)


@pytest.mark.parametrize(
    ("method", "path", "kind", "extra"),
    [
        ("POST", LOGIN, "reset", {"times": 2}),
        ("POST", LOGIN, "status", {"status": 502, "times": 1}),
        ("POST", LOGIN, "status", {"status": 503, "times": 3}),
        ("POST", LOGIN, "retry_after", {"retry_after_s": 0.0, "times": 4}),
        ("POST", LOGIN, "timeout", {"delay_s": 1.5, "times": 1}),
        ("GET", r"^/api/server/about$", "reset", {"times": 1}),
        ("GET", r"^/api/users/self$", "status", {"status": 502, "times": 2}),
    ],
)
def test_one_bad_moment_at_start_up_costs_a_retry_not_the_process(
    cvat_standin: CvatStandIn,
    cvat_org_world: OrgWorld,
    tmp_path: Path,
    method: str,
    path: str,
    kind: str,
    extra: dict[str, Any],
) -> None:
    warm_up(cvat_standin)
    rule = cvat_standin.faults.add(method, path, kind, **extra)  # type: ignore[arg-type]
    with password_service(cvat_standin, cvat_org_world, tmp_path, attempts=5) as svc:
        user = svc.startup_check()
        assert user.username == "rev1"
        assert rule.fired == rule.times  # the fault really happened, and was retried past
        report = svc.run_once()
    assert report.healthy, report.errors


@pytest.mark.parametrize(
    ("kind", "extra", "expected"),
    [
        ("reset", {}, r"did not answer the start-up check \(connection dropped\)"),
        ("timeout", {"delay_s": 1.5}, r"did not answer the start-up check \(timed out\)"),
        ("status", {"status": 502}, r"kept failing the start-up check \(502\)"),
        ("retry_after", {"retry_after_s": 0.0}, r"kept throttling the start-up check \(429\)"),
    ],
)
def test_start_up_failure_says_what_happened(
    cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, tmp_path: Path, kind: str, extra: dict[str, Any], expected: str
) -> None:
    warm_up(cvat_standin)
    cvat_standin.faults.add("POST", LOGIN, kind, times=3, **extra)  # type: ignore[arg-type]
    with (
        password_service(cvat_standin, cvat_org_world, tmp_path, attempts=3) as svc,
        pytest.raises(ConfigError, match=expected) as info,
    ):
        svc.startup_check()
    assert "cannot reach" not in str(info.value)
    assert "login as 'rev1'" in str(info.value) and cvat_org_world.password not in str(info.value)


def test_refused_connection_is_still_cannot_reach(
    tmp_path: Path, cvat_standin: CvatStandIn, cvat_org_world: OrgWorld
) -> None:
    cfg = make_settings(cvat_standin, cvat_org_world, f"sqlite:///{tmp_path}/state.db")
    clock = Clock()
    client = CvatClient(
        "http://127.0.0.1:1",
        access_token="t-1",
        retry=RetryPolicy(max_attempts=2, base_delay_s=0.1, budget_s=5.0),
        sleep=clock.sleep,
    )
    with (
        SidecarService(cfg, client=client, rules=None, consensus=None, clock=clock, sleep=clock.sleep) as svc,
        pytest.raises(ConfigError, match=r"cannot reach CVAT at .* \(connection refused\)"),
    ):
        svc.startup_check()

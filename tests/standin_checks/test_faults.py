"""FaultInjector: injected statuses, throttling, resets and slow answers, as a client sees them."""

from __future__ import annotations

import pytest
import requests

from tests.conftest import OrgWorld
from tests.cvat_standin import CvatStandIn, FaultInjector
from tests.standin_checks.conftest import Api


def test_status_fault_fires_times_then_retires(api: Api, cvat_standin: CvatStandIn) -> None:
    cvat_standin.faults.add("GET", r"^/api/jobs$", "status", status=503, times=2)
    assert [api.get("/api/jobs")[0] for _ in range(3)] == [503, 503, 200]
    assert api.get("/api/jobs/1")[0] == 200  # the regex did not match
    assert [s for m, p, s in cvat_standin.request_log if p == "/api/jobs"] == [503, 503, 200]
    assert cvat_standin.faults.pending == 0


def test_method_filter(api: Api, cvat_standin: CvatStandIn, cvat_org_world: OrgWorld) -> None:
    job = cvat_org_world.parent_job_ids[0]
    cvat_standin.faults.add("PATCH", r"^/api/jobs/\d+$", "status", status=500)
    assert api.get(f"/api/jobs/{job}")[0] == 200
    assert api.patch(f"/api/jobs/{job}", {"state": "in progress"})[0] == 500
    assert api.get(f"/api/jobs/{job}")[1]["state"] == "new"  # the handler did not run


def test_retry_after(api: Api, cvat_standin: CvatStandIn) -> None:
    cvat_standin.faults.add(None, r"/api/users/self", "retry_after", retry_after_s=1.5)
    resp = api.session.get(f"{cvat_standin.url}/api/users/self", timeout=10)
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "1.5"
    assert api.get("/api/users/self")[0] == 200


def test_reset_closes_without_answer(api: Api, cvat_standin: CvatStandIn) -> None:
    cvat_standin.faults.add(None, r"^/api/jobs$", "reset")
    with pytest.raises(requests.exceptions.ConnectionError):
        api.session.get(f"{cvat_standin.url}/api/jobs", timeout=10)
    assert cvat_standin.request_log[-1] == ("GET", "/api/jobs", 0)
    assert api.get("/api/jobs")[0] == 200


def test_timeout_answers_after_the_client_gave_up(api: Api, cvat_standin: CvatStandIn) -> None:
    cvat_standin.faults.add(None, r"^/api/jobs$", "timeout", delay_s=0.5)
    with pytest.raises(requests.exceptions.ReadTimeout):
        api.session.get(f"{cvat_standin.url}/api/jobs", timeout=0.1)
    assert api.get("/api/jobs")[0] == 200


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"kind": "explode"}, "unknown fault kind"),
    ({"kind": "timeout", "delay_s": 600.0}, "delay_s"),
])
def test_invalid_rules(kwargs: dict[str, object], message: str) -> None:
    faults = FaultInjector()
    kind = kwargs.pop("kind")
    with pytest.raises(ValueError, match=message):
        faults.add(None, ".", kind, **kwargs)  # type: ignore[arg-type]

"""SAM prefetch when a job starts: frames from the CVAT stand-in (real client over HTTP) POSTed to
a fake SAM function on loopback (real HTTP) that records the bodies."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from cvat_ext.functions.sam import PrefetchRequest
from cvat_ext.sidecar.service import SidecarService
from tests.conftest import OrgWorld
from tests.cvat_standin import CvatStandIn
from tests.cvat_standin.resources.jobs import frame_png
from tests.sidecar.test_e2e_standin import Clock, make_client, make_settings


class FakeFunction:
    """Records every POST (headers, JSON body); answers ``status`` (200, or 500 to fail)."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.status = 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.bodies.append(json.loads(body))
                outer.headers.append({k.lower(): v for k, v in self.headers.items()})
                out = json.dumps({"prefetch": []}).encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def function() -> Iterator[FakeFunction]:
    fn = FakeFunction()
    yield fn
    fn.close()


def service(standin: CvatStandIn, world: OrgWorld, tmp_path: Path, prefetch: dict[str, Any]) -> SidecarService:
    cfg = make_settings(standin, world, f"sqlite:///{tmp_path}/state.db", prefetch=prefetch)
    clock = Clock()
    return SidecarService(cfg, client=make_client(standin, world), clock=clock, sleep=clock.sleep, owner="r1")


def test_started_job_is_prefetched_once(
    cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, tmp_path: Path, function: FakeFunction
) -> None:
    standin, world = cvat_standin, cvat_org_world
    prefetch = {"enabled": True, "function_url": function.url, "max_frames": 5, "batch": 2}
    p2 = world.parent_job_ids[1]  # frames 10-19
    with service(standin, world, tmp_path, prefetch) as svc:
        svc.run_once()
        assert function.bodies == []  # nothing started yet
        # ann1 opens their replica of parent 2
        svc.client.update_job(world.replica_of(p2, "ann1"), state="in progress")
        svc.run_once()
        assert [len(b["prefetch"]) for b in function.bodies] == [2, 2, 1]
        sent = [base64.b64decode(s) for b in function.bodies for s in b["prefetch"]]
        assert sent == [frame_png(world.task_id, f, (640, 480)) for f in range(10, 15)]
        for body in function.bodies:
            PrefetchRequest.model_validate(body)  # what the SAM functions accept
        assert "x-nuclio-function-name" not in function.headers[0]
        # another replica of the same frames starts: already warm, nothing sent again
        svc.client.update_job(world.replica_of(p2, "ann2"), state="in progress")
        report = svc.run_once()
        assert report.healthy and len(function.bodies) == 3
        metrics = svc.metrics.render().decode()
        assert 'cvat_ext_sidecar_prefetch_jobs_total{result="done"} 1.0' in metrics
        assert "cvat_ext_sidecar_prefetch_frames_total 5.0" in metrics


def test_failing_function_never_breaks_the_cycle(
    cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, tmp_path: Path, function: FakeFunction
) -> None:
    standin, world = cvat_standin, cvat_org_world
    prefetch = {
        "enabled": True,
        "function_url": f"{function.url}/api/function_invocations",
        "function_name": "pth-facebookresearch-sam-vit-h",
        "max_frames": 3,
        "batch": 8,
    }
    p1 = world.parent_job_ids[0]
    function.status = 500
    with service(standin, world, tmp_path, prefetch) as svc:
        svc.run_once()
        svc.client.update_job(world.replica_of(p1, "ann3"), state="in progress")
        report = svc.run_once()
        assert report.healthy and report.failed_units == 0
        assert len(function.bodies) == 1
        assert 'cvat_ext_sidecar_prefetch_jobs_total{result="failed"} 1.0' in svc.metrics.render().decode()
        # not recorded as done: the next change of the job tries again, and now it works
        function.status = 200
        svc.client.update_job(world.replica_of(p1, "ann3"), assignee_id=world.user_ids["ann2"])
        svc.run_once()
        assert len(function.bodies) == 2 and len(function.bodies[1]["prefetch"]) == 3
        headers = function.headers[1]
        assert headers["x-nuclio-function-name"] == "pth-facebookresearch-sam-vit-h"
        assert headers["x-nuclio-path"] == "/"


def test_enabled_needs_a_function_url(cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, tmp_path: Path) -> None:
    from cvat_ext.errors import ConfigError

    with pytest.raises(ConfigError, match="function_url"):
        make_settings(cvat_standin, cvat_org_world, "sqlite:///x.db", prefetch={"enabled": True})


def test_background_worker_prefetches_outside_the_cycle(
    cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, tmp_path: Path, function: FakeFunction
) -> None:
    standin, world = cvat_standin, cvat_org_world
    prefetch = {"enabled": True, "function_url": function.url, "max_frames": 4, "batch": 4}
    p2 = world.parent_job_ids[1]
    with service(standin, world, tmp_path, prefetch) as svc:
        prefetcher = svc.cycle.prefetcher
        assert prefetcher is not None
        worker_client = make_client(standin, world)
        prefetcher.start(worker_client)  # what `sidecar run` does
        try:
            svc.run_once()
            svc.client.update_job(world.replica_of(p2, "ann3"), state="in progress")
            cycle_calls = sum(svc.client.calls.values())
            svc.run_once()
            prefetcher.drain()
            assert [len(b["prefetch"]) for b in function.bodies] == [4]
            # the frames went through the worker's own client, not the cycle's
            assert worker_client.calls["GET /api/jobs/{id}/data"] == 4
            assert svc.client.calls["GET /api/jobs/{id}/data"] == 0 and sum(svc.client.calls.values()) > cycle_calls
        finally:
            prefetcher.stop()
            worker_client.close()
        assert prefetcher.client is svc.client

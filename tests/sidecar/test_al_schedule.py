"""Scheduled active-learning rounds in the sidecar: the next round starts when the last one is labelled."""

from __future__ import annotations

from pathlib import Path

import pytest

from cvat_ext.active_learning.round import list_rounds
from cvat_ext.errors import ConfigError
from cvat_ext.sidecar.service import SidecarService
from cvat_ext.sidecar.state import open_store
from tests.active_learning.detector_server import detector_function, url_of
from tests.active_learning.pool import pool_images
from tests.conftest import OrgWorld
from tests.cvat_standin import CvatStandIn
from tests.sidecar.test_e2e_standin import Clock, make_client, make_settings


def _service(standin: CvatStandIn, world: OrgWorld, tmp_path: Path, rounds: list[dict[str, object]]) -> SidecarService:
    cfg = make_settings(standin, world, f"sqlite:///{tmp_path}/state.db", active_learning={"rounds": rounds})
    clock = Clock()
    return SidecarService(cfg, client=make_client(standin, world), rules=None, consensus=None, clock=clock,
                          sleep=clock.sleep, owner="r1")


def _al_metric(svc: SidecarService, result: str) -> float:
    value = svc.metrics.registry.get_sample_value("cvat_ext_sidecar_al_rounds_total", {"result": result})
    return value or 0.0


def test_rounds_follow_each_other_as_annotators_complete_them(cvat_standin: CvatStandIn, cvat_org_world: OrgWorld,
                                                               tmp_path: Path) -> None:
    w = cvat_org_world
    with make_client(cvat_standin, w) as client:
        pool = client.create_task_from_images("pool", project_id=w.project_id,
                                              images=pool_images([[0.5, 0.4, 0.6, 0.9], [0.45, 0.2, 0.99, 0.7]])).id
    with detector_function() as server:
        spec = {"org": w.org_slug, "project_id": w.project_id, "pool_task_id": pool, "batch": 3,
                "function_url": url_of(server), "assignees": ["ann1"], "max_rounds": 2}
        with _service(cvat_standin, w, tmp_path, [spec]) as svc:
            svc.run_once()
            (first,) = list_rounds(svc.store, project_id=w.project_id)
            assert first.status == "done" and len(first.picks) == 3
            svc.run_once()  # its jobs are not completed: wait
            assert len(list_rounds(svc.store, project_id=w.project_id)) == 1
            assert _al_metric(svc, "waiting") == 1 and _al_metric(svc, "started") == 1
            for job_id in first.job_ids:
                cvat_standin.set_job(job_id, state="completed")
            svc.run_once()
            rounds = list_rounds(svc.store, project_id=w.project_id)
            assert [r.number for r in rounds] == [1, 2]
            assert not set(rounds[0].frames) & set(rounds[1].frames)
            for job_id in rounds[1].job_ids:
                cvat_standin.set_job(job_id, state="completed")
            svc.run_once()  # max_rounds reached
            assert len(list_rounds(svc.store, project_id=w.project_id)) == 2
            jobs = cvat_standin.jobs(task_id=rounds[1].task_id)
            assert {j["assignee"]["username"] for j in jobs} == {"ann1"}


def test_a_failing_round_is_counted_and_never_fails_the_cycle(cvat_standin: CvatStandIn, cvat_org_world: OrgWorld,
                                                              tmp_path: Path) -> None:
    w = cvat_org_world
    with detector_function() as server:
        url = url_of(server)  # closed when the block ends: the function is down
    spec = {"org": w.org_slug, "project_id": w.project_id, "pool_task_id": w.task_id, "batch": 2, "function_url": url}
    with _service(cvat_standin, w, tmp_path, [spec]) as svc:
        report = svc.run_once()
        assert not report.aborted
        assert _al_metric(svc, "failed") == 1
        assert list_rounds(svc.store, project_id=w.project_id) == []
    with open_store(f"sqlite:///{tmp_path}/state.db") as store:
        assert not [a for a in store.iter_audit() if a.action == "al_round"]


@pytest.mark.parametrize(("spec", "message"), [
    ({"org": "elsewhere"}, "organization(s) 'elsewhere' are not in cvat.org_slugs"),
    ({"function_url": "nuclio:8070"}, "function_url must be an http"),
    ({"replicas": 1}, "replicas must be 0 or >= 2"),
])
def test_bad_schedules_are_refused_at_start(cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, tmp_path: Path,
                                            spec: dict[str, object], message: str) -> None:
    w = cvat_org_world
    base = {"org": w.org_slug, "project_id": w.project_id, "pool_task_id": w.task_id, "batch": 2,
            "function_url": "http://127.0.0.1:9"}
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _service(cvat_standin, w, tmp_path, [base | spec])


def test_the_long_running_service_runs_rounds_beside_the_cycles(cvat_standin: CvatStandIn,
                                                                 cvat_org_world: OrgWorld, tmp_path: Path) -> None:
    """A round waits on the detector (held by the test) while the QA cycle returns; the worker
    finishes the round once the detector answers."""
    import threading

    w = cvat_org_world
    with make_client(cvat_standin, w) as client:
        pool = client.create_task_from_images("pool", project_id=w.project_id,
                                              images=pool_images([[0.5, 0.4, 0.6], [0.45, 0.2, 0.99]])).id
    with detector_function() as server:
        server.gate = threading.Event()
        spec = {"org": w.org_slug, "project_id": w.project_id, "pool_task_id": pool, "batch": 2,
                "function_url": url_of(server)}
        with _service(cvat_standin, w, tmp_path, [spec]) as svc:
            clients = svc._start_prefetch()
            try:
                report = svc.run_once()  # would hang here if the round ran inside the cycle
                assert not report.aborted
                assert server.called.wait(30)  # the worker is asking the detector
                assert list_rounds(svc.store, project_id=w.project_id) == []  # nothing planned yet
                server.gate.set()
            finally:
                svc._stop_prefetch(clients)  # joins the worker after its round
            (rec,) = list_rounds(svc.store, project_id=w.project_id)
            assert rec.status == "done" and len(rec.picks) == 2
            assert _al_metric(svc, "started") == 1

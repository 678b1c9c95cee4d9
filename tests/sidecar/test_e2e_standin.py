"""End to end: the sidecar with the real CvatClient (real cvat-sdk over HTTP), the real rule packs
and consensus engine, against the CVAT stand-in seeded like the recorded org."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cvat_ext.cvat.client import CvatClient
from cvat_ext.cvat.records import RetryPolicy
from cvat_ext.cvat.signature import sign
from cvat_ext.sidecar import engines
from cvat_ext.sidecar.actions import Hook
from cvat_ext.sidecar.config import SidecarSettings, load_settings
from cvat_ext.sidecar.service import SidecarService
from cvat_ext.sidecar.state import open_store
from tests.conftest import OrgWorld
from tests.cvat_standin import CvatStandIn
from tests.sidecar.crash import Clock, crash_at, die
from tests.sidecar.scenario import SLOPPY_FRAMES, seed_sloppy_consensus

__all__ = ["Clock"]  # the other sidecar tests import it from here too

REPO = Path(__file__).resolve().parents[2]
SECRET = "whsec-e2e-0123456789"


def make_settings(standin: CvatStandIn, world: OrgWorld, state_url: str, **extra: Any) -> SidecarSettings:
    overrides: dict[str, Any] = {
        "cvat": {"url": standin.url, "access_token": world.bot_token, "org": world.org_slug},
        "state": {"url": state_url},
        "rules": {"packs": [str(REPO / "qa_rules" / "default.yaml")]},
        "consensus": {"min_agreement": 0.97, "min_replica_agreement": 0.95},
        "reviewers": {"roles": ["supervisor"]},
        "merge": {"policy": "ours"},
        "guide": {"min_interval_s": 0},
        "webhooks": {"enabled": True, "secret": SECRET},
        "server": {"port": 0, "host": "127.0.0.1"},
    }
    for key, value in extra.items():
        overrides[key] = {**overrides.get(key, {}), **value}
    return load_settings(None, overrides=overrides)


def make_client(standin: CvatStandIn, world: OrgWorld, *, timeout_s: float = 10.0) -> CvatClient:
    return CvatClient(
        standin.url,
        access_token=world.bot_token,
        org=world.org_slug,
        retry=RetryPolicy(max_attempts=4, base_delay_s=0.0, max_delay_s=0.0, budget_s=30.0, jitter=0.0),
        timeout_s=timeout_s,
        sleep=lambda s: None,
    )


def make_service(
    standin: CvatStandIn,
    world: OrgWorld,
    cfg: SidecarSettings,
    clock: Clock,
    *,
    hook: Hook | None = None,
    owner: str = "r1",
    timeout_s: float = 10.0,
) -> SidecarService:
    return SidecarService(
        cfg,
        client=make_client(standin, world, timeout_s=timeout_s),
        rules=engines.rule_runner(cfg),
        consensus=engines.consensus_runner(cfg),
        clock=clock,
        sleep=clock.sleep,
        owner=owner,
        **({"hook": hook} if hook is not None else {}),
    )


def visible(standin: CvatStandIn) -> dict[str, Any]:
    """What managers see in CVAT, ids of issues excluded."""
    issues = sorted(
        (i["job"], i["frame"], i["resolved"], (i.get("assignee") or {}).get("username")) for i in standin.issues()
    )
    jobs = {j["id"]: ((j.get("assignee") or {}).get("username"), j["stage"], j["state"]) for j in standin.jobs()}
    return {"issues": issues, "jobs": jobs}


@pytest.fixture
def sloppy(cvat_standin: CvatStandIn, cvat_org_world: OrgWorld) -> Iterator[tuple[CvatStandIn, OrgWorld]]:
    seed_sloppy_consensus(cvat_standin, cvat_org_world)
    yield cvat_standin, cvat_org_world


def test_sloppy_annotator_gets_issues_and_parent_goes_to_review(
    sloppy: tuple[CvatStandIn, OrgWorld], tmp_path: Path
) -> None:
    standin, world = sloppy
    cfg = make_settings(standin, world, f"sqlite:///{tmp_path}/state.db")
    clock = Clock()
    p1, p2 = world.parent_job_ids
    sloppy_job = world.replica_of(p1, "ann3")
    with make_service(standin, world, cfg, clock) as svc:
        svc.startup_check()
        report = svc.run_once()
        assert report.failed_units == 0, report.errors

        # issues: only on ann3's replica of parent 1, on the frames where ann3 went wrong, assigned to ann3
        issues = standin.issues()
        assert {i["job"] for i in issues} == {sloppy_job}
        assert sorted({i["frame"] for i in issues}) == sorted(SLOPPY_FRAMES)
        assert {i["assignee"]["username"] for i in issues} == {"ann3"}
        assert all(len(i["position"]) == 4 for i in issues)
        # routing: parent 1 to the expert, never an annotator; parent 2 passes, with our merge written
        jobs = {j["id"]: j for j in standin.jobs()}
        assert jobs[p1]["assignee"]["username"] == "rev1"
        assert (jobs[p1]["stage"], jobs[p1]["state"]) == ("validation", "new")
        assert (jobs[p2]["stage"], jobs[p2]["state"]) == ("validation", "new") and jobs[p2]["assignee"] is None
        merged = standin.get_annotations(p2)
        assert len(merged["shapes"]) == 30 and {s["source"] for s in merged["shapes"]} == {"consensus"}
        assert not standin.get_annotations(p1)["shapes"]  # low agreement: no merge
        # the GT job is completed: CVAT's quality report was requested and read
        with open_store(cfg.state.url.get_secret_value()) as store:
            actions = Counter(a.action for a in store.iter_audit())
        assert actions["quality.report"] == 1 and actions["job.reassign"] == 1 and actions["merge.write"] == 1
        assert actions["issue.open"] == len(issues) and actions["guide.update"] == 1
        # the task guide shows the summary and a PNG chart
        task = svc.client.get_task(world.task_id)
        assert task.guide_id is not None
        guide = svc.client.get_guide(task.guide_id).markdown
        assert f"| {p1} | " in guide and "/api/assets/" in guide

        # the run shows on /metrics
        metrics = svc.metrics.render().decode()
        for line in (
            f"cvat_ext_sidecar_issues_opened_total {float(len(issues))}",
            "cvat_ext_sidecar_reassignments_total 1.0",
            "cvat_ext_sidecar_jobs_scored_total 6.0",
            'cvat_ext_sidecar_cycles_total{outcome="ok"} 1.0',
            # 6 replicas once each, plus the GT job once for the annotators' gold checks (workforce)
            'cvat_ext_sidecar_cvat_calls_total{endpoint="GET /api/jobs/{id}/annotations"} 7.0',
            'cvat_ext_sidecar_findings_total{severity="error",source="consensus"}',
            "cvat_ext_sidecar_cycle_seconds_count 1.0",
        ):
            assert line in metrics, line

        # a second cycle changes nothing and only lists jobs
        before, log_len = visible(standin), len(standin.request_log)
        clock.t += 60
        second = svc.run_once()
        new_requests = standin.request_log[log_len:]
        assert visible(standin) == before
        assert {m for m, _, _ in new_requests} == {"GET"}, new_requests
        assert second.cvat_calls <= 2 and second.issues_opened == 0 and second.scored_units == 0


BOUNDARIES = [
    f"{kind}:{step}" for kind in ("issue", "job", "merge", "quality", "guide") for step in ("started", "called", "done")
]


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_kill_at_each_boundary_then_restart(
    cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, tmp_path: Path, boundary: str
) -> None:
    standin, world = cvat_standin, cvat_org_world
    seed_sloppy_consensus(standin, world)
    cfg = make_settings(standin, world, f"sqlite:///{tmp_path}/state.db")
    clock = Clock()
    die(make_service(standin, world, cfg, clock, hook=crash_at(boundary), owner="dead"), clock, cfg.state.lease_ttl_s)
    with make_service(standin, world, cfg, clock, owner="restarted") as svc:
        svc.run_once()
        clock.t += 60
        svc.run_once()
    p1 = world.parent_job_ids[0]
    got = visible(standin)
    # no duplicates: one issue per sloppy frame; nothing lost: every decision carried out once
    assert sorted(f for _, f, _, _ in got["issues"]) == sorted(SLOPPY_FRAMES)
    assert got["jobs"][p1] == ("rev1", "validation", "new")
    with open_store(cfg.state.url.get_secret_value()) as root:
        store = root.scoped(world.org_slug)
        assert store.actions(status="started") == []
        actions = Counter(a.action for a in store.iter_audit())
    assert actions["issue.open"] == len(SLOPPY_FRAMES)
    assert actions["job.reassign"] == 1 and actions["job.pass"] == 1 and actions["quality.report"] == 1
    assert actions["merge.write"] == 1 and actions["guide.update"] >= 1
    assert len(standin.get_annotations(world.parent_job_ids[1])["shapes"]) == 30


@pytest.mark.parametrize(
    ("method", "path", "kind", "extra"),
    [
        ("GET", r"^/api/jobs/\d+/annotations", "status", {"status": 503, "times": 2}),
        ("GET", r"^/api/jobs/?$", "status", {"status": 502, "times": 1}),
        ("GET", r"^/api/jobs/\d+/annotations", "retry_after", {"retry_after_s": 0.0, "times": 2}),
        ("GET", r"^/api/labels", "timeout", {"delay_s": 1.0, "times": 1}),
        ("POST", r"^/api/issues", "status", {"status": 500, "times": 1}),
        ("POST", r"^/api/issues", "retry_after", {"retry_after_s": 0.0, "times": 1}),
        ("PATCH", r"^/api/jobs/\d+$", "status", {"status": 503, "times": 3}),
        ("GET", r"^/api/jobs/?$", "status", {"status": 503, "times": 8}),  # outlasts the retries: cycle retried
    ],
)
def test_cvat_faults_delay_but_do_not_break(
    sloppy: tuple[CvatStandIn, OrgWorld], tmp_path: Path, method: str, path: str, kind: str, extra: dict[str, Any]
) -> None:
    standin, world = sloppy
    cfg = make_settings(standin, world, f"sqlite:///{tmp_path}/state.db")
    clock = Clock()
    standin.faults.add(method, path, kind, **extra)  # type: ignore[arg-type]
    with make_service(standin, world, cfg, clock, timeout_s=0.5) as svc:
        for _ in range(3):
            svc.run_once()
            clock.t += cfg.state.lease_ttl_s + 1
    p1 = world.parent_job_ids[0]
    got = visible(standin)
    assert sorted(f for _, f, _, _ in got["issues"]) == sorted(SLOPPY_FRAMES)
    assert got["jobs"][p1] == ("rev1", "validation", "new")
    with open_store(cfg.state.url.get_secret_value()) as root:
        store = root.scoped(world.org_slug)
        assert store.pending() == [] and store.actions(status="started") == []


def test_forged_webhook_rejected_valid_one_queues(sloppy: tuple[CvatStandIn, OrgWorld], tmp_path: Path) -> None:
    import urllib.error
    import urllib.request

    standin, world = sloppy
    cfg = make_settings(standin, world, f"sqlite:///{tmp_path}/state.db")
    clock = Clock()
    job_id = world.replica_of(world.parent_job_ids[0], "ann1")
    body = json.dumps(
        {
            "event": "update:job",
            "webhook_id": 3,
            "job": {"id": job_id, "state": "completed"},
            "changes": {"state": {"from": "in progress", "to": "completed"}},
        }
    ).encode()

    def post(headers: dict[str, str], data: bytes) -> int:
        req = urllib.request.Request(
            f"{server.url}/webhooks/cvat",
            data=data,
            method="POST",
            headers={"Content-Type": "application/json", **headers},
        )
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as err:
            return int(err.code)

    with make_service(standin, world, cfg, clock) as svc, svc.http_server() as server:
        assert post({}, body) == 401
        assert post({"X-Signature-256": sign("wrong-secret", body)}, body) == 401
        assert post({"X-Signature-256": sign(SECRET, body)}, body.replace(b"completed", b"rejected ")) == 401
        assert svc.store.pending() == []
        assert post({"X-Signature-256": sign(SECRET, body)}, body) == 200
        assert svc.store.pending() == [job_id]
        with urllib.request.urlopen(f"{server.url}/metrics", timeout=5) as resp:
            metrics = resp.read().decode()
        assert 'cvat_ext_sidecar_webhooks_total{result="rejected"} 3.0' in metrics
        with urllib.request.urlopen(f"{server.url}/healthz", timeout=5) as resp:
            assert json.loads(resp.read())["ok"] is True


def test_logs_never_contain_secrets(
    sloppy: tuple[CvatStandIn, OrgWorld], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    import urllib.error
    import urllib.request

    standin, world = sloppy
    cfg = make_settings(standin, world, f"sqlite:///{tmp_path}/state.db")
    standin.faults.add("GET", r"^/api/jobs/\d+/annotations", "status", status=503, times=1)
    standin.faults.add("POST", r"^/api/issues", "status", status=500, times=1)
    clock = Clock()
    with caplog.at_level(logging.DEBUG):
        with make_service(standin, world, cfg, clock) as svc, svc.http_server() as server:
            svc.startup_check()
            svc.run_once()
            clock.t += cfg.state.lease_ttl_s + 1
            svc.run_once()
            req = urllib.request.Request(
                f"{server.url}/webhooks/cvat",
                data=b'{"event": "ping"}',
                method="POST",
                headers={"X-Signature-256": "sha256=" + "0" * 64},
            )
            with pytest.raises(urllib.error.HTTPError):
                urllib.request.urlopen(req, timeout=5)
        # a bad token: the error path must not echo it either
        bad = make_settings(standin, world, f"sqlite:///{tmp_path}/other.db")
        with (
            SidecarService(
                bad,
                client=CvatClient(
                    standin.url, access_token="bad-token-XYZ", org=world.org_slug, retry=RetryPolicy(max_attempts=1)
                ),
                rules=None,
                consensus=None,
            ) as broken,
            pytest.raises(Exception, match="401"),
        ):
            broken.startup_check()
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert "connected to CVAT" in text and "left queued" in text  # the logs did capture the run
    for secret in (world.bot_token, SECRET, "bad-token-XYZ"):
        assert secret not in text


def test_cvat_merge_policy_and_worst_replica_routing(sloppy: tuple[CvatStandIn, OrgWorld], tmp_path: Path) -> None:
    standin, world = sloppy
    cfg = make_settings(
        standin, world, f"sqlite:///{tmp_path}/state.db", merge={"policy": "cvat"}, routing={"target": "worst_replica"}
    )
    p1, p2 = world.parent_job_ids
    with make_service(standin, world, cfg, Clock()) as svc:
        report = svc.run_once()
    assert report.failed_units == 0, report.errors
    jobs = {j["id"]: j for j in standin.jobs()}
    worst = world.replica_of(p1, "ann3")
    # the sloppy replica itself goes to the expert; its parent is left alone
    assert jobs[worst]["assignee"]["username"] == "rev1" and jobs[worst]["stage"] == "validation"
    assert jobs[p1]["assignee"] is None and jobs[p1]["stage"] == "annotation"
    # parent 2 agreed: CVAT's own merge filled it, then it moved on
    merged = standin.get_annotations(p2)["shapes"]
    assert len(merged) == 30 and {s["source"] for s in merged} == {"consensus"}
    assert jobs[p2]["stage"] == "validation"


def test_cvat_delivers_signed_webhooks_that_queue_the_job(
    sloppy: tuple[CvatStandIn, OrgWorld], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cvat_ext.cli import main

    standin, world = sloppy
    cfg = make_settings(standin, world, f"sqlite:///{tmp_path}/state.db")
    job_id = world.replica_of(world.parent_job_ids[1], "ann2")
    with make_service(standin, world, cfg, Clock()) as svc, svc.http_server() as server:
        # the CLI registers the org webhook with the configured secret (and skips it the second time)
        for key, value in {"URL": standin.url, "ACCESS_TOKEN": world.bot_token, "ORG": world.org_slug}.items():
            monkeypatch.setenv(f"CVAT_EXT_CVAT__{key}", value)
        monkeypatch.setenv("CVAT_EXT_WEBHOOKS__SECRET", SECRET)
        target = f"{server.url}/webhooks/cvat"
        assert main(["sidecar", "register-webhook", "--target-url", target]) == 0
        assert main(["sidecar", "register-webhook", "--target-url", target, "--no-ping"]) == 0
        assert len(svc.client.list_webhooks()) == 1
        standin.flush_webhooks()
        # an annotator's change in CVAT arrives as a signed update:job delivery
        svc.client.update_job(job_id, state="in progress")
        standin.flush_webhooks()
        codes = {d["event"]: d["status_code"] for d in standin.deliveries()}
        assert codes["ping"] == 200 and codes["update:job"] == 200
        assert job_id in svc.store.pending()


def test_replicas_with_no_objects_go_to_review_saying_why(
    cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, tmp_path: Path
) -> None:
    """Completed replicas that drew nothing cannot agree or disagree: the parent goes to an expert
    with that reason, not with a misleading "agreement 0.00"."""
    cfg = make_settings(cvat_standin, cvat_org_world, f"sqlite:///{tmp_path}/state.db")
    with make_service(cvat_standin, cvat_org_world, cfg, Clock()) as svc:
        report = svc.run_once()
    assert report.failed_units == 0, report.errors
    for parent in cvat_org_world.parent_job_ids:
        decision = report.decisions[parent]
        assert "no replica drew any object" in decision, decision
        assert "agreement 0.00" not in decision
        job = next(j for j in cvat_standin.jobs() if j["id"] == parent)
        assert (job["assignee"] or {}).get("username") == "rev1"

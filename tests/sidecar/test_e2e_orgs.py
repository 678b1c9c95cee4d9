"""End to end with two organizations in one sidecar: the recorded org ``qa-eval`` and a second
org ``qa-two`` (same users, its own project and consensus task, ann3 sloppy in both), against the
CVAT stand-in with the real cvat-sdk."""

from __future__ import annotations

import json
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from cvat_ext.cvat.signature import sign
from cvat_ext.sidecar import engines
from cvat_ext.sidecar.config import SidecarSettings
from cvat_ext.sidecar.service import SidecarService
from cvat_ext.sidecar.state import open_store
from tests.conftest import ANNOTATORS, ORG_USERS, PROJECT_LABELS, OrgWorld
from tests.cvat_standin import CvatStandIn
from tests.sidecar.scenario import SLOPPY_FRAMES, seed_sloppy_consensus
from tests.sidecar.test_e2e_standin import SECRET, Clock, make_client, make_settings

ORG2 = "qa-two"


def seed_second_org(standin: CvatStandIn, world: OrgWorld) -> OrgWorld:
    """A second org with the same members and a consensus task shaped like the first one."""
    org_id = standin.add_org(ORG2, owner="admin")
    for name, (_, _, role) in ORG_USERS.items():
        if role is not None and role != "owner":
            standin.add_membership(ORG2, name, role)
    project_id = standin.add_project("second project", org=ORG2, labels=PROJECT_LABELS, owner="admin")
    task_id = standin.add_task(
        "second consensus task",
        project_id=project_id,
        frames=20,
        frame_size=(640, 480),
        segment_size=10,
        consensus_replicas=3,
        owner="admin",
    )
    parents = tuple(j["id"] for j in standin.jobs(task_id=task_id, type="annotation"))
    replicas: dict[int, tuple[int, ...]] = {}
    for parent in parents:
        replicas[parent] = tuple(j["id"] for j in standin.jobs(parent_job_id=parent))
        for job_id, annotator in zip(replicas[parent], ANNOTATORS, strict=True):
            standin.set_job(job_id, stage="annotation", state="completed", assignee=annotator)
    label_ids = {lb["name"]: lb["id"] for lb in standin.labels(task_id=task_id)}
    return OrgWorld(
        ORG2, org_id, world.user_ids, world.bot_username, world.bot_token, world.password, project_id, task_id,
        label_ids, {}, parents, replicas, gt_job_id=-1,
    )  # fmt: skip


def two_org_settings(standin: CvatStandIn, world: OrgWorld, state_url: str, **extra: Any) -> SidecarSettings:
    return make_settings(standin, world, state_url, cvat={"orgs": [world.org_slug, ORG2]}, **extra)


def service(standin: CvatStandIn, worlds: list[OrgWorld], cfg: SidecarSettings, clock: Clock) -> SidecarService:
    return SidecarService(
        cfg,
        clients={w.org_slug: make_client(standin, w) for w in worlds},
        rules=engines.rule_runner(cfg),
        consensus=engines.consensus_runner(cfg),
        clock=clock,
        sleep=clock.sleep,
        owner="r1",
    )


def test_two_orgs_in_one_sidecar(cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, tmp_path: Path) -> None:
    standin, w1 = cvat_standin, cvat_org_world
    w2 = seed_second_org(standin, w1)
    seed_sloppy_consensus(standin, w1)
    seed_sloppy_consensus(standin, w2)
    cfg = two_org_settings(standin, w1, f"sqlite:///{tmp_path}/state.db")
    assert cfg.cvat.org_slugs == (w1.org_slug, ORG2)
    clock = Clock()
    with service(standin, [w1, w2], cfg, clock) as svc:
        svc.startup_check()
        report = svc.run_once()
        assert report.failed_units == 0, report.errors

        # each org: issues only on its sloppy replica's bad frames, its parent 1 with the expert
        sloppy = {w.org_slug: w.replica_of(w.parent_job_ids[0], "ann3") for w in (w1, w2)}
        per_job = Counter(i["job"] for i in standin.issues())
        assert set(per_job) == set(sloppy.values())
        assert set(per_job.values()) == {len(SLOPPY_FRAMES)}
        jobs = {j["id"]: j for j in standin.jobs()}
        for w in (w1, w2):
            p1 = w.parent_job_ids[0]
            assert jobs[p1]["assignee"]["username"] == "rev1"
            assert report.decisions[p1].startswith("review")
            assert report.decisions[w.parent_job_ids[1]].startswith("pass")

        # a second cycle changes nothing in either org
        log_len = len(standin.request_log)
        clock.t += 60
        second = svc.run_once()
        assert {m for m, _, _ in standin.request_log[log_len:]} == {"GET"}
        assert second.issues_opened == 0 and second.scored_units == 0

        # a delivery for a job of org 2 lands in org 2's queue only (routed by the organization id)
        p2 = w2.parent_job_ids[1]
        body = json.dumps({"event": "update:job", "job": {"id": p2, "organization": w2.org_id}}).encode()
        with svc.http_server() as server:
            req = urllib.request.Request(
                f"{server.url}/webhooks/cvat",
                data=body,
                headers={"Content-Type": "application/json", "X-Signature-256": sign(SECRET, body)},
            )
            with urllib.request.urlopen(req, timeout=10) as resp:
                assert resp.status == 200
        assert svc.cycles[ORG2].store.pending() == [p2]
        assert svc.cycles[w1.org_slug].store.pending() == []
        # a job queued for the wrong organization (a delivery without an org id) is dropped there
        svc.cycles[w1.org_slug].store.enqueue([p2], "webhook create:issue")
        clock.t += 60
        third = svc.run_once()
        assert third.healthy and not third.errors, third.errors
        assert svc.cycles[w1.org_slug].store.pending() == [] and svc.cycles[ORG2].store.pending() == []

    # state and audit keep the organizations apart
    with open_store(cfg.state.url.get_secret_value()) as root:
        audit = [a for a in root.iter_audit() if a.action == "issue.open"]
        assert Counter(a.org for a in audit) == {w1.org_slug: len(SLOPPY_FRAMES), ORG2: len(SLOPPY_FRAMES)}
        for w in (w1, w2):
            org_store = root.scoped(w.org_slug)
            assert {r.id for r in org_store.jobs_of_task(w.task_id)} >= set(w.parent_job_ids)
            assert org_store.jobs_of_task(w1.task_id if w is w2 else w2.task_id) == []


def test_single_org_store_from_the_previous_version_keeps_working(
    cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, tmp_path: Path
) -> None:
    """A version 1 state file (single org) is migrated; its published issues are not opened again."""
    from tests.sidecar.test_state_orgs import make_v1_sqlite

    standin, world = cvat_standin, cvat_org_world
    seed_sloppy_consensus(standin, world)
    url = f"sqlite:///{tmp_path}/state.db"
    cfg = make_settings(standin, world, url)
    clock = Clock()
    with SidecarService(cfg, client=make_client(standin, world), clock=clock, sleep=clock.sleep, owner="r1") as svc:
        svc.run_once()
    issues_before = len(standin.issues())
    # turn the file into what the single-org version wrote (no org column, version 1)
    make_v1_sqlite(tmp_path / "state.db")
    # the same org, now listed in cvat.orgs next to a second one
    seed_second_org(standin, world)
    cfg2 = two_org_settings(standin, world, url)
    with service(standin, [world, OrgWorld(**{**world.__dict__, "org_slug": ORG2})], cfg2, clock) as svc:
        clock.t += 1000  # a full listing
        report = svc.run_once()
        assert report.issues_opened == 0 and report.failed_units == 0, report.errors
    assert len(standin.issues()) == issues_before


def test_orgs_setting_from_yaml_and_env(monkeypatch: Any) -> None:
    import pytest

    from cvat_ext.errors import ConfigError
    from cvat_ext.sidecar.config import load_settings

    base = {"cvat": {"url": "http://cvat:8080", "access_token": "t0ken"}}
    assert load_settings(None, overrides=base).cvat.org_slugs == ("",)  # personal workspace
    assert load_settings(None, overrides={"cvat": {**base["cvat"], "org": "a"}}).cvat.org_slugs == ("a",)
    both = {"cvat": {**base["cvat"], "org": "a", "orgs": ["b", "a"]}}
    assert load_settings(None, overrides=both).cvat.org_slugs == ("a", "b")
    for env, expected in (('["x", "y"]', ("x", "y")), ("x, y,z", ("x", "y", "z"))):
        monkeypatch.setenv("CVAT_EXT_CVAT__ORGS", env)
        assert load_settings(None, overrides=base).cvat.org_slugs == expected
    monkeypatch.setenv("CVAT_EXT_CVAT__ORGS", '["x",')
    with pytest.raises(ConfigError, match=r"cvat\.orgs"):
        load_settings(None, overrides=base)


def test_webhook_routing_by_org_id_then_job_cache_then_everyone(tmp_path: Path) -> None:
    from cvat_ext.sidecar.changes import ORG_ID
    from cvat_ext.sidecar.state import JobRow
    from cvat_ext.sidecar.webhooks import WebhookReceiver

    with open_store(f"sqlite:///{tmp_path}/s.db") as root:
        a, b = root.scoped("a"), root.scoped("b")
        a.set_cursor(ORG_ID, "1")
        b.set_cursor(ORG_ID, "2")
        b.upsert_jobs([JobRow(30, 3, None, "annotation", "annotation", "new", None, "2026-11-23T00:00:00.000000Z")])
        receiver = WebhookReceiver(SECRET, {"a": a, "b": b})

        def deliver(payload: dict[str, Any]) -> None:
            body = json.dumps(payload).encode()
            status, _ = receiver.handle({"X-Signature-256": sign(SECRET, body)}, body)
            assert status == 200

        deliver({"event": "update:job", "job": {"id": 11, "organization": 2}})
        assert (a.pending(), b.pending()) == ([], [11])
        deliver({"event": "create:issue", "issue": {"id": 5, "job": 30}})  # no org id: b's cache knows job 30
        assert (a.pending(), b.pending()) == ([], [11, 30])
        deliver({"event": "create:issue", "issue": {"id": 6, "job": 99}})  # unknown anywhere: no queue
        assert (a.pending(), b.pending()) == ([], [11, 30])


def test_register_webhook_in_every_org(
    cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, monkeypatch: Any, capsys: Any
) -> None:
    from cvat_ext.cli import main
    from tests.sidecar.test_e2e_standin import make_client as client_for

    standin, w1 = cvat_standin, cvat_org_world
    w2 = seed_second_org(standin, w1)
    for key, value in {"URL": standin.url, "ACCESS_TOKEN": w1.bot_token, "ORGS": f"{w1.org_slug},{ORG2}"}.items():
        monkeypatch.setenv(f"CVAT_EXT_CVAT__{key}", value)
    monkeypatch.setenv("CVAT_EXT_WEBHOOKS__SECRET", SECRET)
    target = "http://127.0.0.1:9/webhooks/cvat"
    assert main(["sidecar", "register-webhook", "--target-url", target, "--no-ping"]) == 0
    assert main(["sidecar", "register-webhook", "--target-url", target, "--no-ping"]) == 0  # nothing new
    out = capsys.readouterr().out
    assert out.count("created organization webhook") == 2 and out.count("already posts") == 2
    for w in (w1, w2):
        with client_for(standin, w) as client:
            assert [h.target_url for h in client.list_webhooks()] == [target]
    assert main(["sidecar", "register-webhook", "--target-url", target, "--project-id", "1"]) == 2

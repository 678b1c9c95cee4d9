"""Honeypots count in the workforce gold checks: a ``gt_pool`` task, where annotators never see a GT
job, only placeholder frames in their own jobs. The sidecar (real cvat-sdk over HTTP against the CVAT
stand-in) measures each completed job on its honeypot frames against the GT of the frames they show,
and qualifies its annotator from that."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import requests

from cvat_ext import cli
from cvat_ext.sidecar.state import StateStore
from cvat_ext.workforce.collector import GATE_MARK
from tests.conftest import OrgWorld
from tests.cvat_standin import CvatStandIn
from tests.sidecar.crash import Clock
from tests.sidecar.scenario import CARS_XYXY
from tests.sidecar.test_e2e_standin import make_service, make_settings
from tests.sidecar.test_honeypots import HONEYPOTS as PARENT_HONEYPOTS
from tests.sidecar.test_honeypots import _honeypot_task
from tests.workforce.scenario import HONEYPOTS, GoldTask, seed_gold_task, seed_honeypot_task

QUALIFICATION = {"qualification": {"enabled": True, "bar": 0.9, "min_gold_frames": 4, "requalify_checks": 2}}
LAYOUT_CALL = "GET /api/tasks/{id}/validation_layout"


def _settings(standin: CvatStandIn, world: OrgWorld, tmp_path: Path, tasks: list[int]) -> Any:
    return make_settings(standin, world, f"sqlite:///{tmp_path}/state.db", scope={"task_ids": tasks},
                         workforce=QUALIFICATION)


def _facts(store: StateStore, job_id: int) -> dict[str, Any]:
    (row,) = store.work(job_id=job_id)
    assert row.completed_at is not None
    return row.facts


def _cards(world: OrgWorld, state_url: str, capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, Any]]:
    assert cli.main(["report", "annotators", "--state", state_url, "--org", world.org_slug,
                     "--project", str(world.project_id), "--format", "json"]) == 0
    return {c["username"]: c for c in json.loads(capsys.readouterr().out)}


def _annotator_page(svc: Any, world: OrgWorld, username: str) -> str:
    with svc.http_server() as server:
        session = requests.Session()
        assert session.post(f"{server.url}/login", data={"token": world.bot_token}, timeout=10,
                            allow_redirects=False).status_code == 303
        resp = session.get(f"{server.url}/reports/org/{world.org_slug}/annotator/{world.user_ids[username]}",
                           timeout=10)
    assert resp.status_code == 200
    return resp.text


def _honeypots_of(task: GoldTask, job_id: int) -> list[int]:
    start = 0 if job_id == task.precise_job else 10
    return sorted(h for h in HONEYPOTS if start <= h < start + 10)


def test_honeypots_are_gold_a_precise_annotator_qualifies_a_sloppy_one_does_not(
        cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    standin, world = cvat_standin, cvat_org_world
    pool = seed_honeypot_task(standin, world)
    plain = seed_gold_task(standin, world)  # a GT job over task frames (mode gt): no honeypots there
    cfg = _settings(standin, world, tmp_path, [pool.task_id, plain.task_id])
    with make_service(standin, world, cfg, Clock()) as svc:
        report = svc.run_once()
        assert report.failed_units == 0, report.errors
        store = svc.store
        # each honeypot frame is measured on the 2 GT cars of the validation frame it shows
        precise = _facts(store, pool.precise_job)
        assert precise["gold_job_id"] == pool.gt_job and "gold_honeypots_unread" not in precise
        assert precise["gold"] == {"frames": 4, "honeypots": 4, "gold_objects": 8, "objects": 8, "matched": 8,
                                   "worst_frames": []}
        # ann3 draws 1 of the 2 cars shown and a phantom on each: F1 0.5 on every honeypot frame
        sloppy = _facts(store, pool.sloppy_job)["gold"]
        assert (sloppy["frames"], sloppy["honeypots"], sloppy["gold_objects"], sloppy["objects"],
                sloppy["matched"]) == (4, 4, 8, 8, 4)
        assert sloppy["worst_frames"] == [[h, 0.5] for h in _honeypots_of(pool, pool.sloppy_job)]
        # the mode-gt task's checks say no honeypots
        assert _facts(store, plain.precise_job)["gold"]["honeypots"] == 0
        assert _facts(store, plain.precise_job)["gold"]["frames"] == 4

        standing = {q.username: q for q in store.qualifications()}
        assert standing["ann1"].status == "qualified" and standing["ann3"].status == "not_qualified"
        assert {"job_id": pool.precise_job, "frames": 4, "f1": 1.0} in standing["ann1"].checks
        assert {"job_id": pool.sloppy_job, "frames": 4, "f1": 0.5} in standing["ann3"].checks
        gate = [i for i in standin.issues() if i["job"] == pool.sloppy_job]
        assert len(gate) == 1 and svc.client.list_comments(gate[0]["id"])[0].message.startswith(GATE_MARK)
        assert not [i for i in standin.issues() if i["job"] == pool.precise_job]
        # one layout read per task with a GT job, shared with the consensus path's cache
        assert svc.client.calls[LAYOUT_CALL] == 2
        page = _annotator_page(svc, world, "ann1")
    assert "1.000 over 8 gold frames (4 of them honeypots)" in page and "honeypots not used" not in page
    cards = _cards(world, cfg.state.url.get_secret_value(), capsys)
    assert (cards["ann1"]["gold_frames"], cards["ann1"]["gold_honeypot_frames"]) == (8, 4)
    assert cards["ann1"]["gold_accuracy"] == pytest.approx(1.0)
    # pooled over both tasks: 2·(1 + 4) matched / (3·4 + 2·4 on the plain task + 8 + 8 on the pool) = 0.2778
    assert cards["ann3"]["gold_accuracy"] == pytest.approx(2 * (4 + 4) / (20 + 16))
    assert cards["ann3"]["honeypots_unread_jobs"] == 0


@pytest.mark.parametrize("status", [404, 403])
def test_an_unreadable_layout_is_said_once_and_in_the_records(
        cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str], status: int) -> None:
    standin, world = cvat_standin, cvat_org_world
    pool = seed_honeypot_task(standin, world)
    standin.faults.add("GET", r"^/api/tasks/\d+/validation_layout/?$", "status", status=status, times=10)
    cfg = _settings(standin, world, tmp_path, [pool.task_id])
    with caplog.at_level(logging.WARNING, logger="cvat_ext"), make_service(standin, world, cfg, Clock()) as svc:
        report = svc.run_once()
        assert report.failed_units == 0, report.errors
        for job_id in (pool.precise_job, pool.sloppy_job):
            facts = _facts(svc.store, job_id)
            # no frame of a gt_pool job is a GT frame: without the layout there is no gold check at all
            assert "gold" not in facts and facts["gold_job_id"] == pool.gt_job
            assert f"CVAT answered {status}" in facts["gold_honeypots_unread"]
            assert "honeypot frames are not used" in facts["gold_honeypots_unread"]
        standing = {q.username: q for q in svc.store.qualifications()}
        assert standing["ann1"].status == standing["ann3"].status == "pending"
        assert not [i for i in standin.issues() if i["job"] == pool.sloppy_job]  # nobody is gated on no gold
        page = _annotator_page(svc, world, "ann3")
    said = [r for r in caplog.records if "validation layout could not be read" in r.getMessage()]
    assert len(said) == 1 and f"task {pool.task_id}:" in said[0].getMessage()
    assert (f"<td>honeypots not used</td><td>task {pool.task_id}, 1 job: the task&#x27;s validation layout could "
            f"not be read (CVAT answered {status};") in page
    cards = _cards(world, cfg.state.url.get_secret_value(), capsys)
    assert {n: (c["honeypots_unread_jobs"], c["gold_frames"], c["gold_accuracy"]) for n, c in cards.items()} == {
        "ann1": (1, 0, None), "ann3": (1, 0, None)}


def test_consensus_replicas_are_measured_on_their_parents_honeypots(
        cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, tmp_path: Path) -> None:
    """A gt_pool consensus task: each replica holds its parent's frames, so its gold check covers the
    parent's honeypots, the same frames the consensus engine anchors on."""
    standin, world = cvat_standin, cvat_org_world
    task, parent, gt_job = _honeypot_task(standin, world)
    cfg = _settings(standin, world, tmp_path, [task])
    with make_service(standin, world, cfg, Clock()) as svc:
        report = svc.run_once()
        assert report.failed_units == 0, report.errors
        replicas = {j["assignee"]["username"]: j["id"] for j in standin.jobs(parent_job_id=parent)}
        gold = {name: _facts(svc.store, job_id)["gold"] for name, job_id in replicas.items()}
        assert all(_facts(svc.store, job_id)["gold_job_id"] == gt_job for job_id in replicas.values())
    n_gold = len(PARENT_HONEYPOTS) * len(CARS_XYXY)
    # ann2 and ann3 miss the first car on odd frames: honeypots 1, 9 and 11; ann3 adds a phantom on 6
    missed = sum(1 for h in PARENT_HONEYPOTS if h % 2 == 1)
    phantoms = sum(1 for h in PARENT_HONEYPOTS if h % 3 == 0)
    expect = {"ann1": (n_gold, n_gold), "ann2": (n_gold - missed, n_gold - missed),
              "ann3": (n_gold - missed + phantoms, n_gold - missed)}
    for name, (objects, matched) in expect.items():
        g = gold[name]
        assert (g["frames"], g["honeypots"], g["gold_objects"], g["objects"], g["matched"]) == (
            len(PARENT_HONEYPOTS), len(PARENT_HONEYPOTS), n_gold, objects, matched), name


def test_an_accepted_gt_job_with_nothing_drawn_is_no_gold(
        cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """The consensus path's rule, for the gold checks too (one place: ``read_ground_truth``): a GT
    job accepted before anyone drew in it would fail every annotator on every object."""
    standin, world = cvat_standin, cvat_org_world
    task = seed_gold_task(standin, world)
    standin.set_annotations(task.gt_job, {"version": 0, "tags": [], "tracks": [], "shapes": []})
    cfg = _settings(standin, world, tmp_path, [task.task_id])
    with caplog.at_level(logging.WARNING), make_service(standin, world, cfg, Clock()) as svc:
        report = svc.run_once()
        assert report.failed_units == 0, report.errors
        for job_id in (task.precise_job, task.sloppy_job):
            assert "gold" not in _facts(svc.store, job_id)
        assert {q.status for q in svc.store.qualifications()} <= {"pending"}
        assert not [i for i in standin.issues() if i["job"] in (task.precise_job, task.sloppy_job)]
    assert f"GT job {task.gt_job} is accepted but has no annotations" in caplog.text


def test_a_malformed_gt_job_measures_nobody_but_the_work_is_recorded(
        cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """Bad data in the task's GT job is the GT's problem: each completed job still gets its work
    record (objects, frames), without a gold check, and the GT job is named once."""
    standin, world = cvat_standin, cvat_org_world
    task = seed_gold_task(standin, world)
    bad = b'{"version": 0, "tags": [], "tracks": [], "shapes": [{"type": "rectangle", "frame": 0, ' \
          b'"label_id": 1, "points": [1, 2, 3]}]}'  # what the stand-in would refuse to store
    cfg = _settings(standin, world, tmp_path, [task.task_id])
    with caplog.at_level(logging.WARNING), make_service(standin, world, cfg, Clock()) as svc:
        real = svc.client.get_annotations_bytes
        svc.client.get_annotations_bytes = lambda j: bad if j == task.gt_job else real(j)  # type: ignore[method-assign]
        svc.run_once()
        for job_id in (task.precise_job, task.sloppy_job):
            facts = _facts(svc.store, job_id)
            assert facts["objects"] > 0 and "gold" not in facts
    said = [r.getMessage() for r in caplog.records if "its GT job cannot be read" in r.getMessage()]
    assert len(said) == 1 and f"job {task.gt_job}" in said[0], said

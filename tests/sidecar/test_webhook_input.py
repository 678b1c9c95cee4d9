"""Webhook bodies are untrusted even when signed: ids must be CVAT ids, nesting is bounded, and every
request is answered (receiver table), and nothing is acted on without a signature or outside the
configured organization and scope (the seeded fuzzer against a running sidecar)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from cvat_ext.cvat.signature import sign
from cvat_ext.sidecar.state import open_store
from cvat_ext.sidecar.webhooks import MAX_CVAT_ID, MAX_JSON_DEPTH, WebhookReceiver, parse_bounded_json
from tests.conftest import OrgWorld
from tests.cvat_standin import CvatStandIn
from tests.reliability.webhook_fuzz import SCOPES, webhook_fuzz_run
from tests.sidecar.scenario import seed_sloppy_consensus
from tests.sidecar.test_e2e_standin import Clock, make_service, make_settings

SECRET = "whsec-input-0123456789"


def job_body(job_id: object) -> bytes:
    return json.dumps({"event": "update:job", "job": {"id": job_id, "state": "completed"}}).encode()


@pytest.mark.parametrize(
    ("body", "status", "queued"),
    [
        (job_body(812), 200, [812]),
        (job_body(MAX_CVAT_ID), 200, [MAX_CVAT_ID]),
        (job_body(MAX_CVAT_ID + 1), 400, []),
        (job_body(2**70), 400, []),
        (b'{"event": "update:job", "job": {"id": ' + b"9" * 4000 + b"}}", 400, []),
        (b'{"event": "update:job", "job": {"id": ' + b"9" * 5000 + b"}}", 400, []),
        (job_body(0), 400, []),
        (job_body(-5), 400, []),
        (job_body("812"), 400, []),
        (job_body(812.0), 400, []),
        (job_body(True), 400, []),
        (job_body(None), 400, []),
        (json.dumps({"event": "create:issue", "issue": {"id": 3, "job": 2**40}}).encode(), 400, []),
        (json.dumps({"event": "x", "request": {"operation": {"job_id": -1}}}).encode(), 400, []),
        (b'{"event": "update:job", "job": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, []),
        (b'{"a":' * (MAX_JSON_DEPTH + 1) + b"1" + b"}" * (MAX_JSON_DEPTH + 1), 400, []),
        (b"\xff\xfe not utf-8", 400, []),
        (b"[1, 2]", 400, []),
    ],
    ids=lambda v: v[:40].decode("utf-8", "replace") if isinstance(v, bytes) else str(v)[:20],
)
def test_signed_body_is_validated_before_anything_is_queued(
    tmp_path: Path, body: bytes, status: int, queued: list[int]
) -> None:
    with open_store(f"sqlite:///{tmp_path}/s.db") as store:
        got, answer = WebhookReceiver(SECRET, store).handle({"X-Signature-256": sign(SECRET, body)}, body)
        assert (got, store.pending()) == (status, queued), answer
        if status == 400:
            assert answer["error"].startswith("not a CVAT webhook payload: ")
            assert len(answer["error"]) < 300  # one short line, never the body echoed back


def test_json_depth_limit_is_exact() -> None:
    at_limit = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert parse_bounded_json(at_limit) == parse_bounded_json(at_limit)  # parses
    with pytest.raises(ValueError, match=f"deeper than {MAX_JSON_DEPTH}"):
        parse_bounded_json(b"[" + at_limit + b"]")


@pytest.mark.parametrize("scope", SCOPES)
def test_webhook_fuzz_every_request_answered_nothing_acted_outside_scope(scope: str) -> None:
    run = webhook_fuzz_run(seed=16, n=120, scope=scope)
    fuzz = run.fuzz
    assert fuzz.requests == 120 and fuzz.unanswered == 0, fuzz.by_case
    assert set(fuzz.statuses) <= {200, 400, 401, 413}, fuzz.by_case
    assert {400, 401, 413, 200} <= set(fuzz.statuses)  # the table really reached every branch
    assert fuzz.queued_unsigned == 0
    assert run.acted_out_of_scope == 0
    if scope == "nothing":
        assert run.acted_in_scope == 0 and run.dropped_out_of_scope > 0
    else:
        # positive control: the in-scope sloppy task was acted on (issues, routing, pass)
        assert run.acted_in_scope > 0 and run.dropped_out_of_scope > 0


def test_fresh_sidecar_of_an_empty_org_drops_another_orgs_jobs(
    cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, tmp_path: Path
) -> None:
    """Issue 16's case: nothing in the configured organization yet, a fresh state (its id never
    learned from a listing), and signed deliveries naming jobs of another organization the bot
    belongs to. The jobs are read, found outside, dropped: never scored, never written."""
    standin, world = cvat_standin, cvat_org_world
    seed_sloppy_consensus(standin, world)
    standin.add_org("qa-empty", owner="admin")
    standin.add_membership("qa-empty", "qabot", "maintainer")
    empty = dataclasses.replace(world, org_slug="qa-empty")
    cfg = make_settings(standin, empty, f"sqlite:///{tmp_path}/state.db", webhooks={"secret": SECRET})
    foreign = [j["id"] for j in standin.jobs(task_id=world.task_id)]
    with make_service(standin, empty, cfg, Clock()) as svc:
        receiver = svc.webhook_receiver()
        assert receiver is not None
        for job_id in foreign:
            body = job_body(job_id)
            assert receiver.handle({"X-Signature-256": sign(SECRET, body)}, body)[0] == 200
        assert sorted(svc.store.pending()) == sorted(foreign)
        log_start = len(standin.request_log)
        report = svc.run_once()
        svc.run_once()
        dropped = svc.metrics.render().decode()
        assert svc.store.pending() == [] and report.units == 0
    requests = standin.request_log[log_start:]
    assert {m for m, _, _ in requests} == {"GET"}, requests
    assert not [p for _, p, _ in requests if p.endswith("/annotations")]
    assert standin.issues() == []
    assert f"cvat_ext_sidecar_webhook_jobs_out_of_scope_total {float(len(foreign))}" in dropped

"""Replay every recorded CVAT 2.73 exchange the stand-in implements; compare status and structure.

One module-scoped stand-in is seeded like the recording (tests/conftest.py world + the sandbox task +
recorded annotations) and the exchanges run in recording-file order, so later exchanges see the
effects of earlier ones (issues, merges, reports). Each exchange is one test case.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import seed_org_world
from tests.cvat_standin import CvatStandIn
from tests.standin_checks.receiver import WebhookReceiver
from tests.standin_checks.replay import (
    RECORDED,
    Exchange,
    IdMap,
    Reply,
    basic_auth,
    learn_ids,
    load_exchanges,
    multipart,
    remap_body,
    remap_path,
    remap_query,
    send,
    structure_diff,
)

EXCHANGES = load_exchanges()
SKIPPED = {
    "L": "lambda endpoints (/api/lambda/...) are not implemented by the stand-in",
}
CREATES = {"/api/issues": "issue", "/api/comments": "comment", "/api/guides": "guide", "/api/webhooks": "webhook",
           "/api/assets": "asset", "/api/jobs": "job", "/api/tasks": "task"}
LEARN_FROM_LIST = {"/api/quality/settings": "qsettings", "/api/consensus/settings": "csettings"}
# keys whose values depend on what happened before, compared by kind only
OPAQUE = {"13_webhook_deliveries_list": frozenset({"request"})}
PNG_260 = b"\x89PNG\r\n\x1a\n" + bytes(252)


def _prepare_e07(standin: CvatStandIn, ids: IdMap) -> None:
    """E07 failed in the recording's worker (environment defect); reproduce it with an injected failure."""
    standin.set_job(ids.get("job", 150), stage="acceptance", state="completed")
    standin.fail_next_request("calculate:quality", "TypeError: injected like the recorded failure\n")


# runs before the first exchange of a file
PREPARE = {"E07_quality_report_failed_request.json": _prepare_e07}


def skip_reason(ex: Exchange) -> str | None:
    for prefix, reason in SKIPPED.items():
        if ex.file.startswith(prefix):
            return reason
    return None


@dataclass
class Outcome:
    reply: Reply | None = None
    skipped: str | None = None


def _recorded(name: str, index: int = 0) -> Any:
    return json.loads((RECORDED / name).read_text())["exchanges"][index]["response"]["body"]


def _strip_ids_shift(obj: Any, shift: int) -> Any:
    if isinstance(obj, list):
        return [_strip_ids_shift(v, shift) for v in obj]
    if isinstance(obj, dict):
        return {k: (v + shift if k == "frame" else _strip_ids_shift(v, shift)) for k, v in obj.items() if k != "id"}
    return obj


def _seed(standin: CvatStandIn, ids: IdMap) -> dict[str, str]:
    """Seed the recorded world; returns auth headers per username."""
    world = seed_org_world(standin)
    summary = json.loads((RECORDED / "99_webhook_summary.json").read_text())["ids"]
    sandbox = standin.add_task("qa-eval sandbox task", project_id=world.project_id, frames=4, owner="qabot")
    ids.set("task", summary["task"], world.task_id)
    ids.set("task", summary["sandbox_task"], sandbox)
    ids.set("project", summary["project"], world.project_id)
    for rec, ours in zip(summary["parent_jobs"], world.parent_job_ids):
        ids.set("job", rec, ours)
    for key, rec in summary["replica_jobs"].items():
        user, parent_idx = key.split("@parent")
        ids.set("job", rec, world.replica_of(world.parent_job_ids[int(parent_idx) - 1], user))
    ids.set("job", summary["ground_truth_job"], world.gt_job_id)
    ids.set("job", summary["sandbox_job"], standin.jobs(task_id=sandbox)[0]["id"])
    for name, uid in world.user_ids.items():
        ids.set("user", uid, uid)  # created in the recorded order: same ids
        del name
    for label in _recorded("22_labels_list_task.json")["results"]:
        ids.set("label", label["id"], world.label_ids[label["name"]])
        for sub in label["sublabels"]:
            ids.set("label", sub["id"], world.label_ids[sub["name"]])
        for attr in label["attributes"]:
            ids.set("attribute", attr["id"], world.attribute_ids[f"{label['name']}.{attr['name']}"])
    # annotations: ann1's replica of parent 2 and the GT job as recorded; parent 1's replicas get a
    # frame-shifted copy so that merges and reports have something to work on
    replica = _recorded("40_job_annotations_get_replica.json")
    standin.set_annotations(ids.get("job", 136), remap_body(ids, _strip_ids_shift(replica, 0)))
    standin.set_annotations(world.gt_job_id, remap_body(ids, _strip_ids_shift(
        _recorded("41_job_annotations_get_gt.json"), 0)))
    for job_id in world.replica_job_ids[world.parent_job_ids[0]]:
        shifted = _strip_ids_shift(replica, -10)
        shifted["tracks"] = []  # the recorded track starts on frame 12 of parent 2 only
        standin.set_annotations(job_id, remap_body(ids, shifted))
    _seed_task_creation(standin, ids)
    standin.request_polls = 1
    return {"qabot": f"Bearer {world.bot_token}",
            **{u: basic_auth(u, world.password) for u in world.user_ids if u != "qabot"}}


def _seed_task_creation(standin: CvatStandIn, ids: IdMap) -> None:
    """T01 creates a task as admin in org fn-e2e (recorded id 4), project "fn-e2e people" (4)."""
    org_id = standin.add_org("fn-e2e", owner="admin")
    project_id = standin.add_project("fn-e2e people", org="fn-e2e", owner="admin",
                                     labels=[{"name": "person", "type": "any", "attributes": []}])
    ids.set("org", 4, org_id)
    ids.set("project", 4, project_id)


def _frames_multipart(n: int = 3) -> tuple[bytes, str]:
    """``client_files`` parts of ``n`` small PNG frames (the recording keeps only the byte count)."""
    import io

    from PIL import Image

    fields = {}
    for i in range(n):
        buf = io.BytesIO()
        Image.new("RGB", (40, 30), (40 * i, 80, 120)).save(buf, format="PNG")
        fields[f"client_files[{i}]"] = (f"frame_{i}.png", "image/png", buf.getvalue())
    return multipart(fields)


def _report_ids(standin: CvatStandIn, ids: IdMap) -> None:
    """Map recorded report ids by (target, job, computation number) using recording 84."""
    recorded = _recorded("84_quality_reports_list_task.json")["results"]
    rec_gens = sorted(r["id"] for r in recorded if r["target"] == "task")
    with standin.world.lock:
        ours = list(standin.world.quality_reports.values())
    our_gens = sorted(r.id for r in ours if r.target == "task")
    for r in recorded:
        gen = rec_gens.index(r["id"] if r["target"] == "task" else r["parent_id"])
        if gen >= len(our_gens):
            continue
        parent = our_gens[gen]
        job = ids.get("job", r["job_id"]) if r["job_id"] is not None else None
        match = [o.id for o in ours if (o.id == parent if r["target"] == "task" else
                                        (o.parent_id == parent and o.job_id == job))]
        if match:
            ids.set("report", r["id"], match[0])


def _request(ex: Exchange, ids: IdMap, auth: dict[str, str], receiver_url: str) -> tuple[str, dict[str, str],
                                                                                         dict[str, str], bytes | None]:
    req = ex.request
    headers = {k: v for k, v in req["headers"].items()
               if k in ("X-Organization", "Accept", "Upload-Start", "Upload-Multiple", "Upload-Finish")}
    user = ex.username
    if user is not None:
        headers["Authorization"] = auth[user]
    if ex.response["status"] == 401 and user == "qabot":
        headers["Authorization"] = "Bearer not-a-valid-token"
    body: bytes | None = None
    raw = req["body"]
    if isinstance(raw, dict) and "multipart" in raw:
        form = raw["multipart"]
        body, ctype = multipart({"guide_id": (None, "text/plain", str(ids.get("guide", int(form["guide_id"])))
                                              .encode()),
                                 "file": ("qa-chart.png", "image/png", PNG_260)})
        headers["Content-Type"] = ctype
    elif isinstance(raw, str) and raw.startswith("<") and "multipart/form-data" in raw:
        body, headers["Content-Type"] = _frames_multipart()
    elif raw is not None:
        raw = remap_body(ids, copy.deepcopy(raw))
        if isinstance(raw, dict) and "target_url" in raw:
            raw["target_url"] = receiver_url
        body = json.dumps(raw).encode()
        headers["Content-Type"] = "application/json"
    return remap_path(ids, req["path"]), remap_query(ids, req["query"]), headers, body


@pytest.fixture(scope="module")
def replayed() -> Iterator[tuple[dict[str, Outcome], CvatStandIn, WebhookReceiver]]:
    ids = IdMap()
    outcomes: dict[str, Outcome] = {}
    with CvatStandIn() as standin, WebhookReceiver() as receiver:
        auth = _seed(standin, ids)
        for ex in EXCHANGES:
            reason = skip_reason(ex)
            if reason:
                outcomes[ex.key] = Outcome(skipped=reason)
                continue
            _report_ids(standin, ids)
            if ex.index == 0 and ex.file in PREPARE:
                PREPARE[ex.file](standin, ids)
            path, query, headers, body = _request(ex, ids, auth, receiver.url)
            reply = send(standin.url, ex.request["method"], path, query, headers, body)
            outcomes[ex.key] = Outcome(reply)
            kind = CREATES.get(ex.request["path"].rstrip("/")) if ex.request["method"] == "POST" else None
            if ex.request["method"] in ("PUT", "PATCH") and "/annotations" in ex.request["path"]:
                kind = "annotations"
            if kind and reply.status < 300:
                learn_ids(ids, ex.response["body"], reply.body, None if kind == "annotations" else kind)
            list_kind = LEARN_FROM_LIST.get(ex.request["path"])
            if list_kind and isinstance(reply.body, dict):
                learn_ids(ids, ex.response["body"]["results"], reply.body["results"], list_kind)
        standin.flush_webhooks()
        yield outcomes, standin, receiver


@pytest.mark.parametrize("ex", EXCHANGES, ids=[e.key for e in EXCHANGES])
def test_replay(ex: Exchange, replayed: tuple[dict[str, Outcome], CvatStandIn, WebhookReceiver]) -> None:
    outcome = replayed[0][ex.key]
    if outcome.skipped:
        pytest.skip(outcome.skipped)
    reply = outcome.reply
    assert reply is not None
    where = f"{ex.request['method']} {ex.request['path']}"
    assert reply.status == ex.response["status"], f"{where}: status {reply.status}, body {reply.body!r:.400}"
    recorded_ctype = ex.response["headers"].get("content-type", "")
    if "json" in recorded_ctype:
        opaque = OPAQUE.get(ex.file.removesuffix(".json"), frozenset())
        diffs = structure_diff(ex.response["body"], reply.body, opaque=opaque)
        assert not diffs, f"{where}:\n" + "\n".join(diffs[:20])
    else:
        assert recorded_ctype.split(";")[0] == reply.content_type.split(";")[0], where


def test_replay_responses_match_schema(replayed: tuple[dict[str, Outcome], CvatStandIn, WebhookReceiver]) -> None:
    standin = replayed[1]
    assert not standin.schema_errors, "\n".join(standin.schema_errors[:30])


def test_replay_covers_most_exchanges() -> None:
    implemented = [e for e in EXCHANGES if skip_reason(e) is None]
    assert len(implemented) >= 90, f"only {len(implemented)} of {len(EXCHANGES)} exchanges replayed"

"""Smaller pieces: webhook verification on CVAT's recorded deliveries, the guide block and chart,
metrics labels, the run loop with injected time."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from cvat_ext.sidecar.guide import BEGIN, END, agreement_chart, replace_block, summary_markdown
from cvat_ext.sidecar.logs import RedactingFilter
from cvat_ext.sidecar.metrics import SidecarMetrics, endpoint_label
from cvat_ext.sidecar.state import ScoreRow, open_store
from cvat_ext.sidecar.webhooks import WebhookReceiver
from cvat_ext.workforce.accuracy import AnnotatorAccuracy
from tests.cvat.recorded import recorded_dir

RECORDED_SECRET = "qa-eval-webhook-secret"  # visible in 10_webhook_create.json (see its README)


def recorded_deliveries() -> list[dict[str, object]]:
    found = []
    for path in sorted(recorded_dir().glob("*.json")):
        data = json.loads(path.read_text())
        if isinstance(data, dict):
            found += data.get("deliveries", [])
    return found


def test_every_recorded_delivery_verifies_and_queues_its_job(tmp_path: Path) -> None:
    deliveries = recorded_deliveries()
    assert len(deliveries) >= 60
    woken = []
    with open_store(f"sqlite:///{tmp_path}/s.db") as store:
        receiver = WebhookReceiver(RECORDED_SECRET, store, wake=lambda: woken.append(1))
        expected: set[int] = set()
        for d in deliveries:
            body = str(d["body_raw"]).encode()
            status, answer = receiver.handle({"X-Signature-256": str(d["x_signature_256_for_body_raw"])}, body)
            assert status == 200, answer
            payload = json.loads(body)
            if isinstance(payload.get("job"), dict):
                expected.add(payload["job"]["id"])
                assert payload["job"]["id"] in answer["queued"]
            if isinstance(payload.get("issue"), dict):
                expected.add(payload["issue"]["job"])
        assert set(store.pending()) >= expected and expected
        assert woken


@pytest.mark.parametrize(
    ("headers", "mangle"),
    [
        ({}, False),  # no signature
        ({"X-Signature-256": "sha256=" + "0" * 64}, False),  # wrong signature
        ({"X-Signature-256": "md5=abc"}, False),  # wrong scheme
        (None, True),  # right signature, body changed after signing
    ],
)
def test_bad_signature_is_401_and_changes_nothing(tmp_path: Path, headers: dict[str, str] | None, mangle: bool) -> None:
    d = next(x for x in recorded_deliveries() if '"update:job"' in str(x["body_raw"]))
    body = str(d["body_raw"]).encode()
    if headers is None:
        headers = {"x-signature-256": str(d["x_signature_256_for_body_raw"])}  # header names are case-insensitive
    if mangle:
        body = body.replace(b'"update:job"', b'"delete:job"')
    metrics = SidecarMetrics()
    with open_store(f"sqlite:///{tmp_path}/s.db") as store:
        status, _ = WebhookReceiver(RECORDED_SECRET, store, metrics=metrics).handle(headers, body)
        assert status == 401 and store.pending() == []
    assert b'cvat_ext_sidecar_webhooks_total{result="rejected"} 1.0' in metrics.render()


def test_guide_block_keeps_human_text_and_is_replaced_in_place() -> None:
    scores = [
        ScoreRow(
            "consensus:7",
            3,
            7,
            "consensus",
            0.812,
            2,
            4,
            "review (agreement 0.81 < 0.90)",
            {"replicas": {"8": 0.95, "9": 0.6}},
            0.0,
        )
    ]
    block = summary_markdown(3, scores, min_agreement=0.9, chart_url="/api/assets/u1")
    assert block.startswith(BEGIN) and block.endswith(END)
    # a score kept before annotators were named reads as job<ID>, its figure labelled vs consensus
    assert ("| 7 | 0.81 | job8: F1 vs consensus 0.95, job9: F1 vs consensus 0.60 | 2 | 4 "
            "| review (agreement 0.81 < 0.90) |") in block
    human = "# Labeling guide\n\nDraw tight boxes.\n"
    first = replace_block(human, block)
    assert first.startswith(human.rstrip()) and block in first
    newer = summary_markdown(3, [], min_agreement=0.9, chart_url=None)
    second = replace_block(first + "\nFooter by a human.\n", newer)
    assert second.count(BEGIN) == 1 and "0.81" not in second and "Draw tight boxes." in second
    assert second.rstrip().endswith("Footer by a human.")


def test_guide_block_names_annotators_with_their_estimates() -> None:
    ann1 = AnnotatorAccuracy("ann1", 8, 0.95, {"f1": 0.9, "mean_iou": 0.85}, {"f1": 0.01, "mean_iou": 0.02}, 12)
    ann3 = AnnotatorAccuracy("ann3", 9, 0.6, {}, {})
    detail = {"replicas": {"8": 0.95, "9": 0.6}, "annotators": [ann1.as_dict(), ann3.as_dict()],
              "ground_truth": {"job_id": 20, "frames": 3, "objects": 12,
                               "model_error": {"ann1": {"f1": 0.012, "mean_iou": -0.03}, "ann3": {"f1": None}}}}
    scores = [ScoreRow("consensus:7", 3, 7, "consensus", 0.812, 0, 1, "pass", detail, 0.0)]
    block = summary_markdown(3, scores, min_agreement=0.9, chart_url=None)
    assert "| 7 | 0.81 | ann1: est. F1 0.90 ± 0.01, ann3: F1 vs consensus 0.60 | 0 | 1 | pass |" in block
    assert "| ann1 | 1 | 0.900 ± 0.010 | 0.850 ± 0.020 | 12 | 0.950 |" in block  # ± one standard error
    assert "| ann3 | 1 | — | — | 0 | 0.600 |" in block
    assert ("Ground-truth check, job 7: GT job 20, 3 frames, 12 objects; estimate minus GT on those frames: "
            "ann1: F1 +0.01, mean IoU -0.03; ann3: F1 n/a, mean IoU n/a.") in block


def test_chart_is_a_png_with_red_bars_below_threshold() -> None:
    png = agreement_chart([("job 1", 0.95), ("job 2", 0.4)], threshold=0.9)
    img = Image.open(io.BytesIO(png)).convert("RGB")
    assert img.size == (720, 360)
    colours = {c for _, c in img.getcolors(100_000) or []}
    assert (200, 60, 60) in colours and (60, 140, 80) in colours  # one bar under, one over the threshold


@pytest.mark.parametrize(
    ("call", "label"),
    [
        ("GET /api/jobs/812/annotations", "GET /api/jobs/{id}/annotations"),
        ("PATCH /api/jobs/{id}", "PATCH /api/jobs/{id}"),
        ("GET /api/jobs?page=2", "GET /api/jobs"),
        ("GET /api/requests/rq-1", "GET /api/requests/rq-1"),
    ],
)
def test_endpoint_labels_are_bounded(call: str, label: str) -> None:
    assert endpoint_label(call) == label


def test_redacting_filter_hides_secrets_in_messages_and_args() -> None:
    import logging

    record = logging.LogRecord("x", logging.INFO, __file__, 1, "token %s at %s", ("abc-secret-1", "url"), None)
    assert RedactingFilter(["abc-secret-1"]).filter(record)
    assert record.getMessage() == "token *** at url"


def test_run_loop_stops_after_max_cycles_and_wakes_early(tmp_path: Path) -> None:
    from tests.sidecar.test_cycle_fake import Clock, service, settings, world

    cvat, clock = world(), Clock()
    cfg = settings(tmp_path, server={"enabled": False}, service={"poll_interval_s": 30})
    with service(cvat, cfg, clock) as svc:
        start = clock.t
        svc.run(max_cycles=3)
        # 3 cycles, 2 waits of the poll interval in between (slept through the injected clock)
        assert clock.t - start == pytest.approx(60)
        assert cvat.calls["GET /api/jobs"] == 3
        svc.wake()
        t0 = clock.t
        svc._wait(30)  # a pending wake returns at once
        assert clock.t == t0
        ok, details = svc.health()
        assert ok and details["replica"] == "r1"


def test_run_loop_survives_a_failing_cycle(tmp_path: Path) -> None:
    from cvat_ext.errors import StateStoreError
    from tests.sidecar.test_cycle_fake import Clock, service, settings, world

    cvat, clock = world(), Clock()
    cfg = settings(tmp_path, server={"enabled": False})
    with service(cvat, cfg, clock) as svc:
        real = svc.cycle.run
        calls = {"n": 0}

        def flaky() -> object:
            calls["n"] += 1
            if calls["n"] == 1:
                raise StateStoreError("state store postgresql://db:5432/x: connection lost")
            return real()

        svc.cycle.run = flaky  # type: ignore[method-assign]
        svc.run(max_cycles=2)
        assert calls["n"] == 2 and svc.health()[0]  # failed once, then healthy again


def test_publish_keeps_its_names_and_hands_issue_actions_to_the_issue_publisher(tmp_path: Path) -> None:
    """``sidecar.publish`` is split along its concepts; its public names still import from it, and
    ``Publisher.resume`` hands an issue action to :class:`IssuePublisher` (which refuses others)."""
    from cvat_ext.sidecar import issue_fingerprint, issue_selection, issues, job_rows, publish
    from cvat_ext.sidecar.actions import ActionRunner

    assert publish.publishable is issue_selection.publishable
    assert publish.job_row is job_rows.job_row and publish.iso_utc is job_rows.iso_utc
    assert publish.fingerprinted is issue_fingerprint.fingerprinted
    assert publish.issue_message is issue_fingerprint.issue_message
    assert publish.maybe_applied is issues.maybe_applied
    with open_store(f"sqlite:///{tmp_path}/s.db") as store:
        runner = ActionRunner(store, "test")
        metrics = SidecarMetrics()
        writes = publish.IssuePublisher(None, store, runner, metrics)  # type: ignore[arg-type]
        publisher = publish.Publisher(None, store, runner, metrics, writes)  # type: ignore[arg-type]
        assert not publisher.resume("merge:1", "merge", {"job_id": 1})  # a unit re-runs a merge
        with pytest.raises(ValueError, match="not an issue action"):
            publisher.issues.resume("merge:1", "merge", {"job_id": 1})

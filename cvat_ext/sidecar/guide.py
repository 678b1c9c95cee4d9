"""Per-task QA summary in the task's CVAT guide: markdown plus a PNG chart (drawn with Pillow).

The summary lives between two HTML comments in the guide's markdown, so a human-written guide
around it is kept. The chart is uploaded as a guide asset (``/api/assets/<uuid>``); it is only
re-uploaded when its content changes, and a task's guide is updated at most once per
``min_interval_s`` (CVAT keeps at most 150 assets per guide).
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable, Sequence
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from cvat_ext.cvat.guide_blocks import markers
from cvat_ext.cvat.guide_blocks import replace_block as replace_named_block
from cvat_ext.sidecar.actions import ActionRunner
from cvat_ext.sidecar.interface import CvatApi
from cvat_ext.sidecar.state import ScoreRow, StateStore
from cvat_ext.workforce.accuracy import accuracies_of, gt_check_line, summarise

log = logging.getLogger(__name__)

BLOCK = "qa-summary"
BEGIN, END = markers(BLOCK)
CHART_WH = (720, 360)


def summary_markdown(task_id: int, scores: Sequence[ScoreRow], *, min_agreement: float, chart_url: str | None,
                     report_url: str | None = None) -> str:
    """The summary block (markers included) for one task's latest scores (``report_url``: its report page)."""
    lines = [BEGIN, f"## QA summary (cvat-ext) — task {task_id}", ""]
    consensus = [s for s in scores if s.kind == "consensus"]
    rules = [s for s in scores if s.kind == "rules"]
    quality = [s for s in scores if s.kind == "quality"]
    if consensus:
        lines += [
            f"Consensus agreement (threshold {min_agreement:.2f}):",
            "",
            "| parent job | agreement | annotators | rule errors | issues | decision |",
            "|---|---|---|---|---|---|",
        ]
        for s in consensus:
            people = ", ".join(f"{a.name}: {a.f1_text()}" for a in accuracies_of(s.detail))
            agreement = f"{s.agreement:.2f}" if s.agreement is not None else "-"
            lines.append(f"| {s.job_id} | {agreement} | {people} | {s.rule_errors} | {s.findings} | {s.decision} |")
        lines += ["", *_annotator_lines(consensus)]
    if rules:
        lines += ["Rule checks:", "", "| job | rule errors | issues | decision |", "|---|---|---|---|"]
        lines += [f"| {s.job_id} | {s.rule_errors} | {s.findings} | {s.decision} |" for s in rules]
        lines.append("")
    for s in quality:
        acc = f"{s.agreement:.3f}" if s.agreement is not None else "-"
        lines.append(f"CVAT quality report {s.detail.get('report_id')}: accuracy {acc}, conflicts {s.findings}.")
        lines.append("")
    if chart_url:
        lines += [f"![agreement per job]({chart_url})", ""]
    if report_url:
        lines += [f"Details per job and annotator: [task {task_id} on the QA report pages]({report_url})", ""]
    lines.append(END)
    return "\n".join(lines)


def _annotator_lines(consensus: Sequence[ScoreRow]) -> list[str]:
    """Per annotator over the task's consensus jobs: the estimate vs truth (± one standard error, GT
    objects behind it) beside the F1 vs consensus, which is agreement, not accuracy."""
    summaries = summarise([a for s in consensus for a in accuracies_of(s.detail)])
    if not summaries:
        return []
    lines = [
        "Annotators (estimated against the truth; ± one standard error, twice it is the range):",
        "",
        "| annotator | jobs | estimated F1 (±) | estimated mean IoU (±) | GT objects | F1 vs consensus |",
        "|---|---|---|---|---|---|",
    ]
    for a in summaries:
        lines.append(f"| {a.name} | {a.jobs} | {a.f1_text()} | {a.mean_iou_text()} | {a.gt_objects} "
                     f"| {a.vs_consensus_f1:.3f} |")
    lines.append("")
    for s in consensus:
        gt = s.detail.get("ground_truth")
        if gt:
            lines += [gt_check_line(s.job_id, gt), ""]
    return lines


def replace_block(markdown: str, block: str) -> str:
    """``markdown`` with the summary block replaced (or appended when absent)."""
    return replace_named_block(markdown, block, BLOCK)


def agreement_chart(bars: Sequence[tuple[str, float]], *, threshold: float) -> bytes:
    """A PNG bar chart: one bar per (name, value in [0, 1]), red below ``threshold``, and the
    threshold as a dashed line. ``CHART_WH`` pixels."""
    w, h = CHART_WH
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    left, right, top, bottom = 50, w - 20, 30, h - 50
    draw.text((left, 8), "agreement per job", fill="black", font=font)
    draw.line([(left, top), (left, bottom), (right, bottom)], fill="black")
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = bottom - tick * (bottom - top)
        draw.line([(left - 4, y), (left, y)], fill="black")
        draw.text((8, y - 6), f"{tick:.2f}", fill="black", font=font)
    n = max(1, len(bars))
    slot = (right - left) / n
    for i, (name, value) in enumerate(bars):
        v = min(1.0, max(0.0, value))
        x0 = left + i * slot + slot * 0.15
        x1 = left + (i + 1) * slot - slot * 0.15
        y0 = bottom - v * (bottom - top)
        draw.rectangle([x0, y0, x1, bottom], fill=(200, 60, 60) if value < threshold else (60, 140, 80))
        draw.text((x0, bottom + 6), name[:10], fill="black", font=font)
    ty = bottom - threshold * (bottom - top)
    x = float(left)
    while x < right:
        draw.line([(x, ty), (min(x + 6, right), ty)], fill=(30, 30, 200))
        x += 10
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


class GuidePublisher:
    """Writes the summary block into a task's guide (creating the guide if the task has none)."""

    def __init__(
        self,
        client: CvatApi,
        store: StateStore,
        runner: ActionRunner,
        *,
        min_agreement: float,
        min_interval_s: float,
        clock: Callable[[], float],
        report_url: Callable[[int], str] | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self.runner = runner
        self.min_agreement = min_agreement
        self.min_interval_s = min_interval_s
        self.clock = clock
        self.report_url = report_url

    def superseded(self, key: str, payload: dict[str, Any], attempted_at: float) -> str | None:
        """Why the started guide action ``key`` (last tried at ``attempted_at``) is superseded: the
        task's guide was written after it (by a later summary, or with this one); None while the
        guide still waits for it (the next publish repeats it under the same key)."""
        task_id = int(payload["task_id"])
        state = self.store.guide_state(task_id)
        if state is None or state[1] < attempted_at:
            return None
        digest = key.rsplit(":", 1)[-1]
        if state[0] == digest:
            return f"task {task_id}: the guide already shows this summary"
        return f"task {task_id}: the guide was rewritten with a later summary"

    def publish(self, task_id: int) -> bool:
        """Update the guide when the summary changed and the interval has passed; True if written."""
        scores = self.store.scores_of_task(task_id)
        if not scores:
            return False
        bars = [(f"job {s.job_id}", s.agreement) for s in scores if s.kind == "consensus" and s.agreement is not None]
        chart = agreement_chart(bars, threshold=self.min_agreement) if bars else None
        page = self.report_url(task_id) if self.report_url is not None else None
        draft = summary_markdown(task_id, scores, min_agreement=self.min_agreement, chart_url=None, report_url=page)
        digest = hashlib.sha256(draft.encode("utf-8") + (chart or b"")).hexdigest()[:24]
        previous = self.store.guide_state(task_id)
        if previous is not None and previous[0] == digest:
            self.store.set_guide_state(task_id, digest)  # up to date: no longer pending
            return False
        if previous is not None and self.clock() - previous[1] < self.min_interval_s:
            return False

        def do(p: dict[str, object]) -> dict[str, object]:
            task = self.client.get_task(task_id)
            if task.guide_id is None:
                guide = self.client.create_guide(task_id=task_id, markdown=replace_block("", draft))
            else:
                guide = self.client.get_guide(task.guide_id)
            url = None
            if chart is not None:
                uuid = self.client.upload_asset(guide.id, f"qa-summary-task{task_id}.png", chart)
                url = f"/api/assets/{uuid}"
            block = summary_markdown(task_id, scores, min_agreement=self.min_agreement, chart_url=url, report_url=page)
            self.client.update_guide(guide.id, replace_block(guide.markdown, block))
            return {"guide_id": guide.id, "chart": url}

        def audit(p: dict[str, object], r: dict[str, object]) -> dict[str, object]:
            return {"action": "guide.update", "task_id": task_id, "reason": "QA summary changed", "after": r}

        # PATCHing the guide is idempotent: after a crash the restart writes it again
        self.runner.run(
            f"guide:{task_id}:{digest}", "guide", job_id=None, payload={"task_id": task_id}, do=do, audit=audit
        )
        self.store.set_guide_state(task_id, digest)
        return True

"""The engine reports progress per batch of frames and ends at the job's frame count."""

from __future__ import annotations

from pathlib import Path

from cvat_ext.rules import check_job, load_packs
from tests.rules.recorded import recorded_job

QA_RULES = Path(__file__).resolve().parents[2] / "qa_rules"


def test_progress_counts_every_frame_once() -> None:
    ann, labels, meta = recorded_job("72_consensus_parent_after_merge.json")
    calls: list[tuple[int, int]] = []
    found = check_job(
        ann, labels, meta, load_packs([QA_RULES / "default.yaml"]), job_id=131, annotator=None,
        batch_rows=5, progress=lambda done, total: calls.append((done, total)),
    )
    total = len(set(meta.frame_indices()) | set(ann.frames()))
    assert len(calls) > 1, "small batches report more than once"
    assert [d for d, _ in calls] == sorted({d for d, _ in calls}), "done only grows"
    assert calls[-1] == (total, total)
    assert {t for _, t in calls} == {total}
    assert found == check_job(
        ann, labels, meta, load_packs([QA_RULES / "default.yaml"]), job_id=131, annotator=None, batch_rows=5
    ), "progress does not change the findings"

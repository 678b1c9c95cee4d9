"""Accuracy on gold frames: the consensus engine's pair matching, labels kept apart."""

from __future__ import annotations

import pytest

from cvat_ext.annotations.cvat_json import parse_job_annotations, parse_labels
from cvat_ext.annotations.model import FrameInfo, JobMeta
from cvat_ext.workforce.gold import gold_check

LABELS = parse_labels([{"id": 1, "name": "car", "type": "rectangle", "attributes": [], "sublabels": []},
                       {"id": 2, "name": "person", "type": "rectangle", "attributes": [], "sublabels": []}],
                      where="labels")
META = JobMeta(0, 9, tuple(FrameInfo(640, 480, f"f{i}.png") for i in range(10)))
BOXES = [(40.0, 60.0, 140.0, 130.0), (250.0, 200.0, 380.0, 300.0), (450.0, 80.0, 600.0, 210.0)]


def _ann(rows: list[tuple[int, int, tuple[float, ...]]]):  # type: ignore[no-untyped-def]
    return parse_job_annotations({"version": 0, "tags": [], "tracks": [], "shapes": [
        {"type": "rectangle", "frame": f, "label_id": lab, "points": list(xyxy), "occluded": False,
         "outside": False, "z_order": 0, "rotation": 0, "group": 0, "source": "manual", "attributes": []}
        for f, lab, xyxy in rows]}, where="test")


GOLD = _ann([(f, 1, b) for f in (1, 3, 5) for b in BOXES])


@pytest.mark.parametrize(("work_rows", "f1"), [
    ([(f, 1, b) for f in range(10) for b in BOXES], 1.0),  # every gold object, plus frames off gold (ignored)
    ([(f, 1, b) for f in (1, 3, 5) for b in BOXES[:2]], 2 * 6 / (9 + 6)),  # one object missed per frame
    ([(f, 2, b) for f in (1, 3, 5) for b in BOXES], 0.0),  # every label wrong
    ([(f, 1, tuple(v + 60 for v in b)) for f in (1, 3, 5) for b in BOXES], 0.0),  # shifted past IoU 0.5
    ([], 0.0),
])
def test_gold_f1(work_rows: list[tuple[int, int, tuple[float, ...]]], f1: float) -> None:
    got = gold_check(7, _ann(work_rows), GOLD, [1, 3, 5, 12], LABELS, META, iou_thr=0.5)
    assert got is not None
    assert got.frames == 3 and got.gold_objects == 9 and got.job_id == 7
    assert got.f1 == pytest.approx(f1)
    # the frames where the job did worst: every gold frame is equally off in these cases
    assert [frame for frame, _ in got.worst_frames] == ([] if f1 == 1.0 else [1, 3, 5])
    assert all(frame_f1 == pytest.approx(f1) for _, frame_f1 in got.worst_frames)


def test_a_job_without_gold_frames_has_no_check() -> None:
    assert gold_check(7, GOLD, GOLD, [12, 15], LABELS, META, iou_thr=0.5) is None

"""Per-annotator geometric agreement with the merged objects (``AnnotatorStats.vs_consensus_iou``)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from cvat_ext.annotations.model import JobAnnotations, MaskRle, Shape, ShapeType
from cvat_ext.consensus.engine import score_replicas
from cvat_ext.consensus.report import write_csv_tables
from cvat_ext.consensus.settings import ConsensusSettings
from tests.consensus.helpers import CAR, PERSON, box, labels, meta, skeleton

EQUAL = ConsensusSettings(iou_thr=0.5, quorum=2, estimate_reliability=False)


def _mask(frame: int, width: int) -> Shape:
    rle = MaskRle.from_bitmap(np.ones((10, width), dtype=bool), 100, 100)
    return Shape(type=ShapeType.MASK, frame=frame, label_id=PERSON, points=np.zeros((0, 2)), mask=rle)


def _golden() -> dict[str, JobAnnotations]:
    # frame 0, boxes: the fused box is the mean [1/3, 0, 10 1/3, 10]:
    #   IoU(a or b, fused) = 96.67 / 103.33 = 0.93548, IoU(c, fused) = 93.33 / 106.67 = 0.875
    # frame 1, masks: two 10x10 and one 10x9 -> the 2-of-3 vote is the 10x10 square:
    #   IoU(a or b) = 1, IoU(c) = 90 / 100 = 0.9
    # frame 2: a box only c drew (dropped by the quorum: no merged object to compare with)
    return {
        "a": JobAnnotations(shapes=(box(0, CAR, [0, 0, 10, 10]), _mask(1, 10))),
        "b": JobAnnotations(shapes=(box(0, CAR, [0, 0, 10, 10]), _mask(1, 10))),
        "c": JobAnnotations(shapes=(box(0, CAR, [1, 0, 11, 10]), _mask(1, 9), box(2, CAR, [50, 50, 60, 60]))),
    }


def test_golden_vs_consensus_iou(tmp_path: Path) -> None:
    result = score_replicas(_golden(), labels(), meta(3), EQUAL)
    got = {a.annotator: a.vs_consensus_iou for a in result.annotators}
    ab = (96 + 2 / 3) / (103 + 1 / 3)
    assert got["a"] == pytest.approx((ab + 1.0) / 2)
    assert got["b"] == pytest.approx((ab + 1.0) / 2)
    assert got["c"] == pytest.approx(((93 + 1 / 3) / (106 + 2 / 3) + 0.9) / 2)
    # JSON and CSV carry it
    in_json = [a["vs_consensus_iou"] for a in result.to_json()["annotators"]]
    assert in_json == pytest.approx(list(got.values()), abs=1e-6)
    write_csv_tables(result, tmp_path)
    with (tmp_path / "annotators.csv").open() as fh:
        rows = {row["annotator"]: float(row["vs_consensus_iou"]) for row in csv.DictReader(fh)}
    assert rows == pytest.approx(got, abs=1e-6)


def test_consensus_oks_for_skeletons() -> None:
    xy = [(10.0, 10.0), (30.0, 10.0), (20.0, 40.0)]
    moved = [(10.0, 10.0), (30.0, 10.0), (24.0, 40.0)]
    replicas = {
        "a": JobAnnotations(shapes=(skeleton(0, xy, [False] * 3),)),
        "b": JobAnnotations(shapes=(skeleton(0, xy, [False] * 3),)),
        "c": JobAnnotations(shapes=(skeleton(0, moved, [False] * 3),)),
    }
    result = score_replicas(replicas, labels(), meta(1), EQUAL)
    got = {a.annotator: a.vs_consensus_iou for a in result.annotators}
    # the weighted median of each keypoint is a's (= b's) point: a and b match it exactly
    assert got["a"] == pytest.approx(1.0) and got["b"] == pytest.approx(1.0)
    # c: one keypoint 4 px off; OKS scale = mean box area 20 * 30, sigma 0.09
    expected = (2 + math.exp(-16 / (2 * 600 * (2 * 0.09) ** 2))) / 3
    assert got["c"] == pytest.approx(expected)


def test_nearest_method_compares_with_the_chosen_member() -> None:
    result = score_replicas(_golden(), labels(), meta(3), EQUAL.model_copy(update={"method": "nearest"}))
    got = {a.annotator: a.vs_consensus_iou for a in result.annotators}
    # frame 0: the member nearest the mean box is a (or b, identical): IoU 1, 1 and 90/110
    assert got["c"] < got["a"] == got["b"]
    assert all(0.0 <= v <= 1.0 for v in got.values())


@pytest.mark.parametrize("weights", [{"a": 3.0, "b": 1.0, "c": 1.0}, {"a": 1.0, "b": 1.0, "c": 1.0}])
def test_polygon_vs_consensus_iou_equals_the_kernel(weights: dict[str, float]) -> None:
    from cvat_ext.geometry import SimilarityParams, similarity_matrix

    def poly(dx: float) -> Shape:
        pts = np.array([[10, 10], [40, 10], [40, 30], [10, 30]], dtype=np.float64) + np.array([dx, 0.0])
        return Shape(type=ShapeType.POLYGON, frame=0, label_id=PERSON, points=pts)

    members = {"a": poly(0.0), "b": poly(3.0), "c": poly(6.0)}
    replicas = {n: JobAnnotations(shapes=(sh,)) for n, sh in members.items()}
    settings = EQUAL.model_copy(update={"weights": weights, "estimate_reliability": True})
    result = score_replicas(replicas, labels(), meta(1), settings)
    (fused,) = result.merged.shapes
    params = SimilarityParams(image_wh=(640, 480))
    want = similarity_matrix(list(members.values()), [fused], params)[:, 0]
    got = [a.vs_consensus_iou for a in result.annotators]
    np.testing.assert_allclose(got, want, atol=1e-9)
    if weights["a"] == 3.0:  # a dominates the vote: the merged polygon is a's drawing
        assert got[0] == 1.0

"""Fusion rules on hand-checked inputs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import cvat_ext.consensus.merge as merge_module
from cvat_ext.annotations.model import MaskRle, Shape, ShapeType, Tag
from cvat_ext.consensus.merge import (
    fuse_boxes,
    fuse_keypoints,
    fuse_masks,
    fuse_polygons,
    fuse_skeleton,
    merge_tags,
    nearest_to_mean,
    vote_attributes,
    vote_masks,
    weighted_median,
)
from cvat_ext.geometry import SimilarityParams, mask_iou, similarity_matrix
from tests.consensus.helpers import box, skeleton


def test_weighted_boxes_fusion() -> None:
    xyxy = np.array([[[0, 0, 10, 10], [2, 2, 12, 12], [50, 50, 60, 60]]], dtype=np.float64)
    weight = np.array([[1.0, 3.0, 0.0]])  # the third member is absent
    fused, rotation = fuse_boxes(xyxy, np.zeros((1, 3)), weight)
    assert fused[0] == pytest.approx([1.5, 1.5, 11.5, 11.5])
    assert rotation[0] == 0.0


def test_rotation_is_averaged_on_the_circle() -> None:
    xyxy = np.zeros((1, 2, 4))
    _, rotation = fuse_boxes(xyxy, np.array([[350.0, 10.0]]), np.ones((1, 2)))
    assert rotation[0] == pytest.approx(0.0, abs=1e-9) or rotation[0] == pytest.approx(360.0)


def test_nearest_to_mean_is_cvats_rule() -> None:
    xyxy = np.array([[[0, 0, 10, 10], [1, 0, 11, 10], [30, 0, 40, 10]]], dtype=np.float64)
    present = np.array([[True, True, False]])
    # mean of the present members is [0.5, 0, 10.5, 10]: both are equally near, the first wins
    assert nearest_to_mean(xyxy, present).tolist() == [0]
    present = np.array([[True, True, True]])
    # mean [10.33, 0, 20.33, 10]: member 1 overlaps it most
    assert nearest_to_mean(xyxy, present).tolist() == [1]


@pytest.mark.parametrize(
    ("values", "weights", "expected"),
    [([1.0, 2.0, 3.0], [1, 1, 1], 2.0), ([1.0, 2.0, 30.0], [1, 1, 5], 30.0), ([5.0, 1.0], [1, 1], 1.0)],
)
def test_weighted_median(values: list[float], weights: list[float], expected: float) -> None:
    assert weighted_median(np.array(values), np.array(weights, dtype=float)) == expected


def _square_mask(left: int, top: int, size: int) -> MaskRle:
    return MaskRle.from_bitmap(np.ones((size, size), dtype=bool), left, top)


@pytest.mark.parametrize("method", ["wbf", "staple"])
def test_mask_vote_keeps_the_majority(method: str) -> None:
    masks = [_square_mask(0, 0, 10), _square_mask(0, 0, 10), _square_mask(5, 5, 10)]
    fused = fuse_masks(masks, np.ones(3), method, 0.5)  # type: ignore[arg-type]
    assert fused is not None
    assert fused.ltrb == (0, 0, 9, 9)
    assert fused.area == 100


def test_mask_vote_follows_the_weights() -> None:
    masks = [_square_mask(0, 0, 10), _square_mask(5, 5, 10)]
    fused = fuse_masks(masks, np.array([0.2, 1.0]), "wbf", 0.5)
    assert fused is not None and fused.ltrb == (5, 5, 14, 14)


def test_polygon_vote_reproduces_an_agreed_polygon() -> None:
    square = np.array([[10.0, 10.0], [40.0, 10.0], [40.0, 30.0], [10.0, 30.0]])
    shifted = square + np.array([1.0, 0.0])
    fused = fuse_polygons([square, square, shifted], np.ones(3), "wbf", 0.5)
    assert fused is not None
    iou = similarity_matrix(
        [Shape(type=ShapeType.POLYGON, frame=0, label_id=1, points=fused)],
        [Shape(type=ShapeType.POLYGON, frame=0, label_id=1, points=square)],
        SimilarityParams(),
    )
    assert iou[0, 0] > 0.97


def test_skeleton_median_and_visibility_vote() -> None:
    members = [
        skeleton(0, [(10, 10), (20, 20), (30, 30)], [False, False, True]),
        skeleton(0, [(12, 10), (20, 22), (31, 30)], [False, True, True]),
        skeleton(0, [(100, 100), (21, 20), (32, 30)], [False, False, False]),
    ]
    elements = fuse_skeleton(members, np.ones(3))
    xy = [tuple(e.points[0]) for e in elements]
    assert xy[0] == (12.0, 10.0)  # median resists the outlier at (100, 100)
    assert [e.outside for e in elements] == [False, False, True]  # 3/3, 2/3 and 1/3 see it


def test_attribute_vote_by_weight() -> None:
    a = box(0, 1, [0, 0, 1, 1], attrs={7: "a"})
    b = box(0, 1, [0, 0, 1, 1], attrs={7: "b"})
    assert vote_attributes([a, b, b], [3.0, 1.0, 1.0])[0].value == "a"
    assert vote_attributes([a, b], [1.0, 1.0])[0].value == "a"  # tie: smallest value


def test_tags_need_the_quorum() -> None:
    tags = [(0, Tag(frame=3, label_id=5)), (1, Tag(frame=3, label_id=5)), (2, Tag(frame=3, label_id=6))]
    merged = merge_tags(3, tags, np.ones(3), quorum=2)
    assert [(t.label_id, t.source) for t in merged] == [(5, "consensus")]


def test_run_level_vote_without_masks() -> None:
    ltrb, counts, _ = vote_masks([], np.zeros(0, dtype=np.int64), np.zeros(0), 0, 0.5)
    assert ltrb.shape == (0, 4) and counts == []


@pytest.mark.parametrize("member_bits", [62, 1])
@pytest.mark.parametrize("block", [128, 7])
@pytest.mark.parametrize("seed", range(5))
def test_run_level_vote_equals_the_bitmap_vote(
    seed: int, block: int, member_bits: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(merge_module, "VOTE_BLOCK", block)  # 7: the 40 clusters go in blocks
    monkeypatch.setattr(merge_module, "MEMBER_BITS", member_bits)  # 1: member IoUs by the run join
    rng = np.random.default_rng(seed)
    masks, cluster, weight = [], [], []
    for k in range(40):
        for _ in range(int(rng.integers(1, 4))):
            h, w = (int(v) for v in rng.integers(1, 9, 2))
            bits = rng.random((h, w)) < 0.6
            bits[0, 0] = True
            masks.append(MaskRle.from_bitmap(bits, int(rng.integers(0, 6)), int(rng.integers(0, 6))).tight())
            cluster.append(k)
            weight.append(float(rng.choice([1.0, 0.5, rng.uniform(0.1, 1.0)])))
    cl, wt = np.array(cluster), np.array(weight)
    ltrb, counts, member_iou = vote_masks(masks, cl, wt, 40, 0.5)
    for k in range(40):
        sel = np.flatnonzero(cl == k)
        want = fuse_masks([masks[i] for i in sel], wt[sel], "wbf", 0.5)
        got = counts[k]
        if want is None:
            assert got is None
            np.testing.assert_array_equal(member_iou[sel], 0.0)
        else:
            assert got is not None and MaskRle(got, tuple(ltrb[k])) == want  # type: ignore[arg-type]
            # each member's IoU with the voted mask, against the dense kernel
            ref = mask_iou([masks[i] for i in sel], [want])[:, 0]
            np.testing.assert_allclose(member_iou[sel], ref)


@pytest.mark.parametrize("seed", range(3))
def test_columnar_keypoint_fusion_equals_the_per_skeleton_rule(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_clusters, n_annot, n_kp = 60, 3, 3
    xy = rng.integers(0, 5, (n_clusters, n_annot, n_kp, 2)).astype(float)
    visible = rng.random((n_clusters, n_annot, n_kp)) < 0.6
    occluded = rng.random((n_clusters, n_annot, n_kp)) < 0.3
    weight = rng.choice([1.0, 0.5, 0.25], (n_clusters, n_annot))
    has = np.ones_like(visible)
    fused_xy, outside, occ = fuse_keypoints(xy, has, visible, occluded, weight)
    for k in range(n_clusters):
        members = [skeleton(0, [tuple(p) for p in xy[k, r]], [not v for v in visible[k, r]]) for r in range(n_annot)]
        members = [
            dataclasses.replace(
                m,
                elements=tuple(
                    dataclasses.replace(e, occluded=bool(occluded[k, r, i])) for i, e in enumerate(m.elements)
                ),
            )
            for r, m in enumerate(members)
        ]
        want = fuse_skeleton(members, weight[k])
        assert [tuple(e.points[0]) for e in want] == [tuple(p) for p in fused_xy[k]]
        assert [e.outside for e in want] == outside[k].tolist()
        assert [e.occluded for e in want] == occ[k].tolist()

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools import mask as coco_mask

from cvat_ext.annotations.model import MaskRle
from cvat_ext.geometry import mask_iou
from cvat_ext.geometry.masks import rle_to_runs

W, H = 23, 17


def full_bitmap(rle: MaskRle, w: int = W, h: int = H) -> np.ndarray:
    """Dense (h, w) bool image of an RLE crop, cut to the frame."""
    out = np.zeros((h + 64, w + 64), dtype=bool)  # margin for crops that stick out (offset 32)
    left, top, right, bottom = rle.ltrb
    out[top + 32 : bottom + 33, left + 32 : right + 33] = rle.to_bitmap()
    return out[32 : 32 + h, 32 : 32 + w]


def coco_iou(a: list[MaskRle], b: list[MaskRle]) -> np.ndarray:
    enc_a = [coco_mask.encode(np.asfortranarray(full_bitmap(r).astype(np.uint8))) for r in a]
    enc_b = [coco_mask.encode(np.asfortranarray(full_bitmap(r).astype(np.uint8))) for r in b]
    if not a or not b:
        return np.zeros((len(a), len(b)))
    return np.asarray(coco_mask.iou(enc_a, enc_b, [0] * len(b)), dtype=np.float64).reshape(len(a), len(b))


@st.composite
def rles(draw: st.DrawFn) -> MaskRle:
    left = draw(st.integers(-4, W))
    top = draw(st.integers(-4, H))
    w = draw(st.integers(1, 12))
    h = draw(st.integers(1, 10))
    density = draw(st.sampled_from([0.0, 0.3, 0.7, 1.0]))
    seed = draw(st.integers(0, 2**31 - 1))
    bits = np.random.default_rng(seed).uniform(size=(h, w)) < density
    return MaskRle.from_bitmap(bits, left, top)


@settings(max_examples=200, deadline=None)
@given(st.lists(rles(), max_size=5), st.lists(rles(), max_size=5))
def test_mask_iou_matches_pycocotools(a: list[MaskRle], b: list[MaskRle]) -> None:
    got = mask_iou(a, b, image_wh=(W, H))
    assert got.shape == (len(a), len(b))
    np.testing.assert_allclose(got, coco_iou(a, b), atol=1e-9, rtol=0)
    np.testing.assert_array_equal(got, mask_iou(b, a, image_wh=(W, H)).T)


@settings(max_examples=100, deadline=None)
@given(st.lists(rles(), min_size=1, max_size=4))
def test_runs_roundtrip_area_and_box(a: list[MaskRle]) -> None:
    runs = rle_to_runs(a)
    for i, r in enumerate(a):
        bits = r.to_bitmap()
        assert runs.area[i] == bits.sum() == r.area
        dense = np.zeros((r.height, r.width), dtype=bool)
        sel = runs.owner == i
        for y, x0, x1 in zip(runs.row[sel], runs.start[sel], runs.end[sel]):
            dense[y - r.ltrb[1], x0 - r.ltrb[0] : x1 - r.ltrb[0]] = True
        np.testing.assert_array_equal(dense, bits)


def test_unclipped_and_identity() -> None:
    bits = np.zeros((5, 6), dtype=bool)
    bits[1:4, 2:5] = True
    m = MaskRle.from_bitmap(bits, -3, -2)  # partly out of frame
    assert mask_iou([m], [m])[0, 0] == 1.0
    empty = MaskRle(np.array([30]), (0, 0, 5, 4))
    got = mask_iou([m, empty], [m, empty])
    np.testing.assert_array_equal(got, [[1.0, 0.0], [0.0, 0.0]])
    assert mask_iou([], [m]).shape == (0, 1)


def test_disjoint_and_translation() -> None:
    bits = np.random.default_rng(1).uniform(size=(30, 40)) < 0.5
    a = MaskRle.from_bitmap(bits, 0, 0)
    b = MaskRle.from_bitmap(bits[::-1], 5, 3)
    far = MaskRle.from_bitmap(bits, 100, 100)
    base = mask_iou([a], [b])[0, 0]
    moved = mask_iou([MaskRle.from_bitmap(bits, 1000, 700)], [MaskRle.from_bitmap(bits[::-1], 1005, 703)])[0, 0]
    assert base == pytest.approx(moved, abs=0)
    assert mask_iou([a], [far])[0, 0] == 0.0


def test_runs_iou_sparse_matches_dense_per_frame() -> None:
    from cvat_ext.geometry import runs_iou, runs_iou_sparse

    rng = np.random.default_rng(3)
    frames = 6

    def frame_masks() -> list[MaskRle]:
        out = []
        for _ in range(int(rng.integers(0, 5))):
            bits = rng.uniform(size=(int(rng.integers(1, 9)), int(rng.integers(1, 9)))) < 0.6
            out.append(MaskRle.from_bitmap(bits, int(rng.integers(-3, 12)), int(rng.integers(-3, 12))))
        return out

    per_a = [frame_masks() for _ in range(frames)]
    per_b = [frame_masks() for _ in range(frames)]
    flat_a = [m for ms in per_a for m in ms]
    flat_b = [m for ms in per_b for m in ms]
    fa = np.repeat(np.arange(frames), [len(ms) for ms in per_a])
    fb = np.repeat(np.arange(frames), [len(ms) for ms in per_b])
    ia, ib, iou = runs_iou_sparse(rle_to_runs(flat_a), rle_to_runs(flat_b), fa, fb)
    assert np.all(fa[ia] == fb[ib]) and np.all(iou > 0)
    got = np.zeros((len(flat_a), len(flat_b)))
    got[ia, ib] = iou
    off_a = np.concatenate(([0], np.cumsum([len(ms) for ms in per_a])))
    off_b = np.concatenate(([0], np.cumsum([len(ms) for ms in per_b])))
    for f in range(frames):
        dense = runs_iou(rle_to_runs(per_a[f]), rle_to_runs(per_b[f]))
        np.testing.assert_array_equal(got[off_a[f] : off_a[f + 1], off_b[f] : off_b[f + 1]], dense)
        got[off_a[f] : off_a[f + 1], off_b[f] : off_b[f + 1]] = 0
    assert not got.any()  # nothing across frames
    ia0, _, _ = runs_iou_sparse(rle_to_runs([]), rle_to_runs(flat_b), [], fb)
    assert ia0.size == 0

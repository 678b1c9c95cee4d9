"""Superpixel maps and the click-to-fill rule: hand-built maps with known answers, real SLIC on real photos."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cvat_ext.errors import ConfigError, FunctionInputError
from cvat_ext.models.click_simulation import Click, iou, next_click, run_clicks
from cvat_ext.models.superpixels import SCALES, SuperpixelMap, SuperpixelScale, segment_frame
from tests.models.hand_masks import load_hand_masks

NO_POINTS = np.zeros((0, 2))


def grid_map(colours: list[list[float]]) -> SuperpixelMap:
    """A 3x3 grid of 10x10 px superpixels (ids row-major 0..8) with the given L values."""
    labels = np.kron(np.arange(9).reshape(3, 3), np.ones((10, 10), dtype=np.int64))
    mean_lab = np.zeros((9, 3), dtype=np.float32)
    mean_lab[:, 0] = np.asarray(colours, dtype=np.float32).ravel()
    edges = [(i, i + 1) for i in range(9) if i % 3 != 2] + [(i, i + 3) for i in range(6)]
    return SuperpixelMap.build(labels, mean_lab, np.array(edges))


def full(crop_spx: SuperpixelMap, crop: object) -> np.ndarray:
    out = np.zeros((crop_spx.height, crop_spx.width), dtype=bool)
    if crop is not None:
        h, w = crop.bitmap.shape  # type: ignore[attr-defined]
        out[crop.top : crop.top + h, crop.left : crop.left + w] = crop.bitmap  # type: ignore[attr-defined]
    return out


def cells(spx: SuperpixelMap, mask: np.ndarray) -> set[int]:
    return {int(i) for i in np.unique(spx.labels[mask])}


# L values: a dark object (0, 1, 3, 4 around 10) on a bright background (around 80), one mid cell (8)
COLOURS = [[10, 12, 80], [11, 13, 82], [80, 81, 40]]


@pytest.mark.parametrize(
    ("pos", "neg", "box", "edge_lab", "expected"),
    [
        ([[5, 5]], [], None, 0.0, {0}),  # no growth: the one superpixel
        ([[5, 5]], [], None, 5.0, {0, 1, 3, 4}),  # grows over similar neighbours only
        ([[5, 5], [25, 5]], [], None, 0.0, {0, 2}),  # clicks add regions
        ([[5, 5]], [[15, 5]], None, 5.0, {0, 3, 4}),  # a negative click removes and blocks
        ([[5, 5]], [[5, 5]], None, 5.0, set()),  # negative on the seed: nothing
        ([[25, 25]], [], None, 5.0, {8}),  # 8 differs from every neighbour by > 5
        ([[5, 5]], [], [0, 0, 20, 10], 5.0, {0, 1}),  # the box stops growth at cells outside it
        ([], [], [0, 0, 19, 19], 0.0, {0, 1, 3, 4}),  # a box alone: cells mostly inside
        ([], [], [0, 0, 14, 14], 0.0, {0}),  # cells 1 and 3 are 40 of 100 px inside
        ([30, 30], [], None, 0.0, {8}),  # the far edge (x == W) is the last pixel
    ],
)
def test_fill_rule(
    pos: list[list[float]], neg: list[list[float]], box: list[float] | None, edge_lab: float, expected: set[int]
) -> None:
    spx = grid_map(COLOURS)
    pos_xy = np.asarray(pos, dtype=float).reshape(-1, 2)
    neg_xy = np.asarray(neg, dtype=float).reshape(-1, 2)
    box_xyxy = None if box is None else np.asarray(box, dtype=float)
    crop = spx.fill(pos_xy, neg_xy, box_xyxy, edge_lab=edge_lab, seed_lab=100.0)
    mask = full(spx, crop)
    got = cells(spx, mask)
    assert got == expected
    if box is not None and crop is not None:
        left, t, r, b = crop.ltrb
        assert left >= box[0] and t >= box[1] and r < box[2] + 1 and b < box[3] + 1


def test_seed_threshold_stops_drift() -> None:
    # a chain of small steps: 10 -> 14 -> 18 -> 22; each step < 5, but 22 is 12 from the seed
    spx = grid_map([[10, 14, 18], [90, 90, 22], [90, 90, 90]])
    drift = full(spx, spx.fill(np.array([[5.0, 5.0]]), NO_POINTS, edge_lab=5.0, seed_lab=100.0))
    held = full(spx, spx.fill(np.array([[5.0, 5.0]]), NO_POINTS, edge_lab=5.0, seed_lab=9.0))
    assert cells(spx, drift) == {0, 1, 2, 5}
    assert cells(spx, held) == {0, 1, 2}


@pytest.mark.parametrize(
    ("pos", "neg", "box", "field"),
    [
        ([[31, 5]], [], None, "pos_points.0"),
        ([[5, 5], [5, -1]], [], None, "pos_points.1"),
        ([[5, 5]], [[40, 40]], None, "neg_points.0"),
        ([[5, 5]], [], [40, 40, 50, 50], "obj_bbox"),
    ],
)
def test_points_outside_the_frame_name_the_point(
    pos: list[list[float]], neg: list[list[float]], box: list[float] | None, field: str
) -> None:
    spx = grid_map(COLOURS)
    with pytest.raises(FunctionInputError) as err:
        spx.fill(
            np.asarray(pos, float).reshape(-1, 2),
            np.asarray(neg, float).reshape(-1, 2),
            None if box is None else np.asarray(box, float),
        )
    assert err.value.field == field and "30x30" in str(err.value)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_segment_frame_is_a_dense_partition_and_round_trips(seed: int) -> None:
    rng = np.random.default_rng(seed)
    h, w = rng.integers(40, 300, size=2)
    rgb = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
    rgb[: h // 2] //= 4  # two regions of different brightness
    scale = dataclasses.replace(SCALES["fine"], work_max_side=int(rng.integers(32, 200)))
    spx = segment_frame(rgb, scale)
    assert spx.labels.shape == (h, w)
    assert set(np.unique(spx.labels).tolist()) == set(range(len(spx)))
    assert int(spx.area.sum()) == h * w
    # boxes are tight
    for i in rng.choice(len(spx), size=min(len(spx), 10), replace=False):
        rows, cols = np.nonzero(spx.labels == i)
        assert spx.ltrb[i].tolist() == [cols.min(), rows.min(), cols.max(), rows.max()]
    # edges connect touching superpixels only, a < b
    a, b = spx.edges[:, 0], spx.edges[:, 1]
    assert (a < b).all()
    back = SuperpixelMap.from_bytes(spx.to_bytes())
    np.testing.assert_array_equal(back.labels, spx.labels)
    np.testing.assert_array_equal(back.edges, spx.edges)
    np.testing.assert_array_equal(back.mean_lab, spx.mean_lab)
    np.testing.assert_array_equal(back.ltrb, spx.ltrb)


@pytest.mark.parametrize(
    "raw", [b"", b"SPX1" + bytes(16), b"SPX2" + bytes(16) + b"not zlib", None], ids=["empty", "magic", "zlib", "short"]
)
def test_foreign_bytes_are_refused(raw: bytes | None) -> None:
    if raw is None:  # a valid header whose payload is cut off
        good = grid_map(COLOURS).to_bytes()
        import zlib

        raw = good[:20] + zlib.compress(zlib.decompress(good[20:])[:-8])
    with pytest.raises(ValueError, match="superpixels"):
        SuperpixelMap.from_bytes(raw)


def test_scales_validate_their_parameters() -> None:
    with pytest.raises(ConfigError, match="'x'"):
        SuperpixelScale("x", segments_per_mp=0)
    with pytest.raises(ConfigError, match="compactness"):
        SuperpixelScale("x", segments_per_mp=10, compactness=0)
    assert SCALES["fine"].n_segments(1080, 1920) > SCALES["coarse"].n_segments(1080, 1920)
    assert SCALES["fine"].key != SCALES["coarse"].key


def test_click_simulation_protocol() -> None:
    gt = np.zeros((20, 20), dtype=bool)
    gt[5:15, 5:15] = True
    first = next_click(gt, None)
    assert first is not None and first.positive and 9 <= first.x <= 11 and 9 <= first.y <= 11
    spill = gt.copy()
    spill[:, 15:] = True  # filled too much on the right
    second = next_click(gt, spill)
    assert second is not None and not second.positive and second.x > 15
    assert next_click(gt, gt) is None
    assert iou(gt, spill) == pytest.approx(100 / 200)
    assert run_clicks(gt, lambda clicks: gt, 3) == [1.0, 1.0, 1.0]
    assert isinstance(first, Click)


def _fill_iou(scale_name: str, n_clicks: int) -> list[list[float]]:
    scale = SCALES[scale_name]
    out = []
    for obj in load_hand_masks():
        spx = segment_frame(obj.rgb, scale)

        def predict(clicks: list[Click], spx: SuperpixelMap = spx) -> np.ndarray:
            pos = np.array([[c.x, c.y] for c in clicks if c.positive], dtype=float).reshape(-1, 2)
            neg = np.array([[c.x, c.y] for c in clicks if not c.positive], dtype=float).reshape(-1, 2)
            return full(spx, spx.fill(pos, neg, edge_lab=scale.edge_lab, seed_lab=scale.seed_lab))

        out.append(run_clicks(obj.mask, predict, n_clicks))
    return out


def test_coarse_fills_hand_made_masks_on_real_photos() -> None:
    """Floors well under the measured figures (bench/functions_superpixels.py): a regression in
    SLIC parameters, growth or click handling drops below them."""
    ious = np.array(_fill_iou("coarse", 3))
    assert ious.shape == (4, 3)
    assert ious[:, 0].mean() > 0.45
    assert ious[:, 2].mean() > 0.55
    assert (ious[:, 2] > 0.4).all()

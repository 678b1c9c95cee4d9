"""Colour statistics of candidates' pixels against a naive per-candidate reference, on real photos
and random frames; hue ranges; image-target LFs kept apart from object LFs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from cvat_ext.errors import ConfigError
from cvat_ext.labeling_functions import Candidates, labeling_function, vote
from cvat_ext.labeling_functions.apply import apply_lfs, by_target, load_lfs
from cvat_ext.labeling_functions.pixels import PIXEL_COLUMNS, hue_bins_between, partition_stats, pixel_stats

PACKS = Path(__file__).resolve().parents[2] / "cvat_ext" / "labeling_functions" / "packs"


def naive_stats(rgb: npt.NDArray[np.uint8], mask: npt.NDArray[np.bool_]) -> dict[str, float]:
    """The statistics of the pixels under a full-frame ``mask``, from the textbook HSV formulas in
    float64 (no summed-area tables, no shrinking)."""
    import cv2

    px = rgb[mask].astype(np.float64)
    lab = cv2.cvtColor((px / 255.0).astype(np.float32)[None], cv2.COLOR_RGB2Lab)[0].astype(np.float64)
    r, g, b = (px / 255.0).T
    val, low = px.max(axis=1) / 255.0, px.min(axis=1) / 255.0
    chroma = val - low
    sat = np.where(val > 0, chroma / np.where(val > 0, val, 1), 0.0)
    safe = np.where(chroma > 0, chroma, 1)
    hue = (
        np.select(
            [chroma == 0, val == r, val == g],
            [0.0, ((g - b) / safe) % 6, (b - r) / safe + 2],
            (r - g) / safe + 4,
        )
        * 60.0
    )
    out = {"red": px[:, 0].mean(), "green": px[:, 1].mean(), "blue": px[:, 2].mean()}
    for k, name in enumerate(("lab_l", "lab_a", "lab_b")):
        out[name], out[f"{name}_std"] = lab[:, k].mean(), lab[:, k].std()
    out["hsv_s"], out["hsv_s_std"], out["hsv_v"], out["hsv_v_std"] = sat.mean(), sat.std(), val.mean(), val.std()
    dark = val < 0.2
    pale = ~dark & (sat < 0.25)
    out["frac_dark"], out["frac_white"] = dark.mean(), (pale & (val >= 0.8)).mean()
    out["frac_grey"] = (pale & (val < 0.8)).mean()
    colourful = ~dark & ~pale
    for k in range(12):
        lo = (30 * k - 15) % 360
        in_bin = ((hue - lo) % 360) < 30
        out[f"hue_{k:02d}"] = (colourful & in_bin).mean()
    return out


def random_frame(seed: int, h: int, w: int) -> npt.NDArray[np.uint8]:
    rng = np.random.default_rng(seed)
    # blocks of random colour with noise: every colour class occurs
    coarse = rng.integers(0, 256, size=(h // 16 + 1, w // 16 + 1, 3))
    frame = np.repeat(np.repeat(coarse, 16, axis=0), 16, axis=1)[:h, :w]
    return np.clip(frame + rng.integers(-10, 11, size=frame.shape), 0, 255).astype(np.uint8)


def photo(name: str) -> npt.NDArray[np.uint8]:
    from skimage import data

    rgb = np.asarray(getattr(data, name)())
    return np.ascontiguousarray(np.stack([rgb] * 3, axis=-1) if rgb.ndim == 2 else rgb[..., :3], dtype=np.uint8)


@pytest.mark.parametrize(("source", "seed"), [("astronaut", 0), ("coffee", 1), ("random", 2), ("random", 3)])
def test_box_and_mask_stats_match_the_naive_reference(source: str, seed: int) -> None:
    import cv2

    rgb = photo(source) if source != "random" else random_frame(seed, 240, 320)
    h, w = rgb.shape[:2]
    rng = np.random.default_rng(seed)
    xy0 = rng.uniform(0, [w - 20, h - 20], size=(12, 2))
    xyxy = np.concatenate([xy0, xy0 + rng.uniform(3, 120, size=(12, 2))], axis=1)
    xyxy[-1] = [0, 0, w, h]  # whole image
    xyxy[-2] = [w - 5.5, h - 7.2, w + 40, h + 30]  # reaching past the frame: clipped
    # a polygon (ellipse) on candidate 0, as cvat_task rasterises it over the box rounded outwards
    l0, t0, r0, b0 = (
        int(np.floor(xyxy[0, 0])),
        int(np.floor(xyxy[0, 1])),
        int(np.ceil(xyxy[0, 2])),
        int(np.ceil(xyxy[0, 3])),
    )
    r0, b0 = min(r0, w), min(b0, h)
    ellipse = np.zeros((b0 - t0, r0 - l0), dtype=np.uint8)
    cv2.ellipse(ellipse, ((r0 - l0) // 2, (b0 - t0) // 2), ((r0 - l0) // 2, (b0 - t0) // 2), 0, 0, 360, 1, -1)
    masks: list[npt.NDArray[np.bool_] | None] = [ellipse.astype(bool)] + [None] * 11
    got = pixel_stats(rgb, xyxy, masks, max_side=4096)
    for i in range(12):
        full = np.zeros((h, w), dtype=bool)
        x0, y0 = int(np.floor(xyxy[i, 0])), int(np.floor(xyxy[i, 1]))
        x1, y1 = min(int(np.ceil(xyxy[i, 2])), w), min(int(np.ceil(xyxy[i, 3])), h)
        full[y0:y1, x0:x1] = True if masks[i] is None else masks[i]
        want = np.array([naive_stats(rgb, full)[c] for c in PIXEL_COLUMNS])
        hue = np.array([c.startswith("hue_") for c in PIXEL_COLUMNS])
        np.testing.assert_allclose(got[i, ~hue], want[~hue], atol=2e-3, rtol=1e-4, err_msg=f"candidate {i}")
        # a pixel whose hue is exactly on a bin edge (e.g. RGB 200, 50, 0 = 15 degrees) may fall on
        # either side in float32: the photos have a few thousandths of those
        np.testing.assert_allclose(got[i, hue], want[hue], atol=6e-3, err_msg=f"candidate {i}")
    # shares of dark, white, grey and the hue bins add up to 1
    np.testing.assert_allclose(got[:, PIXEL_COLUMNS.index("frac_dark") :].sum(axis=1), 1.0)


def test_shrunk_frame_keeps_statistics_close_and_empty_boxes_are_nan() -> None:
    rgb = np.ascontiguousarray(np.tile(photo("chelsea"), (4, 4, 1)))  # 1804x1200
    xyxy = np.array([[0, 0, 1804, 1200], [100, 100, 700, 500], [50, 50, 50, 90], [5000, 10, 5100, 20]], float)
    exact, shrunk = pixel_stats(rgb, xyxy, max_side=4096), pixel_stats(rgb, xyxy, max_side=640)
    means = [PIXEL_COLUMNS.index(c) for c in ("red", "lab_l", "hsv_s", "hue_01")]
    np.testing.assert_allclose(shrunk[:2, means], exact[:2, means], rtol=0.03, atol=0.01)
    assert np.isnan(exact[2:]).all() and np.isnan(shrunk[2:]).all()


def test_partition_stats_equal_box_stats_of_each_region() -> None:
    rgb = random_frame(5, 120, 160)
    region = np.zeros((120, 160), dtype=np.int64)
    region[:, 80:] = 1
    region[60:, :80] = 2
    got = partition_stats(rgb, region, 4)
    boxes = pixel_stats(rgb, [[0, 0, 80, 60], [80, 0, 160, 120], [0, 60, 80, 120]], max_side=4096)
    np.testing.assert_allclose(got[:3], boxes, atol=1e-9)
    assert np.isnan(got[3]).all()  # a region without pixels


@pytest.mark.parametrize(
    ("lo", "hi", "bins"),
    [(0, 360, list(range(12))), (345, 15, [0]), (330, 75, [0, 1, 2, 11]), (190, 260, [7, 8]), (10, 20, [])],
)
def test_hue_ranges_count_bins_by_centre(lo: float, hi: float, bins: list[int]) -> None:
    assert hue_bins_between(lo, hi).tolist() == bins


def test_colour_features_and_hue_fraction_on_a_real_photo() -> None:
    rgb = photo("astronaut")
    xyxy = np.array([[50, 330, 130, 470], [0, 150, 60, 300], [0, 0, 512, 512]], float)  # suit, flag, all
    c = Candidates([0, 0, 0], xyxy, [512, 512], pixels=pixel_stats(rgb, xyxy))
    assert c.feature("frac_red")[0] > 0.6 and c.hue_fraction(345, 45)[0] > 0.95  # the red-orange suit
    assert c.feature("frac_grey")[1] > 0.3 and c.feature("frac_red")[1] > 0.4  # red and pale stripes
    np.testing.assert_allclose(
        c.feature("red"), [rgb[330:470, 50:130, 0].mean(), rgb[150:300, :60, 0].mean(), rgb[..., 0].mean()]
    )
    assert np.isnan(Candidates([0], xyxy[:1], [512, 512]).feature("lab_l")).all()  # pixels not read


def test_image_lfs_are_kept_apart_from_object_lfs() -> None:
    lfs = load_lfs([PACKS / "vehicles.yaml", PACKS / "scene_tags.yaml", PACKS / "street_python.py"])
    groups = by_target(lfs)
    assert {lf.target for lf in groups["image"]} == {"image"} and len(groups["image"]) == 6
    assert groups["object"][0].labels == ("vehicle", "person", "sign")
    with pytest.raises(ConfigError, match="apply each target's LFs separately"):
        apply_lfs(lfs, Candidates([0], [[0, 0, 1, 1]], [1, 1]))

    @labeling_function(labels=["day", "night"], target="image")
    def bright_is_day(c: Candidates) -> npt.NDArray[np.int64]:
        return vote(c, c.feature("lab_l") > 50, "day")

    frames = Candidates.whole_images(
        [0, 1],
        [512, 512],
        pixels=np.stack([pixel_stats(photo(n), [[0, 0, 512, 512]])[0] for n in ("camera", "astronaut")]),
    )
    assert apply_lfs([bright_is_day], frames).matrix[:, 0].tolist() == [0, -1]
    with pytest.raises(ConfigError, match="target must be one of"):
        labeling_function(labels=["a"], target="frame")  # type: ignore[arg-type]

"""Region merging and redaction: tables with known answers, random images for the invariants."""

from __future__ import annotations

import numpy as np
import pytest

from cvat_ext.errors import ConfigError
from cvat_ext.privacy.redact import merge_regions, redact


@pytest.mark.parametrize(
    ("boxes", "margin", "expected"),
    [
        ([], 0.25, []),
        ([[10, 10, 20, 20]], 0.0, [[10, 10, 20, 20]]),
        ([[10, 10, 20, 20]], 0.5, [[5, 5, 25, 25]]),  # grown by half the size on each side
        ([[0, 0, 10, 10]], 0.5, [[0, 0, 15, 15]]),  # clipped to the image
        ([[90, 90, 100, 100]], 0.5, [[85, 85, 100, 100]]),
        ([[10, 10, 20, 20], [18, 18, 30, 30]], 0.0, [[10, 10, 30, 30]]),  # overlap -> one region
        ([[10, 10, 20, 20], [40, 40, 50, 50]], 0.0, [[10, 10, 20, 20], [40, 40, 50, 50]]),
        ([[10, 10, 20, 20], [25, 10, 35, 20]], 0.5, [[5, 5, 40, 25]]),  # touch only once grown
        # a chain: a-b overlap, the merged box then overlaps c
        ([[0, 0, 10, 10], [8, 0, 18, 10], [17, 20, 30, 30]], 0.0, [[0, 0, 18, 10], [17, 20, 30, 30]]),
        ([[0, 0, 10, 10], [8, 0, 18, 30], [17, 20, 30, 30]], 0.0, [[0, 0, 30, 30]]),
        ([[120, 120, 130, 130]], 0.0, []),  # outside the image
    ],
)
def test_merge_regions(boxes: list[list[float]], margin: float, expected: list[list[int]]) -> None:
    got = merge_regions(np.asarray(boxes, dtype=float).reshape(-1, 4), (100, 100), margin=margin)
    assert sorted(got.tolist()) == sorted(expected)


@pytest.mark.parametrize("seed", range(5))
def test_merged_regions_cover_every_grown_box_and_do_not_overlap(seed: int) -> None:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 180, size=(12, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 40, size=(12, 2))], axis=1)
    regions = merge_regions(boxes, (200, 220), margin=0.2)
    covered = np.zeros((200, 220), dtype=bool)
    for left, top, right, bottom in regions.tolist():
        assert not covered[top:bottom, left:right].any()  # disjoint
        covered[top:bottom, left:right] = True
    for x0, y0, x1, y1 in boxes.astype(int).tolist():
        assert covered[y0 : min(y1, 200), x0 : min(x1, 220)].all()


@pytest.mark.parametrize("method", ["gaussian", "pixelate"])
def test_redact_changes_only_the_regions_and_removes_detail(method: str) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(120, 160, 3), dtype=np.uint8)
    regions = np.array([[20, 30, 80, 90], [100, 10, 150, 40]])
    original = rgb.copy()
    out = redact(rgb, regions, method=method)  # type: ignore[arg-type]
    np.testing.assert_array_equal(rgb, original)  # the input is untouched
    inside = np.zeros(rgb.shape[:2], dtype=bool)
    for left, top, right, bottom in regions.tolist():
        inside[top:bottom, left:right] = True
    np.testing.assert_array_equal(out[~inside], rgb[~inside])
    assert not np.array_equal(out[inside], rgb[inside])
    # detail (pixel-to-pixel variation) drops by an order of magnitude
    before = np.abs(np.diff(rgb[30:90, 20:80].astype(int), axis=1)).mean()
    after = np.abs(np.diff(out[30:90, 20:80].astype(int), axis=1)).mean()
    assert after < before / 5


def test_redact_refuses_bad_parameters() -> None:
    rgb = np.zeros((10, 10, 3), dtype=np.uint8)
    with pytest.raises(ConfigError, match="method"):
        redact(rgb, np.zeros((0, 4), dtype=np.int64), method="smear")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="strength"):
        redact(rgb, np.zeros((0, 4), dtype=np.int64), strength=0)
    with pytest.raises(ConfigError, match="margin"):
        merge_regions([[0, 0, 1, 1]], (10, 10), margin=-1)

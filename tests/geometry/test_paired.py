"""Paired kernels (object i of A against object i of B) equal the diagonal of the all-pairs ones."""

from __future__ import annotations

import numpy as np
import pytest

from cvat_ext.annotations.model import MaskRle
from cvat_ext.geometry import oks, oks_paired, rle_to_runs, runs_iou, runs_iou_paired, take_runs


def _random_masks(rng: np.random.Generator, n: int) -> list[MaskRle]:
    out = []
    for _ in range(n):
        h, w = rng.integers(1, 12, 2)
        bits = rng.random((h, w)) < rng.uniform(0.0, 1.0)
        out.append(MaskRle.from_bitmap(bits, int(rng.integers(0, 8)), int(rng.integers(0, 8))))
    return out


@pytest.mark.parametrize("seed", range(20))
def test_runs_iou_paired_is_the_diagonal(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 8))
    a, b = rle_to_runs(_random_masks(rng, n)), rle_to_runs(_random_masks(rng, n))
    np.testing.assert_allclose(runs_iou_paired(a, b), np.diag(runs_iou(a, b)) if n else np.zeros(0))


def test_runs_iou_paired_rejects_unequal_counts() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="equal segment counts"):
        runs_iou_paired(rle_to_runs(_random_masks(rng, 2)), rle_to_runs(_random_masks(rng, 3)))


@pytest.mark.parametrize("seed", range(10))
def test_oks_paired_is_the_diagonal(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    a, b = rng.uniform(0, 50, (n, k, 2)), rng.uniform(0, 50, (n, k, 2))
    va, vb = rng.random((n, k)) < 0.8, rng.random((n, k)) < 0.8
    sig = rng.uniform(0.02, 0.2, k)
    full = oks(a, va, b, vb, sigmas=sig, fallback_scale=900.0)
    np.testing.assert_allclose(oks_paired(a, va, b, vb, sigmas=sig, fallback_scale=900.0), np.diag(full))


def test_take_runs_repeats_and_reorders_segments() -> None:
    rng = np.random.default_rng(3)
    masks = _random_masks(rng, 4)
    idx = [2, 0, 2, 3]
    taken = take_runs(rle_to_runs(masks), idx)
    direct = rle_to_runs([masks[i] for i in idx])
    assert taken.count == 4
    np.testing.assert_array_equal(taken.area, direct.area)
    np.testing.assert_allclose(runs_iou(taken, direct), runs_iou(direct, direct))

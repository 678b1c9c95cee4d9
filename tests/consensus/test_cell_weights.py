"""The noise fit's cell weights are inverse standard errors: a corner cell's (the product of two
offsets averaged over the extent's four coordinates, so half a single product's) and a pair cell's
(the relative spread of a matched pair's x^2, read off the template), each against the spread of
the cell over repeated draws."""

from __future__ import annotations

import numpy as np
import pytest

from cvat_ext.consensus.matching import annotator_pairs
from cvat_ext.consensus.noise_model import (
    SIZE_CENTRES,
    CornerEvidence,
    PairEvidence,
    annotator_corner_cells,
    corner_iou,
    noisy_unit_boxes,
    pair_cells,
    size_bin,
    template,
)

SIZE_PX = 100.0
#: corner variances (px^2) of a precise, a moderate and a sloppy annotator
VARIANCE_PX2 = np.array([4.0, 36.0, 225.0])
OBJECTS = 60
REPEATS = 300


def _corner_targets(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per repeat, each annotator's corner cell (relative units) and its weight, on extents with
    every pair matched (no truncation: each pair's spread is the sum of its two variances)."""
    n = VARIANCE_PX2.size
    spread2 = np.zeros((SIZE_CENTRES.size, len(annotator_pairs(n))))
    for p, (r, s) in enumerate(annotator_pairs(n)):
        spread2[:, p] = (VARIANCE_PX2[r] + VARIANCE_PX2[s]) / SIZE_PX**2
    targets, weights = [], []
    for _ in range(REPEATS):
        truth = np.array([0.0, 0.0, SIZE_PX, SIZE_PX])
        xyxy = truth + rng.normal(size=(OBJECTS, n, 4)) * np.sqrt(VARIANCE_PX2)[None, :, None]
        ev = CornerEvidence(n)
        ev.add(xyxy, np.full((OBJECTS, len(annotator_pairs(n))), 0.9), np.full(OBJECTS, SIZE_PX))
        cells = annotator_corner_cells(ev.every, np.ones(ev.count.shape), spread2, n, fallback=True)
        assert all(c is not None and c.target.size == 1 for c in cells)
        targets.append([c.target[0] for c in cells if c is not None])
        weights.append([c.weight[0] for c in cells if c is not None])
    return np.asarray(targets), np.asarray(weights)


def test_corner_cell_weight_is_its_inverse_standard_error() -> None:
    targets, weights = _corner_targets(np.random.default_rng(3))
    observed_se = targets.std(axis=0)
    implied_se = 1.0 / weights.mean(axis=0)
    # each annotator's cell reads its own variance ...
    np.testing.assert_allclose(targets.mean(axis=0) * SIZE_PX**2, VARIANCE_PX2, rtol=0.15, atol=1.0)
    # ... to the standard error its weight claims (the precise one's: the others' spreads, not its own);
    # a weight of sqrt(count) / spread alone claims twice the error (one coordinate, not four)
    np.testing.assert_allclose(implied_se, observed_se, rtol=0.2)


@pytest.mark.parametrize("spread", [0.03, 0.06, 0.1])
def test_pair_cell_weight_is_its_inverse_standard_error(spread: float) -> None:
    """Two annotators at ``spread / sqrt(2)`` each: the pair's cell of x^2 is known to the template's
    dispersion over sqrt(count) (a single Gaussian coordinate's square would have sqrt(2))."""
    rng = np.random.default_rng(11)
    draws = 40_000
    one = spread / np.sqrt(2.0)
    a = noisy_unit_boxes(one, rng.normal(size=(draws, 4)))
    b = noisy_unit_boxes(one, rng.normal(size=(draws, 4)))
    sim = corner_iou(a, b)
    matched = sim >= 0.5
    x2 = (1.0 - sim[matched]) ** 2
    ev = PairEvidence(2)
    ev.add(np.where(matched, sim, np.nan)[:, None], np.full(draws, SIZE_PX))
    cells = pair_cells(ev, 0.5, template("rectangle"))
    b_idx = int(size_bin(np.array([SIZE_PX]))[0])
    (row,) = np.flatnonzero(ev.count[:, 0] > 0)
    assert row == b_idx
    # weight = sqrt(count) * elasticity / (spread2 * relative sd of x^2)
    implied_dispersion = np.sqrt(matched.sum()) * cells.elastic[0] / (cells.target[0] * cells.weight[0])
    np.testing.assert_allclose(implied_dispersion, x2.std() / x2.mean(), rtol=0.15)

"""Krippendorff's alpha against textbook values and hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cvat_ext.consensus.agreement import NO_VALUE, AlphaAccumulator, krippendorff_alpha_nominal

N = NO_VALUE

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", example C: 4 coders,
# 12 units, missing values; nominal alpha = 0.743
KRIPPENDORFF_C = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, N, N, N],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, N, 3],
        [N, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, N],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, N],
    ]
).T

# the same paper, example A: 2 coders, 10 units, binary; alpha = 0.095
KRIPPENDORFF_A = np.array([[0, 1, 0, 0, 0, 0, 0, 0, 1, 0], [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]]).T


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (KRIPPENDORFF_C, 0.743),
        (KRIPPENDORFF_A, 0.095),
        # by hand: units (1,1) (1,2) (2,2): o_11 = o_22 = 2, o_12 = o_21 = 1, n_1 = n_2 = 3, n = 6;
        # alpha = 1 - (n - 1) * 2 / (2 * 3 * 3) = 1 - 5 * 2 / 18 = 4/9
        (np.array([[1, 1], [1, 2], [2, 2]]), 4 / 9),
        # perfect agreement with two categories
        (np.array([[1, 1, 1], [2, 2, 2], [1, 1, N]]), 1.0),
        # systematic disagreement: o_12 = o_21 = 2, o_11 = 2, n_1 = 4, n_2 = 2, n = 6;
        # alpha = 1 - 4 / ((36 - 16 - 4) / 5) = -1/4
        (np.array([[1, 2], [2, 1], [1, 1]]), -0.25),
    ],
)
def test_alpha_nominal_textbook(values: np.ndarray, expected: float) -> None:
    assert krippendorff_alpha_nominal(values) == pytest.approx(expected, abs=5e-4)


@pytest.mark.parametrize(
    "values",
    [
        np.array([[1, 1], [1, 1]]),  # one category only: no expected disagreement
        np.array([[1, N], [N, 2]]),  # no unit has two values
        np.zeros((0, 3), dtype=np.int64),
    ],
)
def test_alpha_undefined_is_nan(values: np.ndarray) -> None:
    assert math.isnan(krippendorff_alpha_nominal(values))


def test_alpha_streams_chunk_by_chunk() -> None:
    acc = AlphaAccumulator()
    for part in np.array_split(KRIPPENDORFF_C, 4):
        acc.add(part)
    assert acc.alpha() == pytest.approx(krippendorff_alpha_nominal(KRIPPENDORFF_C), abs=1e-12)
    other = AlphaAccumulator()
    other.add(KRIPPENDORFF_C[:5])
    rest = AlphaAccumulator()
    rest.add(KRIPPENDORFF_C[5:])
    other.merge(rest)
    assert other.alpha() == pytest.approx(acc.alpha(), abs=1e-12)

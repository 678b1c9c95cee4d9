"""The NumPy NNLS against SciPy's on random problems, including rank-deficient and all-negative ones."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import nnls as scipy_nnls

from cvat_ext.consensus.nnls import nnls


@pytest.mark.parametrize("seed", range(40))
def test_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    m, n = int(rng.integers(2, 30)), int(rng.integers(1, 12))
    a = rng.normal(size=(m, n)) * rng.choice([1e-3, 1.0, 1e3], size=n)
    if seed % 5 == 0 and n > 1:
        a[:, -1] = a[:, 0]  # two equal columns
    b = rng.normal(size=m)
    x, res = nnls(a, b)
    x_ref, res_ref = scipy_nnls(a, b)
    assert (x >= 0).all()
    assert res == pytest.approx(res_ref, rel=1e-6, abs=1e-9)
    if seed % 5 and m > n:  # a unique solution: full column rank
        np.testing.assert_allclose(x, x_ref, rtol=1e-5, atol=1e-8 * np.abs(x_ref).max(initial=1.0))


def test_all_negative_target_gives_zero() -> None:
    a = np.eye(3)
    x, res = nnls(a, [-1.0, -2.0, -3.0])
    assert x.tolist() == [0.0, 0.0, 0.0]
    assert res == pytest.approx(np.sqrt(14))

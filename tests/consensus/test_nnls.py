"""The NumPy NNLS against SciPy's on random systems (feasible, infeasible, degenerate)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import nnls as scipy_nnls

from cvat_ext.consensus.nnls import nnls


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize(("m", "n"), [(3, 2), (12, 6), (40, 10), (5, 8)])
def test_nnls_matches_scipy(seed: int, m: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(m, n)) * rng.uniform(0.01, 10, n)
    y = a @ rng.normal(size=n) + rng.normal(scale=0.1, size=m)
    ours = nnls(a, y)
    ref, _ = scipy_nnls(a, y)
    assert np.all(ours >= 0)
    # the optimum's residual is unique even where x is not (underdetermined systems)
    assert np.linalg.norm(a @ ours - y) == pytest.approx(np.linalg.norm(a @ ref - y), rel=1e-6, abs=1e-9)


def test_nnls_edge_cases() -> None:
    assert np.array_equal(nnls(np.zeros((3, 2)), np.ones(3)), np.zeros(2))
    assert np.array_equal(nnls(np.eye(2), -np.ones(2)), np.zeros(2))
    np.testing.assert_allclose(nnls(np.eye(3), np.array([1.0, -2.0, 3.0])), [1.0, 0.0, 3.0])

"""The NumPy connected components and the directly loaded Hungarian solver equal SciPy's."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment as scipy_lsa
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components as scipy_components

from cvat_ext.consensus.assignment import linear_sum_assignment
from cvat_ext.consensus.components import connected_components


@pytest.mark.parametrize("n_nodes", [0, 1, 2, 7, 60, 900])
@pytest.mark.parametrize("density", [0.0, 0.3, 1.0, 3.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_components_numbered_as_scipy(n_nodes: int, density: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_edges = int(n_nodes * density)
    a, b = rng.integers(0, max(n_nodes, 1), (2, n_edges))
    if seed:  # chains: long paths need many propagation passes
        order = rng.permutation(n_nodes)
        a, b = np.concatenate([a, order[:-1]]), np.concatenate([b, order[1:]])
    got = connected_components(n_nodes, a, b)
    _, want = scipy_components(coo_matrix((np.ones(a.size), (a, b)), shape=(n_nodes, n_nodes)), directed=False)
    assert got.dtype == np.int64 and np.array_equal(got, want)


@pytest.mark.parametrize("shape", [(0, 0), (1, 1), (3, 5), (6, 4), (40, 40)])
def test_assignment_is_scipys(shape: tuple[int, int]) -> None:
    cost = np.random.default_rng(sum(shape)).random(shape)
    for maximize in (False, True):
        got, want = linear_sum_assignment(cost, maximize=maximize), scipy_lsa(cost, maximize=maximize)
        assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))


def test_scoring_imports_no_heavy_scipy_package() -> None:
    """The consensus CLI's modules load without scipy.optimize / sparse / special (0.3 s each)."""
    code = (
        "import sys, cvat_ext.consensus.table_source, cvat_ext.consensus.writers, cvat_ext.consensus.merged_writer;"
        "print(sorted(m for m in sys.modules if m.startswith(('scipy.optimize.', 'scipy.sparse', 'scipy.special'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['scipy.optimize._lsap']"

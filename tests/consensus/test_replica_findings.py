"""ReplicaFindings' row selection against NumPy's own definitions."""

from __future__ import annotations

import numpy as np
import pytest

from cvat_ext.consensus.replica_findings import _first_of_each


@pytest.mark.parametrize(("n", "columns", "values", "seed"), [(0, 8, 3, 0), (1, 8, 3, 1), (50, 2, 2, 2),
                                                              (2_000, 8, 3, 3), (5_000, 8, 1_000, 4), (300, 1, 5, 5)])
def test_first_of_each_is_numpys_unique_first_index(n: int, columns: int, values: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ident = rng.integers(-values, values, size=(n, columns)).astype(np.int64)
    ident[rng.random(n) < 0.1] = np.iinfo(np.int64).min  # the grid's "not finite" cells
    got = _first_of_each(ident)
    want = np.sort(np.unique(ident, axis=0, return_index=True)[1]) if n else np.zeros(0, np.int64)
    assert got.tolist() == want.tolist()
    if values <= 5 and n >= 50:
        assert len(got) < n  # there were duplicates to drop

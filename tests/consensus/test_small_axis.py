"""The column-by-column reductions equal NumPy's, bit for bit (signed zeros, NaN, infinities)."""

from __future__ import annotations

import numpy as np
import pytest

from cvat_ext.consensus.small_axis import column_counts, row_any, row_max, row_min, row_sum


def _table(shape: tuple[int, ...], dtype: str, seed: int) -> np.ndarray:
    """Random values of ``dtype``; floats: every magnitude, signed zeros, NaN and infinities."""
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype.startswith("int"):
        return rng.integers(-(2**30), 2**30, shape).astype(dtype)
    values = rng.standard_normal(shape) * 10.0 ** rng.integers(-8, 12, shape)
    special = rng.choice(np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 1.0]), shape)
    return np.where(rng.random(shape) < 0.3, special, values)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal shapes, dtypes and bits (NaN equal to NaN)."""
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # inf - inf, as NumPy
@pytest.mark.parametrize("dtype", ["bool", "int32", "int64", "float64"])
@pytest.mark.parametrize("shape", [(500, 1), (500, 2), (3000, 3), (500, 4), (500, 7), (500, 9), (0, 3), (500, 3, 4),
                                   (200, 0)])  # fmt: skip
def test_reductions_equal_numpy(shape: tuple[int, ...], dtype: str) -> None:
    a = _table(shape, dtype, seed=sum(shape))
    assert _same(row_sum(a), a.sum(axis=1))
    assert _same(row_any(a), a.any(axis=1))
    if shape[1]:  # NumPy has no min of nothing
        assert _same(row_min(a), a.min(axis=1))
        assert _same(row_max(a), a.max(axis=1))
    if dtype == "bool" and len(shape) == 2:
        assert _same(column_counts(a), a.sum(axis=0))


def test_rows_of_negative_zeros_sum_to_zero_as_numpy() -> None:
    a = np.full((4, 3), -0.0)
    assert _same(row_sum(a), a.sum(axis=1))
    assert not np.signbit(row_sum(a)).any()

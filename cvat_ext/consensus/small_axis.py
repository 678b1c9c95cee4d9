"""Reductions over the short axis of a cluster table, as NumPy's reductions give them.

A chunk's cluster tables are ``(K, R)``: thousands of clusters by a few annotators (or annotator
pairs, or a box's four numbers). NumPy 2.4 reduces such a short axis one row at a time: on a
``(6500, 3)`` table ``a.min(axis=1)`` takes about 270 us and ``a.sum(axis=0)`` of booleans about
130 us, where the same results out of R whole-column operations take 5 to 10 us. The engine makes
a few dozen such reductions per chunk, so they are made here, column by column, with results equal
to NumPy's, bit for bit:

* :func:`row_sum` adds the columns left to right from ``0`` (NumPy's order for rows shorter than
  8, where it starts its pairwise summation: longer rows go to NumPy); the ``0.0`` start is why a
  row of ``-0.0`` sums to ``0.0`` in both;
* :func:`row_min` / :func:`row_max` fold the columns with ``np.minimum`` / ``np.maximum`` in
  column order (NaN propagates, as in the reduction, which runs the same loop);
* :func:`row_any` ORs the columns; :func:`column_counts` counts the True values per column
  (integers: the order does not matter).

Empty tables (no columns) go to NumPy, which gives its own answer or error.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

__all__ = ["column_counts", "row_any", "row_max", "row_min", "row_sum"]

#: rows of this length or more are summed by NumPy (pairwise from 8 numbers on)
_PAIRWISE_FROM = 8


@functools.cache
def _sum_type(dtype: np.dtype) -> np.dtype:
    """The dtype of NumPy's sum of ``dtype`` values (booleans and small integers: int64)."""
    return np.zeros(1, dtype=dtype).sum().dtype


def row_sum(a: npt.NDArray[np.generic]) -> np.ndarray:
    """``a.sum(axis=1)`` of ``a (K, R, ...)`` (trailing axes kept; booleans count as integers,
    small integers add up as int64, as NumPy's sum does)."""
    r = a.shape[1]
    if r == 0 or r >= _PAIRWISE_FROM:
        return a.sum(axis=1)
    out = np.zeros(a.shape[:1] + a.shape[2:], dtype=_sum_type(a.dtype))
    for j in range(r):
        np.add(out, a[:, j], out=out)
    return out


def row_min(a: npt.NDArray[np.generic]) -> np.ndarray:
    """``a.min(axis=1)`` of ``a (K, R, ...)`` (trailing axes kept)."""
    return a.min(axis=1) if a.shape[1] == 0 else _fold(a, np.minimum)


def row_max(a: npt.NDArray[np.generic]) -> np.ndarray:
    """``a.max(axis=1)`` of ``a (K, R, ...)`` (trailing axes kept)."""
    return a.max(axis=1) if a.shape[1] == 0 else _fold(a, np.maximum)


def _fold(a: npt.NDArray[np.generic], ufunc: np.ufunc) -> np.ndarray:
    """``ufunc`` applied to the columns of ``a`` in order, the first column copied to start."""
    out = a[:, 0].copy()
    for j in range(1, a.shape[1]):
        ufunc(out, a[:, j], out=out)
    return out


def row_any(a: npt.NDArray[np.generic]) -> npt.NDArray[np.bool_]:
    """``a.any(axis=1)`` of ``a (K, R)``."""
    if a.shape[1] == 0:
        return np.asarray(a.any(axis=1))
    out = a[:, 0].astype(np.bool_)  # a copy
    for j in range(1, a.shape[1]):
        out |= a[:, j].astype(np.bool_, copy=False)
    return out


def column_counts(a: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """``a.sum(axis=0)`` of a boolean ``a (K, R)``: the True values of each column."""
    return np.array([np.count_nonzero(a[:, j]) for j in range(a.shape[1])], dtype=np.int64)

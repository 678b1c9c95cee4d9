"""Distinct rows of integer tables (presence patterns, label votes, finding keys), by one int64 key
per row where the values allow.

``np.unique(axis=0)`` sorts the rows as void records, several times slower than a 1-D unique of
integers. Here each column is a digit of its own radix (its value range), the first column the
most significant, so the distinct rows come in the lexicographic order ``np.unique(axis=0)`` gives;
a table whose ranges need more than 62 bits falls back to a stable lexsort of its columns, in the
same order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]

#: the most bits a row key may take (an int64, with room to spare)
KEY_BITS = 62


@dataclass(frozen=True, eq=False)
class DistinctRows:
    """``first (U,)`` the first row of each distinct row, in lexicographic order of the rows;
    ``inverse (K,)`` each row's distinct-row position; ``counts (U,)`` the rows of each."""

    first: IntArray
    inverse: IntArray
    counts: IntArray


def distinct_rows(rows: npt.ArrayLike) -> DistinctRows:
    """The :class:`DistinctRows` of the integer (or boolean) table ``rows (K, C)``."""
    table = np.asarray(rows)
    if table.ndim != 2:
        raise ValueError(f"distinct_rows: a (K, C) table expected, got shape {table.shape}")
    k, c = table.shape
    if k == 0 or c == 0:
        counts = np.array([k] if k else [], dtype=np.int64)
        return DistinctRows(np.zeros(min(k, 1), dtype=np.int64), np.zeros(k, dtype=np.int64), counts)
    ints = table.astype(np.int64)
    lo, hi = ints.min(axis=0), ints.max(axis=0)
    # each column's range, in floats (an int64 span of a float's bits overflows)
    if float(np.log2(hi.astype(np.float64) - lo.astype(np.float64) + 1.0).sum()) < KEY_BITS:
        radix = hi - lo + 1
        place = np.append(np.cumprod(radix[:0:-1])[::-1], 1).astype(np.int64)
        _, first, inverse, counts = np.unique((ints - lo) @ place, return_index=True, return_inverse=True,
                                              return_counts=True)
        return DistinctRows(first.astype(np.int64), inverse.reshape(-1).astype(np.int64), counts.astype(np.int64))
    order = np.lexsort(ints.T[::-1])  # stable: the first of equal rows comes first
    ordered = ints[order]
    starts = np.ones(k, dtype=bool)
    starts[1:] = np.any(ordered[1:] != ordered[:-1], axis=1)
    inverse = np.empty(k, dtype=np.int64)
    inverse[order] = np.cumsum(starts) - 1
    counts = np.diff(np.append(np.flatnonzero(starts), k))
    return DistinctRows(order[starts].astype(np.int64), inverse, counts.astype(np.int64))

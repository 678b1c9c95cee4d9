"""Distinct rows of integer tables (cvat_ext.rows): the same grouping and order as
``np.unique(axis=0)`` on both of its paths (one int64 key per row, and the lexsort fallback)."""

from __future__ import annotations

import numpy as np
import pytest

from cvat_ext.rows import KEY_BITS, distinct_rows


def _tables() -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    return [
        rng.random((400, 5)) > 0.5,  # presence patterns
        rng.integers(-1, 4, (300, 6)),  # label votes, -1 absent
        np.column_stack([rng.random((250, 3)) > 0.3, rng.integers(0, 2, 250), rng.integers(0, 16, 250)]),
        rng.random((200, 70)) > 0.9,  # 70 columns of bits: more than one int64 key holds (lexsort)
        rng.integers(-(2**40), 2**40, (50, 3)),  # wide values (a float's bits): lexsort
        np.array([[7, -3]]),
        rng.integers(-1, 4, (30, 40)),  # 40 columns of 5 values: more than 62 bits (lexsort)
        rng.integers(-5, 3, (60, 3)),
        rng.integers(0, 2**62, (60, 3)),
    ]


TABLE_IDS = ["bool", "votes", "mixed", "wide-bits", "wide-values", "one", "many-columns", "negative", "huge"]


@pytest.mark.parametrize("table", _tables(), ids=TABLE_IDS)
def test_distinct_rows_group_and_order_as_numpy_unique(table: np.ndarray) -> None:
    table = table.copy()
    table[np.random.default_rng(2).integers(0, len(table), len(table) // 2)] = table[0]  # repeated rows
    rows, first, inverse, counts = np.unique(table, axis=0, return_index=True, return_inverse=True, return_counts=True)
    got = distinct_rows(table)
    np.testing.assert_array_equal(table[got.first], rows)
    np.testing.assert_array_equal(got.first, first)
    np.testing.assert_array_equal(got.inverse, inverse.reshape(-1))
    np.testing.assert_array_equal(got.counts, counts)


def test_the_key_path_is_taken_where_the_ranges_fit() -> None:
    bits = np.random.default_rng(1).random((100, KEY_BITS - 1)) > 0.5
    # the first column the most significant: the order is lexicographic, as the fallback's
    got = distinct_rows(np.array([[1, 0], [0, 5], [0, 1], [1, 0]]))
    np.testing.assert_array_equal(got.first, [2, 1, 0])
    np.testing.assert_array_equal(got.inverse, [2, 1, 0, 2])
    assert distinct_rows(bits).counts.sum() == 100


def test_empty_and_malformed_tables() -> None:
    empty = distinct_rows(np.zeros((0, 3), dtype=np.int64))
    assert empty.first.size == 0 and empty.inverse.size == 0 and empty.counts.size == 0
    no_columns = distinct_rows(np.zeros((4, 0), dtype=np.int64))
    np.testing.assert_array_equal(no_columns.counts, [4])
    np.testing.assert_array_equal(no_columns.inverse, [0, 0, 0, 0])
    with pytest.raises(ValueError, match="table expected"):
        distinct_rows(np.zeros(5))

"""Column formatting equals Python's ``round``, ``json.dumps`` and ``csv.writer`` value by value."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest

from cvat_ext.consensus.report_text import (
    JsonArray,
    csv_field,
    csv_texts,
    float_row_texts,
    float_texts,
    gather_texts,
    int_row_texts,
    json_and_csv_texts,
    json_texts,
    round_like_python,
)


def _values(seed: int) -> np.ndarray:
    """Random magnitudes, values on and next to rounding ties, integers, signed zeros, huge and
    non-finite values."""
    rng = np.random.default_rng(seed)
    ties = (rng.integers(-10**6, 10**6, 2000) + 0.5) / 100.0  # x.xx5: binary values next to a tie
    exact_ties = rng.integers(-4000, 4000, 500) / 8.0  # 0.125, 0.375 ...: exact ties at 2 decimals
    near = np.concatenate([np.nextafter(ties, np.inf), np.nextafter(ties, -np.inf)])
    spread = rng.standard_normal(3000) * 10.0 ** rng.integers(-8, 12, 3000)
    special = [0.0, -0.0, 1e-300, -1e-300, 5e-324, 1e15, 1e16, 1e300, 1.7e308, -1.7e308, 2.675, 0.5, 1.5,
               2.5, -2.5, math.nan, math.inf, -math.inf]  # fmt: skip
    return np.concatenate([ties, exact_ties, near, spread, rng.random(2000), special])


@pytest.mark.parametrize("ndigits", [0, 1, 2, 4, 6])
@pytest.mark.parametrize("seed", [0, 1])
def test_round_like_python_equals_round(ndigits: int, seed: int) -> None:
    values = _values(seed)
    got = round_like_python(values, ndigits).tolist()
    want = [round(v, ndigits) for v in values.tolist()]
    assert list(map(repr, got)) == list(map(repr, want))  # repr: -0.0 and NaN compared too


def test_round_like_python_keeps_the_shape() -> None:
    values = np.arange(12, dtype=np.float64).reshape(3, 4) / 7
    assert round_like_python(values, 2).shape == (3, 4)
    assert round_like_python(np.zeros((0, 4)), 2).shape == (0, 4)


def test_json_and_csv_texts_equal_the_writers() -> None:
    values = round_like_python(_values(3), 6)
    assert json_texts(values) == [json.dumps(None if math.isnan(v) else v) for v in values.tolist()]
    buf = io.StringIO()
    csv.writer(buf).writerow(["" if math.isnan(v) else v for v in values.tolist()])
    assert ",".join(csv_texts(values)) + "\r\n" == buf.getvalue()


@pytest.mark.parametrize(
    "text",
    ["plain", "a,b", 'say "hi"', "line\nbreak", "cr\r", " lead", "tab\tx", "é ü 中", "", ";:", '"', "a;b,c"],
)
def test_csv_field_equals_csv_writer(text: str) -> None:
    buf = io.StringIO()
    csv.writer(buf).writerow(["x", text])
    assert "x," + csv_field(text) + "\r\n" == buf.getvalue()


@pytest.mark.parametrize("seed", [4, 5])
def test_float_texts_equal_repr(seed: int) -> None:
    """Every magnitude (the encoder's range and both sides of it), random bit patterns, rounded
    values, integers, signed zeros and non-finite values."""
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2**63, 200_000, dtype=np.int64).view(np.float64)
    scaled = rng.random(200_000) * 10.0 ** rng.integers(-8, 20, 200_000)
    values = np.concatenate([bits, -scaled, np.round(scaled, 2), np.floor(scaled), _values(seed)])
    values = np.concatenate([values, [1e-4, np.nextafter(1e-4, 0), 1e16, np.nextafter(1e16, 0)]])
    assert float_texts(values) == list(map(repr, values.tolist()))
    assert float_texts(values[:0]) == []
    assert float_texts(np.ones((2, 3))) == ["1.0"] * 6


@pytest.mark.parametrize(
    ("columns", "special"),
    [(4, False), (4, True), (1, False), (3, True)],
)
def test_float_row_texts_equal_join_of_repr(columns: int, special: bool) -> None:
    """Rows of rounded boxes (the encoder's path) and, with ``special``, rows holding values the
    encoder does not write as ``repr`` (huge, tiny, non-finite: the per-value path)."""
    rng = np.random.default_rng(columns)
    values = round_like_python(rng.standard_normal((5000, columns)) * 10.0 ** rng.integers(-3, 6, (5000, columns)), 2)
    values[rng.random(values.shape) < 0.05] = -0.0
    if special:
        flat = _values(columns)
        values = np.concatenate([values, flat[: flat.size // columns * columns].reshape(-1, columns)])
    rows = values.tolist()
    for sep in (", ", ";"):
        assert float_row_texts(values, [sep])[0] == [sep.join(map(repr, row)) for row in rows]
    json_rows, csv_rows = float_row_texts(values, (", ", ";"))
    assert [r.replace(", ", ";") for r in json_rows] == csv_rows
    assert float_row_texts(values[:0], (", ", ";")) == [[], []]


def test_json_and_csv_texts_format_once_for_both() -> None:
    values = round_like_python(_values(6), 6)
    assert json_and_csv_texts(values) == (json_texts(values), csv_texts(values))
    finite = values[np.isfinite(values)]
    assert json_and_csv_texts(finite) == (json_texts(finite), csv_texts(finite))


@pytest.mark.parametrize("seed", [7, 8, 9])
def test_int_row_texts_equal_join_of_str(seed: int) -> None:
    """Ragged rows of 1 to 60 integers: zeros, every digit count up to int64's, negative values,
    powers of ten and their neighbours (where the digit count changes)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 60, 500)
    magnitude = 10 ** rng.integers(0, 19, int(sizes.sum()))
    values = rng.integers(0, np.iinfo(np.int64).max, int(sizes.sum())) % magnitude
    values[rng.random(values.size) < 0.1] *= -1
    edges = np.array([0, 9, 10, 11, 99, 100, 999, 1000, -1, -9, -10, np.iinfo(np.int64).max, -np.iinfo(np.int64).max])
    values = np.concatenate([values, edges])
    sizes = np.append(sizes, [1] * edges.size)
    rows = np.split(values, np.cumsum(sizes)[:-1])
    assert int_row_texts(values, sizes) == [", ".join(map(str, r.tolist())) for r in rows]
    assert int_row_texts(values[:0], sizes[:0]) == []


def test_gather_texts_equals_indexing() -> None:
    texts = ["a", "bb", "", "d,e"]
    pos = np.array([3, 0, 0, 2, 1, 3], dtype=np.int64)
    assert gather_texts(texts, pos) == [texts[i] for i in pos.tolist()]
    assert gather_texts(texts, np.zeros(0, dtype=np.int64)) == []


@pytest.mark.parametrize(
    ("batches", "expected"),
    [
        ([], "[]"),
        ([[], []], "[]"),
        ([["1"]], "[\n  1\n ]"),
        ([["1", "2"], [], ["{}"]], "[\n  1,\n  2,\n  {}\n ]"),
    ],
)
def test_json_array_layout(batches: list[list[str]], expected: str) -> None:
    """One element a line, however the elements are batched; the text parses to the elements."""
    fh = io.StringIO()
    array = JsonArray(fh)
    for lines in batches:
        array.extend(lines)
    array.close()
    assert fh.getvalue() == expected
    assert json.loads(fh.getvalue()) == [json.loads(t) for lines in batches for t in lines]

"""Report values as the text Python's ``round``, ``json`` and ``csv`` give them, a column at a time.

The report writers must produce the bytes of the per-object writers, which call ``round(v, n)``
on every number and let ``json.dumps`` (``repr``, ``NaN``, ``Infinity``) or ``csv.writer``
(``str``) format it. Calling those per value is most of the cost of a 300,000-row report, so:

* :func:`round_like_python` rounds a whole array with NumPy and hands Python's ``round`` only the
  values it cannot vouch for (near a rounding tie, too large, not finite);
* :func:`float_texts` gives each value's ``repr``: msgspec's JSON encoder writes the same shortest
  round-trip digits about 3x faster, in the same positional form for ``1e-4 <= |v| < 1e16``
  (and zero); the other values go to ``repr`` (they differ only in the exponent's form there:
  ``1e16`` against ``1e+16``); :func:`json_texts` / :func:`csv_texts` build on it, the
  non-finite values patched afterwards;
* :func:`float_row_texts` joins the rows of a float table (a box's four numbers) with each
  separator asked for, every row in one encode: the encoder's ``[[a,b],[c,d]]`` has its commas
  replaced by the separator and is split at the row breaks, so a writer puts one text per row
  into its line instead of four numbers and three separators;
* :func:`int_row_texts` joins ragged rows of integers as ``", ".join(map(str, row))`` does (a
  mask's RLE points), all rows in one msgspec encode sliced at offsets computed from the digit
  counts (about 2.5x faster than formatting row by row);
* :func:`csv_field` quotes a text as ``csv.writer``'s default dialect does (QUOTE_MINIMAL);
* :func:`gather_texts` hands every row the text of its distinct value
  (:func:`cvat_ext.rows.distinct_rows`), each formatted once; :class:`JsonArray` writes the
  report's one-element-a-line JSON arrays.

Why the NumPy rounding equals Python's: ``round(x, n)`` is the double nearest to ``d / 10**n``
where ``d`` is the exact ``x * 10**n`` rounded half to even. NumPy computes ``s = fl(x * 10**n)``,
off the exact product by less than ``|s| * 2**-53`` (below 1.2e-7 for ``|s| < 1e9``); when ``s``
is further than 1e-6 from a tie, ``rint(s)`` is that ``d``, and ``d / 10**n`` (two exact
doubles, one correctly rounded division) is the double nearest to the decimal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TextIO

import msgspec
import numpy as np
import numpy.typing as npt

__all__ = [
    "JsonArray",
    "csv_field",
    "csv_texts",
    "float_row_texts",
    "float_texts",
    "gather_texts",
    "int_row_texts",
    "json_and_csv_texts",
    "json_texts",
    "needs_quotes",
    "round_like_python",
]

FloatArray = npt.NDArray[np.float64]

#: scaled values at least this large (or within _TIE of a tie) go to Python's ``round``
_LARGE = 1e9
_TIE = 1e-6


def round_like_python(values: npt.ArrayLike, ndigits: int) -> FloatArray:
    """``round(v, ndigits)`` of every value (any shape; NaN and infinities kept), as a new array."""
    x = np.asarray(values, dtype=np.float64)
    scale = 10.0**ndigits
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = x * scale
        out = np.rint(scaled) / scale
        off_tie = np.abs(scaled - np.floor(scaled) - 0.5) > _TIE
        # NaN and infinities come out of ``rint`` as ``round`` gives them; a finite value whose
        # scaled form overflows is large, so Python's
        doubt = np.isfinite(x) & ~(off_tie & (np.abs(scaled) < _LARGE))
    idx = np.flatnonzero(doubt)
    if idx.size:
        flat = out.reshape(-1)
        flat[idx] = [round(v, ndigits) for v in x.reshape(-1)[idx].tolist()]
    return out


def float_texts(values: npt.ArrayLike) -> list[str]:
    """``repr`` of every value of ``values`` (flattened), as a list."""
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    plain = _plain(x)
    if not x.size:
        return []
    # every value through the encoder (NaN and infinities come out as null), then ``repr`` of the
    # others: a column of similarities with a few NaN is written at the encoder's speed
    texts = _encoded(x)
    for i in np.flatnonzero(~plain).tolist():
        texts[i] = repr(float(x[i]))
    return texts


def _plain(x: FloatArray) -> npt.NDArray[np.bool_]:
    """Where the encoder writes ``repr``'s text (zero, or ``1e-4 <= |v| < 1e16``; NaN is not)."""
    size = np.abs(x)
    return (size == 0) | ((size >= 1e-4) & (size < 1e16))


def float_row_texts(values: npt.ArrayLike, seps: Sequence[str]) -> list[list[str]]:
    """For each separator of ``seps``: the rows of ``values (N, C)`` (C >= 1) as ``sep.join(map(repr,
    row))``, N texts."""
    x = np.asarray(values, dtype=np.float64)
    n, c = x.shape
    if n == 0:
        return [[] for _ in seps]
    if not _plain(x).all():  # repr's exponent form (or null for NaN): a value at a time
        texts = float_texts(x)
        return [[sep.join(texts[i : i + c]) for i in range(0, n * c, c)] for sep in seps]
    inner = msgspec.json.encode(x.tolist())[2:-2].decode("ascii")  # a,b],[c,d
    return [inner.replace(",", sep).split(f"]{sep}[") for sep in seps]


def _encoded(x: FloatArray) -> list[str]:
    return msgspec.json.encode(x.tolist())[1:-1].decode("ascii").split(",")


def int_row_texts(values: npt.ArrayLike, sizes: npt.ArrayLike) -> list[str]:
    """``", ".join(map(str, row))`` of every row of a ragged integer array: ``values (V,)`` the rows
    one after the other, ``sizes (S,)`` the length of each (each >= 1) -> S texts."""
    flat = np.asarray(values, dtype=np.int64)
    length = np.asarray(sizes, dtype=np.int64)
    if length.size == 0:
        return []
    # every number's text is its digits (and a minus sign), joined by ", "
    text = msgspec.json.encode(flat.tolist())[1:-1].replace(b",", b", ").decode("ascii")
    magnitude = np.abs(flat)
    digits = 1 + (flat < 0).astype(np.int64)
    top = int(magnitude.max()) if flat.size else 0
    power = 10
    while power <= top:
        digits += magnitude >= power
        power *= 10
    width = digits + 2
    offset = np.cumsum(width) - width
    last = np.cumsum(length) - 1
    lo = offset[last - length + 1].tolist()
    hi = (offset[last] + digits[last]).tolist()
    return [text[a:b] for a, b in zip(lo, hi, strict=True)]


def json_and_csv_texts(values: FloatArray) -> tuple[list[str], list[str]]:
    """:func:`json_texts` and :func:`csv_texts` of one column, each value formatted once."""
    texts = float_texts(values)
    bad = np.flatnonzero(~np.isfinite(values)).tolist()
    if not bad:
        return texts, texts
    as_json, as_csv = texts.copy(), texts.copy()
    _patch_json(as_json, values, bad)
    for i in bad:
        if math.isnan(values[i]):
            as_csv[i] = ""
    return as_json, as_csv


def _patch_json(texts: list[str], values: FloatArray, idx: list[int]) -> None:
    for i in idx:
        v = float(values[i])
        texts[i] = "null" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")


def json_texts(values: FloatArray) -> list[str]:
    """Each value of a 1-D column as ``json.dumps`` writes it, NaN as ``null`` (the report's
    ``None``)."""
    texts = float_texts(values)
    _patch_json(texts, values, np.flatnonzero(~np.isfinite(values)).tolist())
    return texts


def csv_texts(values: FloatArray) -> list[str]:
    """Each value of a 1-D column as ``csv.writer`` writes it, NaN as an empty cell."""
    texts = float_texts(values)
    for i in np.flatnonzero(np.isnan(values)).tolist():
        texts[i] = ""
    return texts


def csv_field(text: str) -> str:
    """``text`` as one field of ``csv.writer``'s default dialect (quoted when it holds a comma, a
    quote or a line break; quotes doubled)."""
    if _needs_quotes(text):
        return '"' + text.replace('"', '""') + '"'
    return text


def _needs_quotes(text: str) -> bool:
    return "," in text or '"' in text or "\n" in text or "\r" in text


def needs_quotes(texts: Sequence[str]) -> list[bool]:
    """Whether each text needs quoting as a CSV field (see :func:`csv_field`)."""
    return [_needs_quotes(t) for t in texts]


def gather_texts(texts: list[str], pos: npt.NDArray[np.int64]) -> list[str]:
    """``[texts[i] for i in pos]``, at NumPy's speed."""
    return np.array(texts, dtype=object)[pos].tolist()


class JsonArray:
    """A JSON array written to ``fh`` one element a line: ``[``, each element on its own line
    indented two spaces, commas after all but the last, and `` ]`` on a line of its own (``[]``
    when empty). Elements come as pre-formatted JSON texts; :meth:`close` writes the end."""

    _FIRST = "\n  "
    _NEXT = ",\n  "

    def __init__(self, fh: TextIO) -> None:
        self._fh = fh
        self._sep = self._FIRST
        fh.write("[")

    def extend(self, texts: Sequence[str]) -> None:
        """Append the elements ``texts`` (JSON texts), one a line."""
        if texts:
            self._fh.write(self._sep)  # apart: joined to the batch it would copy the batch once more
            self._fh.write(self._NEXT.join(texts))
            self._sep = self._NEXT

    def close(self) -> None:
        """Write the closing bracket."""
        self._fh.write("\n ]" if self._sep != self._FIRST else "]")

"""Where the items of a top-level JSON array lie in a JSON text, found without parsing it.

:func:`array_items` scans the bytes of a JSON object (a ``LabeledData`` body) window by window
with NumPy: it finds the unescaped quotes, marks the brackets and braces outside strings, tracks
the nesting depth, and returns the byte span of the array under one top-level key and the
``(start, stop)`` byte offsets of each of its items. The reader then decodes the items a block at a
time, so a 600 MB file never becomes 2 million Python objects at once.

The scan trusts nothing it finds: whatever it returns is decoded and validated afterwards, and a
text it cannot make sense of (unbalanced brackets, the key twice, no such key) gives ``None``;
the caller then takes its slow, strict path. Only ``{ } [ ] "`` and ``\\`` matter, and none of
them occurs inside a UTF-8 multi-byte sequence, so the scan works on raw bytes.
"""

from __future__ import annotations

import mmap
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import msgspec
import numpy as np
import numpy.typing as npt

__all__ = ["ArrayItems", "array_items", "is_gap", "keys_once"]

IntArray = npt.NDArray[np.int64]

#: bytes scanned at once (the temporaries are a few times this)
WINDOW: Final = 8 << 20
_QUOTE, _BACKSLASH = ord('"'), ord("\\")
_OPEN = np.zeros(256, dtype=np.int8)
_OPEN[[ord("{"), ord("[")]] = 1
_OPEN[[ord("}"), ord("]")]] = -1
_STRUCTURAL = np.zeros(256, dtype=bool)
_STRUCTURAL[[ord("{"), ord("["), ord("}"), ord("]")]] = True
_KEY_BEFORE = re.compile(rb'"((?:[^"\\]|\\.)*)"\s*:\s*$')


@dataclass(frozen=True)
class ArrayItems:
    """The array under a top-level key: ``open``/``close`` byte offsets of its ``[`` and ``]``,
    ``start (N,)``/``stop (N,)`` each item's byte span (``text[start:stop]`` is one JSON value)."""

    open: int
    close: int
    start: IntArray
    stop: IntArray


def _unescaped_quotes(buf: memoryview, b: npt.NDArray[np.uint8], base: int) -> IntArray:
    """Offsets (in ``b``) of the quotes not escaped by an odd run of backslashes."""
    quotes = np.flatnonzero(b == _QUOTE)
    if not quotes.size:
        return quotes
    before = quotes - 1
    maybe = before >= 0
    suspect = np.zeros(quotes.size, dtype=bool)
    suspect[maybe] = b[before[maybe]] == _BACKSLASH
    if base and quotes[0] == 0:
        suspect[0] = buf[base - 1] == _BACKSLASH
    if not suspect.any():
        return quotes
    keep = np.ones(quotes.size, dtype=bool)
    for i in np.flatnonzero(suspect).tolist():
        at = base + int(quotes[i]) - 1
        run = 0
        while at >= 0 and buf[at] == _BACKSLASH:
            run += 1
            at -= 1
        keep[i] = run % 2 == 0
    return quotes[keep]


def array_items(
    text: bytes | memoryview | mmap.mmap,
    key: bytes,
    *,
    window: int | None = None,
    release: Callable[[int, int], None] | None = None,
) -> ArrayItems | None:
    """The items of the array under the top-level ``key`` of the JSON object ``text``, or None
    (see the module docstring). An empty array gives empty ``start``/``stop``. ``release(lo, hi)``
    is called after each window (a memory-mapped file drops the pages it has scanned)."""
    buf = memoryview(text).cast("B")
    n = buf.nbytes
    window = window or WINDOW
    depth = 0
    in_string = False
    open_at = -1
    starts: list[IntArray] = []
    stops: list[IntArray] = []
    close_at = -1
    for base in range(0, n, window):
        b = np.frombuffer(buf[base : base + window], dtype=np.uint8)
        quotes = _unescaped_quotes(buf, b, base)
        marks = np.flatnonzero(_STRUCTURAL[b])
        if release is not None:
            release(base, base + b.size)
        if not marks.size:
            in_string ^= bool(quotes.size % 2)
            continue
        outside = (np.searchsorted(quotes, marks) % 2 == 1) == in_string
        marks = marks[outside]
        in_string ^= bool(quotes.size % 2)
        delta = _OPEN[b[marks]].astype(np.int64)
        after = depth + np.cumsum(delta)
        before = after - delta
        if after.size and after.min() < 0:
            return None
        depth = int(after[-1]) if after.size else depth
        # arrays opening at depth 1 are the values of top-level keys: is this one ours?
        for i in np.flatnonzero((before == 1) & (delta == 1) & (b[marks] == ord("["))).tolist():
            at = base + int(marks[i])
            head = bytes(buf[max(0, at - 256) : at])
            match = _KEY_BEFORE.search(head)
            if match is not None and match.group(1) == key:
                if open_at >= 0:
                    return None  # the key twice: the slow path says so
                open_at = at
        if open_at >= 0 and close_at < 0:
            pos = marks + base
            inside = pos > open_at
            item_open = inside & (before == 2) & (delta == 1)
            item_close = inside & (after == 2) & (delta == -1)
            array_close = np.flatnonzero(inside & (before == 2) & (after == 1))
            if array_close.size:
                close_at = int(pos[array_close[0]])
                item_open &= pos < close_at
                item_close &= pos < close_at
            starts.append(pos[item_open])
            stops.append(pos[item_close] + 1)
    if in_string or depth != 0 or open_at < 0 or close_at < 0:
        return None
    start = np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)
    stop = np.concatenate(stops) if stops else np.zeros(0, dtype=np.int64)
    if start.size != stop.size or np.any(stop <= start) or np.any(start[1:] < stop[:-1]):
        return None
    # only whitespace may lie before the first item and after the last (a bare number or string
    # item has no brace: it would lie there, or between two items where the decoder sees it)
    first, last = (int(start[0]), int(stop[-1])) if start.size else (close_at, close_at)
    if not is_gap(buf, open_at + 1, first, comma=False) or not is_gap(buf, last, close_at, comma=False):
        return None
    return ArrayItems(open_at, close_at, start.astype(np.int64), stop.astype(np.int64))


def is_gap(buf: memoryview, lo: int, hi: int, *, comma: bool) -> bool:
    """Whether ``buf[lo:hi]`` is JSON whitespace, around exactly one comma when ``comma``."""
    text = bytes(buf[lo:hi])
    if comma:
        head, sep, tail = text.partition(b",")
        return bool(sep) and not head.strip(b" \t\r\n") and not tail.strip(b" \t\r\n")
    return not text.strip(b" \t\r\n")


def keys_once(text: bytes | mmap.mmap, keys: re.Pattern[bytes], values: msgspec.json.Decoder[Any]) -> bool:
    """Whether every top-level key that ``keys`` matches (``"name"\\s*:``) appears at most once in
    ``text``, a JSON object already decoded once (a decoder keeps the last of repeated keys).

    ``values`` decodes ``text`` into a struct of :class:`msgspec.Raw` fields, one per key, whose
    values are spans of ``text`` itself; only the text between them (the keys, unknown keys'
    values, whitespace) is searched with ``keys``. A key given twice is found there twice (its
    keys are never inside the spans; only its last value is skipped). A match inside a nested
    value of an unknown key counts too: a false alarm sends the caller to its strict path, which
    decides. Searching the whole text instead costs about 1 ms per MB."""
    spans: list[tuple[int, int]] = []
    with memoryview(text) as whole:
        base = np.frombuffer(whole, dtype=np.uint8).__array_interface__["data"][0] if len(whole) else 0
        found = values.decode(text)
        for name in found.__struct_fields__:
            raw = getattr(found, name)
            if len(raw):
                start = np.frombuffer(raw, dtype=np.uint8).__array_interface__["data"][0] - base
                if not 0 <= start <= len(whole) - len(raw):  # a copy, not a span: search it all
                    return _each_once(keys.findall(text))
                spans.append((start, start + len(raw)))
        del found, raw  # the spans hold the buffer (an mmap cannot close while they live)
    spans.sort()
    gaps = zip([0, *(stop for _, stop in spans)], [*(start for start, _ in spans), len(text)], strict=True)
    return _each_once([k for lo, hi in gaps for k in keys.findall(text[lo:hi])])


def _each_once(names: list[bytes]) -> bool:
    return len(names) == len(set(names))

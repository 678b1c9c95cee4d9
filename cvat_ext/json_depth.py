"""How deeply a JSON text nests, found without parsing it (so without recursion).

``json.loads`` recurses once per ``[``/``{``: a 100k-deep body raises ``RecursionError`` (or, with a
raised recursion limit, overflows the C stack). Untrusted bodies are scanned first with
:func:`json_depth` and refused above a limit.

The scan works on the bytes with numpy, one chunk at a time, looking only at the six bytes that
matter (``" \\ [ ] { }``): a byte preceded by an odd run of backslashes is escaped; brackets
between an opening and a closing quote are inside a string and do not count. The state carried
from chunk to chunk is the depth, whether a string is open and the backslash run at the chunk's
end, so memory stays O(chunk) for any body size, and the scan stops at the first chunk that goes
over the limit. For invalid JSON the number is still an upper bound of what ``json.loads`` would
recurse through before failing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["json_depth"]

#: byte -> 0 (plain), or the kind of byte the scan looks at: one table lookup per byte
_PLAIN, _QUOTE, _BACKSLASH, _OPEN, _CLOSE = range(5)
_KIND = np.zeros(256, dtype=np.uint8)
_KIND[ord('"')], _KIND[ord("\\")] = _QUOTE, _BACKSLASH
_KIND[[ord("["), ord("{")]] = _OPEN
_KIND[[ord("]"), ord("}")]] = _CLOSE
CHUNK_BYTES = 1 << 20


@dataclass
class _Carry:
    depth: int = 0
    max_depth: int = 0
    in_string: bool = False
    #: consecutive backslashes that end the previous chunk
    backslash_run: int = 0


def json_depth(data: bytes | bytearray | memoryview | str, *, stop_above: int | None = None) -> int:
    """The deepest ``[``/``{`` nesting outside strings (0 for a scalar, 1 for ``[1, 2]``).

    With ``stop_above``, returns as soon as the depth exceeds it (the value returned is then some
    depth > ``stop_above``, not necessarily the maximum).
    """
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data) if isinstance(data, memoryview) else data
    buf = np.frombuffer(raw, dtype=np.uint8)
    carry = _Carry()
    for start in range(0, buf.size, CHUNK_BYTES):
        _scan_chunk(buf[start : start + CHUNK_BYTES], carry)
        if stop_above is not None and carry.max_depth > stop_above:
            break
    return carry.max_depth


def _scan_chunk(chunk: np.ndarray, carry: _Carry) -> None:
    kind = _KIND[chunk]
    pos = np.flatnonzero(kind)
    if pos.size == 0:
        carry.backslash_run = 0
        return
    val = kind[pos]
    idx = np.arange(pos.size)
    is_bs = val == _BACKSLASH
    # backslash runs: a backslash right after a backslash continues the run
    prev_adjacent_bs = np.zeros(pos.size, dtype=bool)
    prev_adjacent_bs[1:] = is_bs[:-1] & (pos[1:] == pos[:-1] + 1)
    run_start = is_bs & ~prev_adjacent_bs
    start_idx = np.maximum.accumulate(np.where(run_start, idx, -1))
    run_len = np.where(is_bs, idx - start_idx + 1, 0)
    if carry.backslash_run and pos[0] == 0 and is_bs[0]:
        # the first run continues the previous chunk's trailing run
        first_run = (start_idx == 0) & is_bs
        run_len = np.where(first_run, run_len + carry.backslash_run, run_len)
    # a byte is escaped when the byte before it ends an odd run of backslashes
    run_before = np.zeros(pos.size, dtype=np.int64)
    run_before[1:] = np.where(prev_adjacent_bs[1:], run_len[:-1], 0)
    if pos[0] == 0:
        run_before[0] = carry.backslash_run
    escaped = run_before % 2 == 1
    real_quote = (val == _QUOTE) & ~escaped
    # inside a string: an odd number of real quotes before this byte (plus the carried state)
    quotes_before = np.cumsum(real_quote) - real_quote
    inside = ((quotes_before % 2) == 1) ^ carry.in_string
    counted = ~inside & ~escaped
    delta = np.where(counted, (val == _OPEN).astype(np.int64) - (val == _CLOSE).astype(np.int64), 0)
    depth = carry.depth + np.cumsum(delta)
    carry.max_depth = max(carry.max_depth, int(depth.max()))
    carry.depth = int(depth[-1])
    carry.in_string = bool(carry.in_string ^ (int(real_quote.sum()) % 2 == 1))
    last = chunk.size - 1
    carry.backslash_run = int(run_len[-1]) if pos[-1] == last and is_bs[-1] else 0

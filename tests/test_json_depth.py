"""The non-recursive JSON depth scan against a naive reference, on random and hostile texts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cvat_ext import json_depth as module
from cvat_ext.json_depth import json_depth


def naive_depth(text: str) -> int:
    """Character by character. A backslash escapes the next character outside strings too: that
    is invalid JSON, where ``json.loads`` stops, so only the depth before it matters."""
    depth = best = 0
    in_string = escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif in_string:
            if ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            best = max(best, depth)
        elif ch in "]}":
            depth -= 1
    return best


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("1", 0),
        ("[]", 1),
        ('{"a": [1, {"b": []}]}', 4),
        ('["[[[[", "\\"[[", "\\\\", [0]]', 2),  # brackets in strings, escaped quote, escaped backslash
        ('"\\\\\\"[["', 0),  # \\ then \" : still inside the string
        ("[" * 100_000, 100_000),
        ('[{"image": "' + "A" * 50_000 + '"}]', 2),
    ],
)
def test_known_depths(text: str, depth: int) -> None:
    assert json_depth(text) == depth == naive_depth(text)


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64])
@pytest.mark.parametrize("seed", range(6))
def test_random_texts_against_naive_across_chunk_boundaries(
    chunk: int, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(module, "CHUNK_BYTES", chunk)
    rng = np.random.default_rng(seed)
    alphabet = list('[]{}"\\\\\\ab, ')  # backslashes weighted up: long runs cross chunk edges
    for _ in range(40):
        text = "".join(rng.choice(alphabet, size=int(rng.integers(0, 120))))
        assert json_depth(text) == naive_depth(text), text


def test_valid_json_depth_matches_its_structure() -> None:
    rng = np.random.default_rng(3)
    for _ in range(30):
        value: object = "x\\\"[" * int(rng.integers(0, 3))
        want = 0
        for _ in range(int(rng.integers(0, 30))):
            value = [value] if rng.random() < 0.5 else {"k[": value}
            want += 1
        assert json_depth(json.dumps(value)) == want


def test_stop_above_returns_early() -> None:
    assert json_depth("[" * 5_000_000, stop_above=10) > 10

"""Access to the real CVAT 2.73 recordings (``tests/data/cvat-2.73/recorded``) for tests."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from tests import shared_data

_CANDIDATES = (shared_data.RECORDED_DIR,)


def recorded_dir() -> Path:
    for path in _CANDIDATES:
        if path.is_dir():
            return path
    raise FileNotFoundError("CVAT recordings (tests/data/cvat-2.73/recorded) missing from the checkout")


@cache
def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((recorded_dir() / name).read_text())
    return data


def response_bodies(name: str, method: str, path_prefix: str) -> list[Any]:
    """Response bodies of the 2xx exchanges in ``name`` matching method and path prefix."""
    return [
        e["response"]["body"]
        for e in load(name)["exchanges"]
        if e["request"]["method"] == method
        and e["request"]["path"].startswith(path_prefix)
        and 200 <= e["response"]["status"] < 300
    ]

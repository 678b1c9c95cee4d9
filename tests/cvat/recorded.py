"""Access to the real CVAT 2.73 recordings (``shared/cvat/recorded``) for tests."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests import shared_data

_CANDIDATES = (shared_data.RECORDED_DIR,)


def recorded_dir() -> Path:
    for path in _CANDIDATES:
        if path.is_dir():
            return path
    pytest.skip("CVAT recordings (shared/cvat/recorded) not available")
    raise AssertionError("unreachable")


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

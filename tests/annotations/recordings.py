"""Annotation bodies from the recorded CVAT 2.73 traffic (``tests/data/cvat-2.73/recorded``).

The recordings are part of the repository (recorded facts, see tests/data/cvat-2.73/README.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from tests import shared_data

_LOCATIONS = (shared_data.RECORDED_DIR,)

#: files whose exchanges carry LabeledData bodies (requests, responses or both)
ANNOTATION_FILES = (
    "40_job_annotations_get_replica.json",
    "41_job_annotations_get_gt.json",
    "42_job_annotations_put.json",
    "43_job_annotations_patch_create.json",
    "44_job_annotations_patch_update.json",
    "45_job_annotations_patch_delete.json",
    "46_job_annotations_after_writes.json",
    "48_job_annotations_path_variants.json",
    "72_consensus_parent_after_merge.json",
    "E04_invalid_annotation.json",
    "L02_lambda_detector_call.json",
    "L05_lambda_request_whole_task.json",
)


def _recorded() -> Path | None:
    return next((p for p in _LOCATIONS if p.is_dir()), None)


@cache
def load(name: str) -> Any:
    """One recording file (the recordings are in the repository: missing means a broken checkout)."""
    where = _recorded()
    if where is None:
        raise FileNotFoundError("CVAT recordings (tests/data/cvat-2.73/recorded) missing from the checkout")
    with open(where / name, encoding="utf-8") as fh:
        return json.load(fh)


def annotation_bodies() -> Iterator[tuple[str, str, int, dict[str, Any]]]:
    """``(file, "request"|"response", exchange index, body)`` for every LabeledData body CVAT
    accepted (responses with status 200, and the requests of those exchanges); nothing when the
    recordings are missing."""
    if _recorded() is None:
        return
    for name in ANNOTATION_FILES:
        for i, exchange in enumerate(load(name)["exchanges"]):
            if exchange["response"]["status"] != 200:
                continue
            for side in ("request", "response"):
                body = exchange[side].get("body")
                if isinstance(body, dict) and isinstance(body.get("shapes"), list):
                    yield name, side, i, body


def annotation_body(name: str, index: int = 0) -> dict[str, Any]:
    """A deep copy of one recorded response body (tests may not mutate the cached file)."""
    body: dict[str, Any] = json.loads(json.dumps(load(name)["exchanges"][index]["response"]["body"]))
    return body

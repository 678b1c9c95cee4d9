"""parse -> dump of every recorded CVAT annotation body gives the body back."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from cvat_ext.annotations.cvat_json import dump_job_annotations, parse_job_annotations
from tests.annotations.recordings import annotation_bodies

BODIES = list(annotation_bodies())

_SHAPE_DEFAULTS: dict[str, Any] = {
    "occluded": False,
    "outside": False,
    "z_order": 0,
    "rotation": 0.0,
    "group": 0,
    "source": "manual",
    "score": 1.0,
    "attributes": [],
}
_TAG_DEFAULTS: dict[str, Any] = {"group": 0, "source": "manual", "attributes": []}

#: bodies CVAT itself wrote without a key its serializer otherwise always writes
_CVAT_SHORT_FORMS = {
    ("45_job_annotations_patch_delete.json", "response", 1),  # delete echo: shapes without "elements"
    ("L02_lambda_detector_call.json", "response", 0),  # lambda results: "id": null, no "elements"
}


def with_cvat_defaults(body: dict[str, Any]) -> dict[str, Any]:
    """The body with CVAT's serializer defaults filled in and ``"id": null`` dropped: the canonical
    form our dump writes. Request bodies (and two short CVAT answers) leave defaults out."""
    out = copy.deepcopy(body)
    out.setdefault("version", 0)
    out.setdefault("intervals", [])
    for tag in out.get("tags", []):
        for key, value in _TAG_DEFAULTS.items():
            tag.setdefault(key, value)
        if tag.get("id", 0) is None:
            del tag["id"]
    for shape in out.get("shapes", []):
        shape.setdefault("elements", [])
        for obj in [shape, *shape["elements"]]:
            for key, value in _SHAPE_DEFAULTS.items():
                obj.setdefault(key, value)
            if obj.get("id", 0) is None:
                del obj["id"]
    return out


@pytest.mark.parametrize(("name", "side", "index", "body"), BODIES, ids=[f"{b[0]}-{b[1]}-{b[2]}" for b in BODIES])
def test_round_trip_of_recorded_body(name: str, side: str, index: int, body: dict[str, Any]) -> None:
    dumped = dump_job_annotations(parse_job_annotations(body, where=name))
    assert dumped == with_cvat_defaults(body)
    if side == "response" and (name, side, index) not in _CVAT_SHORT_FORMS:
        # CVAT's own answers are already canonical: the dump reproduces them exactly, key for key
        assert dumped == body


def test_recordings_cover_every_2d_type_and_a_track() -> None:
    types = {s["type"] for _, _, _, body in BODIES for s in body["shapes"]}
    assert types >= {"rectangle", "polygon", "polyline", "points", "ellipse", "mask", "skeleton"}
    assert any(body["tracks"] for _, _, _, body in BODIES)

"""The checkers themselves must be able to fail: schema validation and the structure diff."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.cvat_standin.schema import ALLOWED_DEVIATIONS, validate_response
from tests.standin_checks.replay import RECORDED, IdMap, remap_path, remap_query, structure_diff

JOB = json.loads((RECORDED / "33_job_get.json").read_text())["exchanges"][0]["response"]["body"]


def test_recorded_job_validates() -> None:
    assert validate_response("GET", "/api/jobs/132", 200, "application/vnd.cvat+json", JOB) == []


@pytest.mark.parametrize(("mutate", "fragment"), [
    (lambda j: j.pop("issues"), "'issues' is a required property"),
    (lambda j: j.update(stage="done"), "stage"),
    (lambda j: j.update(id="132"), "is not of type 'integer'"),
])
def test_schema_violations_are_reported(mutate: Any, fragment: str) -> None:
    job = json.loads(json.dumps(JOB))
    mutate(job)
    errors = validate_response("GET", "/api/jobs/132", 200, "application/vnd.cvat+json", job)
    assert any(fragment in e for e in errors), errors


def test_undocumented_operation_and_allowed_deviations() -> None:
    assert validate_response("GET", "/api/nope", 200, "application/json", {})[0].endswith(
        "no such operation in the 2.73 schema")
    body = {"version": 0, "tags": [], "shapes": [], "tracks": [], "intervals": []}
    assert ("PUT", "/api/jobs/{id}/annotations/", 200) in ALLOWED_DEVIATIONS
    assert validate_response("PUT", "/api/jobs/5/annotations", 200, "application/vnd.cvat+json", body) == []
    assert validate_response("GET", "/api/jobs/5", 404, "application/vnd.cvat+json", {"detail": "x"}) == []


@pytest.mark.parametrize(("recorded", "actual", "n_diffs"), [
    ({"a": 1, "b": [1.5]}, {"a": 2.0, "b": [3]}, 0),
    ({"a": 1}, {"a": "1"}, 1),
    ({"a": 1}, {"a": 1, "c": 2}, 1),
    ({"a": None}, {"a": {"x": 1}}, 0),
    ([{"type": "rectangle", "points": []}, {"type": "skeleton", "elements": []}],
     [{"type": "skeleton", "elements": []}], 0),
    ([{"type": "rectangle", "points": []}], [{"type": "rectangle"}], 1),
    ({"conflicts_by_type": {"low_overlap": 1}}, {"conflicts_by_type": {"missing_annotation": 3}}, 0),
])
def test_structure_diff(recorded: Any, actual: Any, n_diffs: int) -> None:
    assert len(structure_diff(recorded, actual)) == n_diffs


def test_id_remapping() -> None:
    ids = IdMap()
    ids.set("job", 131, 1)
    ids.set("task", 52, 7)
    assert remap_path(ids, "/api/jobs/131/annotations") == "/api/jobs/1/annotations"
    assert remap_path(ids, "/api/requests/action=merge&target=job&target_id=131") == (
        "/api/requests/action=merge&target=job&target_id=1")
    assert remap_path(ids, "/api/jobs/999999") == "/api/jobs/999999"
    flt = json.dumps({"and": [{">": [{"var": "updated_date"}, "x"]}, {"==": [{"var": "task_id"}, 52]}]})
    out = remap_query(ids, {"task_id": "52", "filter": flt, "page_size": "100"})
    assert out["task_id"] == "7" and json.loads(out["filter"])["and"][1]["=="][1] == 7

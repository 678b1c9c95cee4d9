"""Validate the stand-in's JSON responses against the CVAT 2.73 OpenAPI schema.

Where the recordings show the real server deviating from its own schema, the deviation is
allowed explicitly (``ALLOWED_DEVIATIONS``; numbers refer to "Surprises" in
tests/data/cvat-2.73/recorded/README.md). Everything else that does not validate is a stand-in bug.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

import yaml
from openapi_schema_validator import OAS30Validator

from tests import shared_data

SCHEMA_PATH = shared_data.SCHEMA_PATH

# (method, schema path template, status) -> why the body is not checked against the schema.
ALLOWED_DEVIATIONS: dict[tuple[str, str, int], str] = {
    ("PUT", "/api/jobs/{id}/annotations/", 200): "surprise 1: schema has no body; server returns LabeledData",
    ("PATCH", "/api/jobs/{id}/annotations/", 200): "surprise 1: schema has no body; server echoes the changes",
    ("GET", "/api/quality/reports/{id}/data", 200): "surprise 2: schema says binary string; body is JSON",
}
# Error statuses are mostly undocumented (surprise 4); their bodies are CVAT's DRF error shapes.
UNCHECKED_STATUSES = frozenset({400, 401, 403, 404, 405, 409, 410, 429, 500, 503})


@dataclass(frozen=True)
class _Operation:
    regex: re.Pattern[str]
    template: str
    method: str
    responses: dict[str, Any]


def _fix_nullable_composition(node: Any) -> Any:
    """OAS 3.0 ``nullable`` next to ``allOf``/``$ref`` does not admit null in the validator; make it explicit."""
    if isinstance(node, list):
        return [_fix_nullable_composition(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: _fix_nullable_composition(v) for k, v in node.items()}
    if node.get("nullable") is True and any(k in node for k in ("allOf", "oneOf", "anyOf", "$ref")):
        rest = {k: v for k, v in node.items() if k != "nullable"}
        return {"anyOf": [{"enum": [None]}, rest]}
    return node


@functools.cache
def _load() -> tuple[dict[str, Any], list[_Operation]]:
    spec = _fix_nullable_composition(yaml.safe_load(SCHEMA_PATH.read_text()))
    ops: list[_Operation] = []
    for template, item in spec["paths"].items():
        pattern = re.sub(r"\{(\w+)\}", "[^/]+", template.rstrip("/"))
        regex = re.compile(f"^{pattern}/?$")
        for method, op in item.items():
            if method.upper() in ("GET", "POST", "PUT", "PATCH", "DELETE"):
                ops.append(_Operation(regex, template, method.upper(), op.get("responses", {})))
    # literal paths first (/api/users/self before /api/users/{id})
    ops.sort(key=lambda o: o.template.count("{"))
    return spec, ops


def find_operation(method: str, path: str) -> _Operation | None:
    _, ops = _load()
    return next((o for o in ops if o.method == method and o.regex.match(path)), None)


@functools.cache
def _validator_for(ref_root: str) -> OAS30Validator:
    spec, _ = _load()
    return OAS30Validator({"$ref": ref_root, "components": spec["components"]})


def _validator_inline(schema: dict[str, Any]) -> OAS30Validator:
    spec, _ = _load()
    return OAS30Validator({**schema, "components": spec["components"]})


def validate_response(method: str, path: str, status: int, content_type: str, body: Any) -> list[str]:
    """Violations of the schema by one JSON response (empty when it conforms or is allowed)."""
    if status in UNCHECKED_STATUSES or "json" not in content_type:
        return []
    op = find_operation(method, path)
    where = f"{method} {path} -> {status}"
    if op is None:
        return [f"{where}: no such operation in the 2.73 schema"]
    if (method, op.template, status) in ALLOWED_DEVIATIONS:
        return []
    resp = op.responses.get(str(status))
    if resp is None:
        return [f"{where}: status not documented for {op.template} (documented: {sorted(op.responses)})"]
    content = resp.get("content")
    if not content:
        if body is None:
            return []
        return [f"{where}: schema documents no body, got {type(body).__name__}"]
    media = content.get("application/vnd.cvat+json") or content.get("application/json") or next(
        iter(content.values()))
    schema = media.get("schema", {})
    validator = _validator_for(schema["$ref"]) if "$ref" in schema else _validator_inline(schema)
    return [f"{where}: {'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)]

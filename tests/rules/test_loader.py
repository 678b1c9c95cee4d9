"""Rule files: validation, includes, overrides, and errors that name file, line and rule id."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from cvat_ext.errors import RuleFileError
from cvat_ext.rules import Action, Severity, lint_files, load_pack, load_packs, rule_file_json_schema
from cvat_ext.rules.loader import RulePackInvalid

QA_RULES = Path(__file__).resolve().parents[2] / "qa_rules"
PACKS = sorted(QA_RULES.glob("*.yaml"))


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


BASE = """\
version: 1
name: base
actions: {error: open_issue, warning: none}
rules:
  - id: tiny
    kind: size
    min_width: 4
    min_height: 4
  - id: dup
    kind: duplicates
    iou_thr: 0.9
"""


def test_shipped_packs_lint_clean() -> None:
    assert len(PACKS) >= 3
    assert lint_files(PACKS) == []


@pytest.mark.parametrize("path", PACKS, ids=lambda p: p.name)
def test_shipped_packs_match_the_json_schema(path: Path) -> None:
    jsonschema.validate(yaml.safe_load(path.read_text()), rule_file_json_schema())


def test_json_schema_rejects_typos() -> None:
    bad = {"rules": [{"id": "a", "kind": "size", "min_widht": 3}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, rule_file_json_schema())


def test_include_and_override(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", BASE)
    child = write(
        tmp_path,
        "child.yaml",
        """\
include: [base.yaml]
rules:
  - id: dup
    kind: duplicates
    severity: warning
    iou_thr: 0.5
  - id: own
    kind: aspect_ratio
    max_ratio: 10
overrides:
  tiny:
    min_width: 8
    scope: {labels: [car]}
""",
    )
    pack = load_pack(child)
    assert pack.rule_ids == ("tiny", "dup", "own")  # replaced rules keep their place
    tiny = pack.rule("tiny")
    assert (tiny.min_width, tiny.min_height, tiny.scope.labels) == (8, 4, ("car",))  # type: ignore[union-attr]
    assert pack.rule("dup").severity is Severity.WARNING
    assert pack.actions.error is Action.OPEN_ISSUE  # inherited from the include
    assert "overridden at" in pack.origins["tiny"]


def test_later_file_overrides_earlier(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", BASE)
    b = write(tmp_path, "b.yaml", "rules:\n  - id: tiny\n    kind: size\n    min_area: 10\n")
    pack = load_packs([a, b])
    assert pack.rule("tiny").min_area == 10  # type: ignore[union-attr]
    assert pack.rule("tiny").min_width is None  # type: ignore[union-attr]


ERROR_CASES = [
    ("typo", "rules:\n  - id: a\n    kind: size\n    min_widht: 3\n", 4, "a", "min_widht: unknown key"),
    ("unknown kind", "rules:\n  - id: a\n    kind: sise\n", 2, "a", "does not match any of the expected tags"),
    ("bad id", "rules:\n  - id: 'no spaces'\n    kind: size\n    min_width: 1\n", 2, "no spaces", "should match"),
    ("no bound", "rules:\n  - id: a\n    kind: size\n", 2, "a", "give at least one of"),
    (
        "min > max",
        "rules:\n  - id: r\n    kind: aspect_ratio\n    min_ratio: 3\n    max_ratio: 2\n",
        2,
        "r",
        "greater than",
    ),
    ("wrong type", "rules:\n  - id: a\n    kind: size\n    min_width: big\n", 4, "a", "valid number"),
    ("bad severity", "rules:\n  - id: a\n    kind: duplicates\n    severity: fatal\n", 4, "a", "'error' or 'warning'"),
    ("top-level typo", "rulez: []\n", 1, None, "unknown key"),
    ("yaml syntax", "rules:\n  - id: a\n    kind: [size\n", 4, None, "YAML"),
    ("duplicate key", "rules:\n  - id: a\n    id: b\n", 3, None, "duplicate key"),
    (
        "expression call",
        "rules:\n  - id: e\n    kind: expression\n    expr: 'open(1)'\n",
        4,
        "e",
        "Call is not allowed",
    ),
    (
        "expression name",
        "rules:\n  - id: e\n    kind: expression\n    expr: 'widht > 3'\n",
        4,
        "e",
        "unknown name 'widht'",
    ),
    (
        "overlap without subject",
        "rules:\n  - id: o\n    kind: forbidden_overlap\n    other_labels: [car]\n",
        2,
        "o",
        "scope.labels must name",
    ),
    (
        "duplicate id",
        "rules:\n  - id: a\n    kind: duplicates\n  - id: a\n    kind: duplicates\n",
        4,
        "a",
        "duplicate rule id (first at line 2)",
    ),
    ("unknown override", "overrides:\n  nope: {severity: warning}\n", 2, "nope", "override of an unknown rule id"),
]


@pytest.mark.parametrize(
    ("text", "line", "rule_id", "words"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES]
)
def test_errors_name_file_line_rule(tmp_path: Path, text: str, line: int, rule_id: str | None, words: str) -> None:
    path = write(tmp_path, "bad.yaml", text)
    with pytest.raises(RuleFileError) as info:
        load_pack(path)
    err = info.value
    assert err.path == str(path)
    assert err.line == line, str(err)
    assert err.rule_id == rule_id
    assert words in str(err)
    assert str(err).startswith(f"{path}:{line}")


def test_override_errors_point_at_the_override(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", BASE)
    child = write(
        tmp_path,
        "child.yaml",
        "include: [base.yaml]\noverrides:\n  tiny:\n    min_width: -1\n  dup:\n    kind: size\n",
    )
    with pytest.raises(RulePackInvalid) as info:
        load_pack(child)
    errors = info.value.errors
    assert [(e.line, e.rule_id) for e in errors] == [(4, "tiny"), (5, "dup")]
    assert "greater than or equal to 0" in str(errors[0])
    assert "cannot change kind" in str(errors[1])


def test_include_problems(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "include: [b.yaml]\n")
    write(tmp_path, "b.yaml", "include: [a.yaml]\n")
    with pytest.raises(RuleFileError, match="include cycle"):
        load_pack(tmp_path / "a.yaml")
    missing = write(tmp_path, "m.yaml", "rules: []\ninclude:\n  - nothere.yaml\n")
    with pytest.raises(RuleFileError, match="not found") as info:
        load_pack(missing)
    assert info.value.line == 3


def test_lint_collects_every_problem(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "two.yaml",
        "rules:\n  - id: a\n    kind: size\n    min_widht: 3\n  - id: b\n    kind: tracks\n    max_gap: -2\n",
    )
    problems = lint_files([path, QA_RULES / "default.yaml"])
    assert [(p.line, p.rule_id) for p in problems] == [(4, "a"), (7, "b")]


def test_schema_command_prints_valid_json() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cvat_ext", "rules", "schema"], capture_output=True, text=True, check=True
    ).stdout
    schema = json.loads(out)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert {"SizeRule", "ExpressionRule", "TracksRule", "KeypointsRule", "Scope"} <= set(schema["$defs"])
    assert schema["$defs"]["SizeRule"]["additionalProperties"] is False


def test_yaml_anchors_share_settings(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "anchors.yaml",
        """\
x-vehicles: &vehicles {labels: [car, truck]}
rules:
  - id: a
    kind: size
    scope: *vehicles
    min_width: 4
""",
    )
    with pytest.raises(RuleFileError, match="x-vehicles: unknown key"):
        load_pack(path)  # top-level keys are checked too; anchors live inside rules
    path.write_text(
        """\
rules:
  - &base {id: a, kind: size, scope: {labels: [car, truck]}, min_width: 4}
  - {<<: *base, id: b, min_height: 4}
"""
    )
    pack = load_pack(path)
    assert pack.rule("b").scope.labels == ("car", "truck")
    assert pack.rule("b").min_width == 4  # type: ignore[union-attr]


def test_every_kind_has_a_model_and_a_checker() -> None:
    import typing

    from cvat_ext.rules.kinds import CHECKERS
    from cvat_ext.rules.schema import RULE_MODELS, Rule

    union = typing.get_args(typing.get_args(Rule)[0])
    assert set(union) == set(RULE_MODELS.values())
    assert set(CHECKERS) == set(RULE_MODELS)
    assert len(RULE_MODELS) == 16


def test_lint_reports_a_broken_include_once(tmp_path: Path) -> None:
    broken = write(tmp_path, "base.yaml", "rules:\n  - id: a\n    kind: size\n    min_widht: 1\n")
    child = write(tmp_path, "child.yaml", "include: [base.yaml]\n")
    problems = lint_files([broken, child])
    assert [(p.path, p.line, p.rule_id) for p in problems] == [(str(broken), 4, "a")]

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from cvat_ext.cli.functions import group
from cvat_ext.functions.dev.lint import find_function_yamls, lint_config, lint_paths

REPO = Path(__file__).resolve().parents[3]

SKELETON = {
    "id": 2,
    "name": "pose",
    "type": "skeleton",
    "sublabels": [{"id": 0, "name": "head", "type": "points"}, {"id": 1, "name": "foot", "type": "points"}],
    "svg": '<circle data-label-name="head"></circle><circle data-label-name="foot"></circle>',
}
LABELS = [
    {"id": 0, "name": "car", "type": "rectangle"},
    {"id": 1, "name": "sign", "attributes": [{"name": "kind", "input_type": "select", "values": ["a", "b"]}]},
    SKELETON,
]


def base(kind: str = "detector") -> dict[str, Any]:
    annotations: dict[str, Any] = {"name": "Test", "type": kind, "version": "1", "spec": json.dumps(LABELS)}
    if kind == "interactor":
        annotations.update(version=2, spec="", min_pos_points=1, startswith_box_optional="true")
    return {
        "metadata": {"name": "test-fn", "namespace": "cvat", "annotations": annotations},
        "spec": {
            "description": "a test function",
            "runtime": "python:3.11",
            "handler": "main:handler",
            "eventTimeout": "30s",
            "triggers": {"http": {"kind": "http", "numWorkers": 1, "attributes": {"maxRequestBodySize": 33554432}}},
            "build": {
                "directives": {
                    "preCopy": [
                        {
                            "kind": "RUN",
                            "value": "curl -fsSLO https://example.org/w/model-0123abcd.pth && "
                            "echo '0123abcd  model-0123abcd.pth' | sha256sum -c -",
                        }
                    ]
                }
            },
        },
    }


def set_path(doc: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    node = out
    keys = dotted.split(".")
    for key in keys[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return out


_DELETE = object()


def spec_with(labels: list[Any]) -> str:
    return json.dumps(labels)


def errors(doc: Any, **kw: Any) -> list[str]:
    return [f"{i.where}: {i.message}" for i in lint_config(doc, **kw) if i.severity == "error"]


@pytest.mark.parametrize("kind", ["detector", "interactor"])
def test_valid_configs_have_no_errors(kind: str) -> None:
    assert errors(base(kind)) == []


@pytest.mark.parametrize(
    ("dotted", "value", "expected"),
    [
        ("spec.description", _DELETE, "spec.description: missing"),
        ("metadata.name", "bad name!", "metadata.name"),
        ("metadata.annotations.type", "classifier", "is not one of detector"),
        ("metadata.annotations.type", _DELETE, "'' is not one of"),
        ("metadata.annotations.version", "one", "is not an integer"),
        ("metadata.annotations.min_pos_points", "x", "min_pos_points"),
        ("metadata.annotations.startswith_box", "false", "read by CVAT as True"),
        ("metadata.annotations.startswith_box", False, "read by CVAT as True"),
        ("metadata.annotations.startswith_box_optional", "0", "read by CVAT as True"),
        ("metadata.annotations.spec", "[{", "not valid JSON"),
        ("metadata.annotations.spec", '{"a": 1}', "expected a JSON list"),
        ("metadata.annotations.spec", "", "must declare its labels"),
        ("metadata.annotations.spec", spec_with([{"type": "rectangle"}]), "missing 'name'"),
        ("metadata.annotations.spec", spec_with([{"name": "a", "type": "box"}]), "type 'box'"),
        ("metadata.annotations.spec", spec_with([{"name": "a"}, {"name": "a"}]), "duplicate label name 'a'"),
        (
            "metadata.annotations.spec",
            spec_with([{"name": "a", "id": 1}, {"name": "b", "id": 1}]),
            "duplicate label ids",
        ),
        ("metadata.annotations.spec", spec_with([{"name": "a", "id": "1"}]), "must be an integer"),
        (
            "metadata.annotations.spec",
            spec_with([{"name": "a", "attributes": [{"name": "c", "values": ["x"]}]}]),
            "missing 'input_type'",
        ),
        (
            "metadata.annotations.spec",
            spec_with([{"name": "a", "attributes": [{"name": "c", "input_type": "select"}]}]),
            "missing 'values'",
        ),
        (
            "metadata.annotations.spec",
            spec_with([{"name": "a", "attributes": [{"name": "n", "input_type": "number", "values": ["0", "9"]}]}]),
            "['min', 'max', 'step']",
        ),
        (
            "metadata.annotations.spec",
            spec_with([{"name": "a", "attributes": [{"name": "c", "input_type": "text", "values": []}] * 2}]),
            "duplicate attribute name 'c'",
        ),
        ("metadata.annotations.spec", spec_with([{k: v for k, v in SKELETON.items() if k != "svg"}]), "without 'svg'"),
        (
            "metadata.annotations.spec",
            spec_with([{k: v for k, v in SKELETON.items() if k != "sublabels"}]),
            "without 'sublabels'",
        ),
        ("metadata.annotations.spec", spec_with([{**SKELETON, "svg": "<circle/>"}]), "do not match the sublabels"),
        ("spec.eventTimeout", _DELETE, "eventTimeout: missing"),
        ("spec.eventTimeout", "soon", "not a duration"),
        ("spec.triggers.http.numWorkers", _DELETE, "numWorkers: missing"),
        ("spec.triggers.http.numWorkers", 0, "not a positive integer"),
        ("spec.triggers.http.attributes", {}, "maxRequestBodySize: missing"),
        ("spec.triggers", {}, "no http trigger"),
        ("spec.handler", "main", "not 'module:function'"),
        (
            "spec.build.directives.preCopy",
            [{"kind": "RUN", "value": "wget https://example.org/sam_vit_h_4b8939.pth"}],
            "downloads sam_vit_h_4b8939.pth without a sha256 check",
        ),
        (
            "spec.build.directives.preCopy",
            [{"kind": "ADD", "value": "https://example.org/m.onnx /opt/m.onnx"}],
            "downloads m.onnx",
        ),
    ],
)
def test_each_pitfall_is_an_error(dotted: str, value: Any, expected: str) -> None:
    found = errors(set_path(base(), dotted, value))
    assert any(expected in e for e in found), found


def test_interactor_version_below_two_is_an_error() -> None:
    doc = set_path(base("interactor"), "metadata.annotations.version", "1")
    assert any("version >= 2" in e for e in errors(doc))
    no_version = set_path(base("interactor"), "metadata.annotations.version", _DELETE)
    assert any("version >= 2" in e for e in errors(no_version))


def test_gpu_file_needs_gpu_limit() -> None:
    assert any("nvidia.com/gpu" in e for e in errors(base(), path="x/function-gpu.yaml"))
    doc = set_path(base(), "spec.resources", {"limits": {"nvidia.com/gpu": 1}})
    assert errors(doc, path="x/function-gpu.yaml") == []
    warnings = [i.where for i in lint_config(doc, path="x/function-gpu.yaml") if i.severity == "warning"]
    assert warnings == ["spec.env"]  # no NVIDIA_VISIBLE_DEVICES and no NVIDIA base image
    doc = set_path(doc, "spec.env", [{"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"}])
    assert lint_config(doc, path="x/function-gpu.yaml") == []


def test_sha256_check_in_a_later_directive_counts() -> None:
    steps = [
        {"kind": "RUN", "value": "wget -q https://example.org/w.pth"},
        {"kind": "RUN", "value": "echo 'abc  w.pth' | sha256sum -c -"},
    ]
    assert errors(set_path(base(), "spec.build.directives.preCopy", steps)) == []
    assert errors(set_path(base(), "spec.build.directives.preCopy", [{"kind": "RUN", "value": "pip install x"}])) == []


def test_python_310_runtime_is_a_warning() -> None:
    issues = lint_config(set_path(base(), "spec.runtime", "python:3.10"))
    assert [i.severity for i in issues] == ["warning"]


def test_cpu_gpu_pair_must_declare_same_annotations(tmp_path: Path) -> None:
    gpu = set_path(base(), "spec.resources", {"limits": {"nvidia.com/gpu": 1}})
    (tmp_path / "function.yaml").write_text(yaml.safe_dump(base()))
    (tmp_path / "function-gpu.yaml").write_text(yaml.safe_dump(gpu))
    assert [i for i in lint_paths([tmp_path]) if i.severity == "error"] == []
    gpu = set_path(gpu, "metadata.annotations.spec", spec_with(LABELS[:1]))
    (tmp_path / "function-gpu.yaml").write_text(yaml.safe_dump(gpu))
    found = [i for i in lint_paths([tmp_path]) if i.severity == "error"]
    assert [i.where for i in found] == ["metadata.annotations.spec"]


def test_yaml_syntax_error_is_reported(tmp_path: Path) -> None:
    (tmp_path / "function.yaml").write_text("metadata: [unclosed\n")
    found = lint_paths([tmp_path])
    assert found and found[0].severity == "error" and "cannot read YAML" in found[0].message


def test_every_function_yaml_in_the_repo_passes() -> None:
    files = find_function_yamls(REPO / "serverless")
    assert files, "no function yaml found"
    result = CliRunner().invoke(group, ["lint", *map(str, files)])
    assert result.exit_code == 0, result.output
    assert f"{len(files)} files: 0 errors" in result.output


def test_cli_lint_fails_on_error(tmp_path: Path) -> None:
    (tmp_path / "function.yaml").write_text(yaml.safe_dump(set_path(base(), "spec.description", _DELETE)))
    result = CliRunner().invoke(group, ["lint", str(tmp_path)])
    assert result.exit_code == 1
    assert "spec.description" in result.output


@pytest.mark.parametrize(
    ("dotted", "value", "where"),
    [
        ("spec.triggers", ["http"], "spec.triggers"),
        ("spec.env", {"A": "1"}, "spec.env"),
        ("metadata.annotations", ["type"], "metadata.annotations"),
        ("metadata", _DELETE, "metadata"),
    ],
)
def test_structure_errors_come_from_the_runtime_model(tmp_path: Path, dotted: str, value: Any, where: str) -> None:
    """The lint and the runtime parse with one model (FunctionYaml): the same file fails both, at the same key."""
    from cvat_ext.errors import ConfigError
    from cvat_ext.functions.spec import load_function_config

    doc = set_path(base(), dotted, value)
    assert any(e.startswith(f"{where}: ") for e in errors(doc)), errors(doc)
    path = tmp_path / "function.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=rf"function\.yaml: {where}"):
        load_function_config(path)

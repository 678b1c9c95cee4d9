from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cvat_ext.errors import ConfigError
from cvat_ext.functions.interface import LabelSpec, labels_by_id
from cvat_ext.functions.spec import (
    FUNCTION_YAML_ENV,
    annotation_str,
    function_yaml_path,
    load_function_config,
    parse_label_specs,
    read_labels,
)

REPO = Path(__file__).resolve().parents[2]
SPEC = [
    {
        "id": 0,
        "name": "car",
        "type": "rectangle",
        "attributes": [{"name": "c", "input_type": "select", "values": ["a"]}],
    },
    {"name": "person"},
    {
        "id": 3,
        "name": "pose",
        "type": "skeleton",
        "sublabels": [{"id": 0, "name": "head", "type": "points"}],
        "svg": "<x/>",
    },
]


def write_yaml(path: Path, spec: object) -> Path:
    doc = {
        "metadata": {"name": "fn", "annotations": {"type": "detector", "spec": json.dumps(spec), "flag": True}},
        "spec": {"description": "d"},
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def test_read_labels_and_round_trip(tmp_path: Path) -> None:
    labels = read_labels(write_yaml(tmp_path / "function.yaml", SPEC))
    assert [(lb.name, lb.type, lb.id) for lb in labels] == [
        ("car", "rectangle", 0),
        ("person", "any", None),
        ("pose", "skeleton", 3),
    ]
    assert labels[0].attributes[0].values == ("a",)
    assert labels[2].sublabels == (LabelSpec("head", "points", 0),)
    assert [lb.to_json() for lb in labels] == [SPEC[0], {"name": "person", "type": "any"}, SPEC[2]]
    assert set(labels_by_id(labels)) == {0, 3}


def test_annotations_are_strings_as_nuclio_stores_them(tmp_path: Path) -> None:
    cfg = load_function_config(write_yaml(tmp_path / "function.yaml", SPEC))
    assert cfg.name == "fn" and cfg.kind == "detector" and cfg.annotations["flag"] == "true"
    assert annotation_str(None) == "" and annotation_str(2) == "2" and annotation_str(False) == "false"


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("[{", "not valid JSON"),
        ('{"a": 1}', "JSON list"),
        ([{"type": "rectangle"}], "string 'name'"),
        ([{"name": "a", "attributes": [{"name": "x"}]}], "needs name, input_type and values"),
        ([{"name": "a", "id": "1"}], "must be an integer"),
    ],
)
def test_bad_spec(spec: object, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        parse_label_specs(spec if isinstance(spec, str) else json.dumps(spec))


def test_empty_spec_is_no_labels() -> None:
    assert parse_label_specs("") == () and parse_label_specs(None) == ()


def test_function_yaml_path_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FUNCTION_YAML_ENV, raising=False)
    main_py = tmp_path / "main.py"
    main_py.write_text("")
    expected = (
        Path("/opt/nuclio/function.yaml") if Path("/opt/nuclio/function.yaml").is_file() else tmp_path / "function.yaml"
    )
    assert function_yaml_path(main_py) == expected
    monkeypatch.setenv(FUNCTION_YAML_ENV, str(tmp_path / "other.yaml"))
    assert function_yaml_path(main_py) == tmp_path / "other.yaml"


def test_missing_or_broken_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_function_config(tmp_path / "nope.yaml")
    (tmp_path / "f.yaml").write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_function_config(tmp_path / "f.yaml")
    (tmp_path / "g.yaml").write_text("metadata: {annotations: {}}\n")
    with pytest.raises(ConfigError, match=r"metadata\.name"):
        load_function_config(tmp_path / "g.yaml")


def test_repo_detectors_declare_ids_for_every_label() -> None:
    for path in sorted((REPO / "serverless").rglob("function*.yaml")):
        cfg = load_function_config(path)
        if cfg.kind == "detector":
            assert cfg.labels and all(lb.id is not None for lb in cfg.labels), path

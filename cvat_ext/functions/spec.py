"""A function's own ``function.yaml``: its metadata and the labels it declares in ``spec``.

Nuclio copies the function folder to ``/opt/nuclio``; CVAT's handlers read their labels from
``/opt/nuclio/function.yaml`` (``metadata.annotations.spec``, a JSON string). Locally (tests, the
gateway) the same file is read next to ``main.py``. The label JSON follows contracts §1.4:
``[{"id", "name", "type", "attributes"?, "sublabels"?, "svg"?}]``; ``id`` is the model's class index.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cvat_ext.errors import ConfigError

__all__ = [
    "NUCLIO_FUNCTION_YAML",
    "AttributeSpecDecl",
    "FunctionConfig",
    "LabelSpec",
    "annotation_str",
    "function_yaml_path",
    "labels_by_id",
    "load_function_config",
    "parse_label_specs",
    "read_labels",
]

NUCLIO_FUNCTION_YAML = Path("/opt/nuclio/function.yaml")
#: env var that overrides where the function reads its yaml (tests, unusual images)
FUNCTION_YAML_ENV = "CVAT_EXT_FUNCTION_YAML"


@dataclass(frozen=True, slots=True)
class AttributeSpecDecl:
    """A declared label attribute: ``input_type`` number|select|radio|checkbox|text, ``values`` strings."""

    name: str
    input_type: str
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LabelSpec:
    """One declared label. ``id`` is the model class index (None when not given)."""

    name: str
    type: str = "any"
    id: int | None = None
    attributes: tuple[AttributeSpecDecl, ...] = ()
    sublabels: tuple[LabelSpec, ...] = ()
    svg: str = ""

    def to_json(self) -> dict[str, Any]:
        """The spec JSON object of this label (as written into ``metadata.annotations.spec``)."""
        out: dict[str, Any] = {}
        if self.id is not None:
            out["id"] = self.id
        out["name"] = self.name
        out["type"] = self.type
        if self.attributes:
            out["attributes"] = [
                {"name": a.name, "input_type": a.input_type, "values": list(a.values)} for a in self.attributes
            ]
        if self.type == "skeleton":
            out["sublabels"] = [s.to_json() for s in self.sublabels]
            out["svg"] = self.svg
        return out


@dataclass(frozen=True, slots=True)
class FunctionConfig:
    """The parts of a function.yaml the runtime uses; ``raw`` is the whole parsed document."""

    name: str
    kind: str
    labels: tuple[LabelSpec, ...]
    annotations: Mapping[str, str]
    raw: Mapping[str, Any] = field(repr=False)


def function_yaml_path(near: str | os.PathLike[str] | None = None) -> Path:
    """Where this function's yaml is: ``$CVAT_EXT_FUNCTION_YAML``, else ``/opt/nuclio/function.yaml``
    when it exists (inside Nuclio), else ``function.yaml`` next to ``near`` (a file or folder)."""
    env = os.environ.get(FUNCTION_YAML_ENV)
    if env:
        return Path(env)
    if NUCLIO_FUNCTION_YAML.is_file():
        return NUCLIO_FUNCTION_YAML
    if near is None:
        return NUCLIO_FUNCTION_YAML
    base = Path(near)
    return (base if base.is_dir() else base.parent) / "function.yaml"


def annotation_str(value: Any) -> str:
    """An annotation value as Nuclio stores it (string->string; YAML booleans become ``true``/``false``)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _label(d: Any, where: str) -> LabelSpec:
    if not isinstance(d, Mapping) or not isinstance(d.get("name"), str):
        raise ConfigError(f"{where}: expected an object with a string 'name', got {d!r:.80}")
    attrs = []
    for j, a in enumerate(d.get("attributes") or ()):
        if not isinstance(a, Mapping) or "name" not in a or "input_type" not in a or "values" not in a:
            raise ConfigError(f"{where} attribute {j}: needs name, input_type and values")
        attrs.append(AttributeSpecDecl(str(a["name"]), str(a["input_type"]), tuple(str(v) for v in a["values"])))
    sublabels = tuple(_label(s, f"{where} sublabel {k}") for k, s in enumerate(d.get("sublabels") or ()))
    raw_id = d.get("id")
    if raw_id is not None and (not isinstance(raw_id, int) or isinstance(raw_id, bool)):
        raise ConfigError(f"{where}: label id must be an integer, got {raw_id!r}")
    return LabelSpec(
        name=d["name"],
        type=str(d.get("type", "any")),
        id=raw_id,
        attributes=tuple(attrs),
        sublabels=sublabels,
        svg=str(d.get("svg", "")),
    )


def parse_label_specs(spec: str | Sequence[Any] | None, *, where: str = "spec") -> tuple[LabelSpec, ...]:
    """Parse ``metadata.annotations.spec`` (JSON text or an already parsed list)."""
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        return ()
    if isinstance(spec, str):
        try:
            data = json.loads(spec)
        except ValueError as exc:
            raise ConfigError(f"{where}: not valid JSON ({exc})") from exc
    else:
        data = spec
    if not isinstance(data, list):
        raise ConfigError(f"{where}: expected a JSON list of labels, got {type(data).__name__}")
    return tuple(_label(d, f"{where} label {i}") for i, d in enumerate(data))


def load_function_config(path: str | os.PathLike[str]) -> FunctionConfig:
    """Parse a function.yaml into a :class:`FunctionConfig`; problems -> ConfigError naming the file."""
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{p}: cannot read function yaml ({exc})") from exc
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{p}: expected a YAML mapping at the top")
    metadata = raw.get("metadata") or {}
    annotations = {str(k): annotation_str(v) for k, v in (metadata.get("annotations") or {}).items()}
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{p}: metadata.name is missing")
    return FunctionConfig(
        name=name,
        kind=annotations.get("type", ""),
        labels=parse_label_specs(annotations.get("spec"), where=f"{p} spec"),
        annotations=annotations,
        raw=raw,
    )


def read_labels(path: str | os.PathLike[str] | None = None) -> tuple[LabelSpec, ...]:
    """The labels this function declares; ``path`` defaults to :func:`function_yaml_path`."""
    return load_function_config(function_yaml_path() if path is None else path).labels


def labels_by_id(labels: Sequence[LabelSpec]) -> dict[int, LabelSpec]:
    """``{class id: label}`` for the labels that carry an id (what a model maps its outputs with)."""
    return {label.id: label for label in labels if label.id is not None}

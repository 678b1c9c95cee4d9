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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cvat_ext.errors import ConfigError
from cvat_ext.functions.interface import AttributeSpecDecl, InteractorFunctionSpec, LabelSpec

__all__ = [
    "FUNCTION_YAML_ENV",
    "NUCLIO_FUNCTION_YAML",
    "FunctionYaml",
    "HttpTrigger",
    "annotation_str",
    "function_yaml_path",
    "load_function_config",
    "parse_label_specs",
    "read_function_yaml",
    "read_labels",
]

NUCLIO_FUNCTION_YAML = Path("/opt/nuclio/function.yaml")
#: env var that overrides where the function reads its yaml (tests, unusual images)
FUNCTION_YAML_ENV = "CVAT_EXT_FUNCTION_YAML"
#: Nuclio's default request body limit when the trigger sets none
DEFAULT_MAX_BODY = 32 * 2**20


class EnvVar(BaseModel):
    """One ``spec.env`` item: ``{name, value}`` (``valueFrom`` is Kubernetes-only)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(min_length=1)
    value: Any = None
    value_from: Any = Field(default=None, alias="valueFrom")


class Trigger(BaseModel):
    """One ``spec.triggers`` entry. Values are kept as written; :meth:`FunctionYaml.http` checks them."""

    model_config = ConfigDict(extra="allow", frozen=True)

    kind: str = ""
    numWorkers: Any = None
    maxWorkers: Any = None
    workerAvailabilityTimeoutMilliseconds: Any = None
    attributes: dict[str, Any] = Field(default_factory=dict)


class FunctionSection(BaseModel):
    """``spec``: what CVAT, the runtime and the lint read; Nuclio's other keys are kept as extras."""

    model_config = ConfigDict(extra="allow", frozen=True)

    description: Any = None
    handler: Any = "main:handler"
    runtime: Any = ""
    eventTimeout: Any = None
    env: list[EnvVar] = Field(default_factory=list)
    triggers: dict[str, Trigger] = Field(default_factory=dict)
    resources: dict[str, Any] = Field(default_factory=dict)
    build: dict[str, Any] = Field(default_factory=dict)


class Metadata(BaseModel):
    """``metadata``; annotations become strings as Nuclio stores them (``true`` -> ``"true"``)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = ""
    namespace: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    @field_validator("annotations", mode="before")
    @classmethod
    def _as_strings(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(k): annotation_str(v) for k, v in value.items()}
        return value


def _positive_int(value: Any, where: str, default: int) -> int:
    """``value`` as a positive int (Nuclio accepts ``"2"``), ``default`` when left out."""
    if value is None:
        return default
    try:
        number = int(annotation_str(value))
    except ValueError:
        number = 0
    if isinstance(value, bool) or number < 1:
        raise ConfigError(f"{where}: {value!r} is not a positive integer")
    return number


@dataclass(frozen=True, slots=True)
class HttpTrigger:
    """The HTTP trigger's settings the runtime honours (Nuclio's defaults where left out)."""

    num_workers: int = 1
    max_body_bytes: int = DEFAULT_MAX_BODY
    #: how long a request waits for a free worker before 503 (Nuclio's default 10 s)
    worker_availability_timeout_s: float = 10.0


class FunctionYaml(BaseModel):
    """A function.yaml, the one parsed form used by the runtime, ``functions serve`` and the lint.

    Structure is checked here (a list where a mapping belongs is a validation error naming the
    key); what CVAT makes of the values (``bool("false")``, label JSON) is the lint's business.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    metadata: Metadata
    spec: FunctionSection = Field(default_factory=FunctionSection)

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def kind(self) -> str:
        """``detector`` | ``interactor`` | ``tracker`` | ``reid`` (as written; the lint checks it)."""
        return self.metadata.annotations.get("type", "")

    @property
    def annotations(self) -> Mapping[str, str]:
        return self.metadata.annotations

    @property
    def labels(self) -> tuple[LabelSpec, ...]:
        """The declared labels (``metadata.annotations.spec``); bad JSON -> ConfigError."""
        return parse_label_specs(self.metadata.annotations.get("spec"), where=f"function {self.name} spec")

    @property
    def interactor(self) -> InteractorFunctionSpec:
        """What CVAT's UI reads from an interactor's annotations (ints -> ConfigError when not ints)."""
        return InteractorFunctionSpec.from_annotations(self.metadata.annotations, where=f"function {self.name}")

    def env_values(self, *, where: str = "function.yaml") -> dict[str, str]:
        """``spec.env`` as ``{name: value}`` strings (``valueFrom`` -> ConfigError: Kubernetes only)."""
        out: dict[str, str] = {}
        for i, item in enumerate(self.spec.env):
            if item.value_from is not None:
                raise ConfigError(f"{where}: spec.env[{i}] {item.name}: valueFrom needs Kubernetes, give a value")
            out[item.name] = annotation_str(item.value)
        return out

    def http(self, *, where: str = "function.yaml") -> HttpTrigger:
        """The first HTTP trigger's settings; a value that is not a positive integer -> ConfigError."""
        for name, trigger in self.spec.triggers.items():
            if trigger.kind != "http":
                continue
            at = f"{where}: spec.triggers.{name}"
            timeout_ms = _positive_int(
                trigger.workerAvailabilityTimeoutMilliseconds, f"{at}.workerAvailabilityTimeoutMilliseconds", 10_000
            )
            max_body = trigger.attributes.get("maxRequestBodySize")
            return HttpTrigger(
                num_workers=_positive_int(trigger.numWorkers, f"{at}.numWorkers", 1),
                max_body_bytes=_positive_int(max_body, f"{at}.attributes.maxRequestBodySize", DEFAULT_MAX_BODY),
                worker_availability_timeout_s=timeout_ms / 1000.0,
            )
        return HttpTrigger()

    @classmethod
    def parse(cls, raw: Any, *, where: str = "function.yaml") -> FunctionYaml:
        """Validate a parsed YAML document; problems -> one ConfigError naming ``where`` and the key."""
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{where}: expected a YAML mapping at the top")
        try:
            config = cls.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"{where}: {loc}: {first['msg']}") from exc
        if not config.metadata.name:
            raise ConfigError(f"{where}: metadata.name is missing")
        return config


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


def read_function_yaml(path: str | os.PathLike[str]) -> Any:
    """The parsed YAML document of ``path``; unreadable or not YAML -> ConfigError naming the file."""
    p = Path(path)
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{p}: cannot read YAML ({exc})") from exc


def load_function_config(path: str | os.PathLike[str]) -> FunctionYaml:
    """Parse a function.yaml into a :class:`FunctionYaml`; problems -> ConfigError naming the file."""
    config = FunctionYaml.parse(read_function_yaml(path), where=str(path))
    config.labels  # noqa: B018 (a bad label spec is an error of loading, not of the first call)
    return config


def read_labels(path: str | os.PathLike[str] | None = None) -> tuple[LabelSpec, ...]:
    """The labels this function declares; ``path`` defaults to :func:`function_yaml_path`."""
    return load_function_config(function_yaml_path() if path is None else path).labels

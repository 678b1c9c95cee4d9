"""Checks a Nuclio ``function.yaml`` for what CVAT 2.73 mis-parses or what breaks at run time.

What CVAT does with the file (contracts §1.3/§1.4), and so what is an **error** here:

* ``metadata.name`` is the function id used in URLs: ``[a-zA-Z0-9_.-]+``;
* ``metadata.annotations.type`` must be detector|interactor|tracker|reid, or CVAT skips the function;
* ``annotations.version`` is read with ``int()``; the UI refuses interactors below version 2;
* ``min_pos_points``/``min_neg_points`` are read with ``int()``;
* ``startswith_box``/``startswith_box_optional`` are read with ``bool(str)``: ``"false"`` is True.
  Omit the key to mean false;
* ``spec.description`` is indexed directly: missing -> KeyError;
* ``annotations.spec`` is ``json.loads``-ed; a label without ``name``, an attribute without
  ``input_type``/``values``, a skeleton without ``sublabels``/``svg`` raise KeyError and make
  ``GET /api/lambda/functions`` answer 500 for **every** function; duplicate label or attribute
  names make CVAT skip the function.

Deployment hygiene this project requires (also errors): an HTTP trigger with ``numWorkers`` and
``attributes.maxRequestBodySize``, ``spec.eventTimeout``, a ``nvidia.com/gpu`` limit in GPU files,
a sha256 check on every build directive that downloads model weights, and the CPU and GPU files
of one function declaring the same annotations (the handler reads the labels from
``/opt/nuclio/function.yaml`` whichever file was deployed). Warnings flag legal but suspicious
things (python runtime below 3.11, several workers sharing one GPU, labels an interactor ignores).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from cvat_ext.errors import ConfigError
from cvat_ext.functions.spec import FunctionSection, FunctionYaml, Metadata, annotation_str, read_function_yaml

__all__ = ["LintIssue", "find_function_yamls", "lint_config", "lint_file", "lint_paths"]

Severity = Literal["error", "warning"]

NAME_RE = re.compile(r"^[a-zA-Z0-9_.-]+$")
DURATION_RE = re.compile(r"^\d+(\.\d+)?(ns|us|ms|s|m|h)$")
URL_RE = re.compile(r"https?://[^\s'\"|;&)]+")
KINDS = ("detector", "interactor", "tracker", "reid")
LABEL_TYPES = ("rectangle", "polygon", "polyline", "points", "ellipse", "cuboid", "mask", "skeleton", "tag", "any")
INPUT_TYPES = ("number", "select", "radio", "checkbox", "text")
BOOL_ANNOTATIONS = ("startswith_box", "startswith_box_optional")
INT_ANNOTATIONS = ("min_pos_points", "min_neg_points")
WEIGHT_EXTS = (
    ".pth",
    ".pt",
    ".onnx",
    ".bin",
    ".safetensors",
    ".ckpt",
    ".weights",
    ".caffemodel",
    ".pb",
    ".h5",
    ".tflite",
)
SVG_LABEL_RE = re.compile(r'data-label-name="([^"]*)"')


@dataclass(frozen=True, slots=True)
class LintIssue:
    """One finding: ``where`` is a dotted path inside the file (``metadata.annotations.spec[3]``)."""

    path: str
    severity: Severity
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.severity}: {self.where}: {self.message}"


class _Collector:
    def __init__(self, path: str) -> None:
        self.path = path
        self.issues: list[LintIssue] = []

    def error(self, where: str, message: str) -> None:
        self.issues.append(LintIssue(self.path, "error", where, message))

    def warning(self, where: str, message: str) -> None:
        self.issues.append(LintIssue(self.path, "warning", where, message))


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _is_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    try:
        int(annotation_str(value))
    except ValueError:
        return False
    return True


def _check_metadata(config: FunctionYaml, out: _Collector) -> tuple[str, Mapping[str, str]]:
    metadata: Metadata = config.metadata
    name = metadata.name
    if not NAME_RE.match(name):
        out.error("metadata.name", f"{name!r} is not a CVAT function id (letters, digits, '_', '.', '-')")
    if "annotations" not in metadata.model_fields_set:
        out.error("metadata.annotations", "missing: CVAT reads type, name, version and spec from it")
        return "", {}
    annotations = metadata.annotations
    kind = annotation_str(annotations.get("type"))
    if kind not in KINDS:
        out.error("metadata.annotations.type", f"{kind!r} is not one of {', '.join(KINDS)}: CVAT skips the function")
    if "version" in annotations:
        if not _is_int(annotations["version"]):
            out.error("metadata.annotations.version", f"{annotations['version']!r} is not an integer")
        elif kind == "interactor" and int(annotation_str(annotations["version"])) < 2:
            out.error("metadata.annotations.version", "interactors need version >= 2 (the UI refuses older ones)")
    elif kind == "interactor":
        out.error("metadata.annotations.version", "missing: interactors need version >= 2 (default is 1)")
    for key in INT_ANNOTATIONS:
        if key in annotations and not _is_int(annotations[key]):
            out.error(f"metadata.annotations.{key}", f"{annotations[key]!r} is not an integer")
    for key in BOOL_ANNOTATIONS:
        if key not in annotations:
            continue
        text = annotation_str(annotations[key])
        if text.lower() in ("false", "0", "no", "off", "n"):
            out.error(
                f"metadata.annotations.{key}",
                f"{text!r} is read by CVAT as True (bool of a non-empty string); omit the key to mean false",
            )
        elif text == "":
            out.warning(f"metadata.annotations.{key}", "empty value reads as False; omit the key instead")
        elif text.lower() != "true":
            out.warning(f"metadata.annotations.{key}", f"{text!r} reads as True; write 'true'")
    if "name" not in annotations:
        out.warning("metadata.annotations.name", "missing: the UI shows the function id instead")
    return kind, annotations


def _check_attributes(attrs: Any, where: str, out: _Collector) -> None:
    if attrs is None:
        return
    if not isinstance(attrs, list):
        out.error(where, f"expected a list, got {type(attrs).__name__}")
        return
    seen: set[str] = set()
    for j, attr in enumerate(attrs):
        at = f"{where}[{j}]"
        if not isinstance(attr, Mapping):
            out.error(at, "expected an object")
            continue
        for key in ("name", "input_type", "values"):
            if key not in attr:
                out.error(at, f"missing '{key}': CVAT raises KeyError and the whole function list fails (500)")
        name = attr.get("name")
        if isinstance(name, str):
            if name in seen:
                out.error(at, f"duplicate attribute name {name!r}: CVAT skips the function")
            seen.add(name)
        input_type = attr.get("input_type")
        if "input_type" in attr and input_type not in INPUT_TYPES:
            out.error(at, f"input_type {input_type!r} is not one of {', '.join(INPUT_TYPES)}")
        values = attr.get("values")
        if "values" in attr and not (isinstance(values, list) and all(isinstance(v, str) for v in values)):
            out.error(at, "values must be a list of strings")
        elif input_type == "number" and isinstance(values, list):
            try:
                if len(values) != 3:
                    raise ValueError
                [float(v) for v in values]
            except ValueError:
                out.error(at, f"number attribute values must be ['min', 'max', 'step'], got {values!r}")


def _check_label(label: Any, where: str, out: _Collector, *, sublabel: bool = False) -> str | None:
    if not isinstance(label, Mapping):
        out.error(where, "expected an object")
        return None
    name = label.get("name")
    if not isinstance(name, str) or not name:
        out.error(where, "missing 'name': CVAT raises KeyError and the whole function list fails (500)")
        name = None
    label_type = label.get("type", "any")
    if label_type not in LABEL_TYPES:
        out.error(where, f"type {label_type!r} is not one of {', '.join(LABEL_TYPES)}")
    if sublabel and label_type not in ("points", "any"):
        out.warning(where, f"skeleton elements are points, got type {label_type!r}")
    raw_id = label.get("id")
    if raw_id is not None and (not isinstance(raw_id, int) or isinstance(raw_id, bool)):
        out.error(where, f"id {raw_id!r} must be an integer")
    _check_attributes(label.get("attributes"), f"{where}.attributes", out)
    if label_type == "skeleton":
        _check_skeleton(label, where, out)
    return name


def _check_skeleton(label: Mapping[str, Any], where: str, out: _Collector) -> None:
    sublabels = label.get("sublabels")
    if not isinstance(sublabels, list) or not sublabels:
        out.error(where, "skeleton without 'sublabels': CVAT raises KeyError and the function list fails (500)")
        sublabels = []
    svg = label.get("svg")
    if not isinstance(svg, str) or not svg:
        out.error(where, "skeleton without 'svg': CVAT raises KeyError and the function list fails (500)")
        svg = ""
    names = _check_unique(
        [_check_label(s, f"{where}.sublabels[{k}]", out, sublabel=True) for k, s in enumerate(sublabels)],
        f"{where}.sublabels",
        "sublabel",
        out,
    )
    _check_ids(sublabels, f"{where}.sublabels", out)
    in_svg = SVG_LABEL_RE.findall(svg)
    if svg and sorted(in_svg) != sorted(names):
        out.error(f"{where}.svg", f"data-label-name values {sorted(in_svg)} do not match the sublabels {sorted(names)}")


def _check_unique(names: list[str | None], where: str, what: str, out: _Collector) -> list[str]:
    seen: list[str] = []
    for name in names:
        if name is None:
            continue
        if name in seen:
            out.error(where, f"duplicate {what} name {name!r}: CVAT skips the function")
        seen.append(name)
    return seen


def _check_ids(labels: list[Any], where: str, out: _Collector) -> None:
    ids: list[int] = [d["id"] for d in labels if isinstance(d, Mapping) and isinstance(d.get("id"), int)]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        out.error(where, f"duplicate label ids {dupes}: model classes would map ambiguously")


def _check_spec(kind: str, annotations: Mapping[str, Any], out: _Collector) -> None:
    where = "metadata.annotations.spec"
    text = annotation_str(annotations.get("spec"))
    if not text.strip():
        if kind == "detector":
            out.error(where, "a detector must declare its labels (empty spec: nothing can be mapped)")
        return
    try:
        labels = json.loads(text)
    except ValueError as exc:
        out.error(where, f"not valid JSON ({exc}): CVAT cannot list the function")
        return
    if not isinstance(labels, list):
        out.error(where, f"expected a JSON list of labels, got {type(labels).__name__}")
        return
    if kind in ("interactor", "tracker") and labels:
        out.warning(where, f"{kind}s ignore labels")
    names = [_check_label(label, f"{where}[{i}]", out) for i, label in enumerate(labels)]
    _check_unique(names, where, "label", out)
    _check_ids(labels, where, out)


def _check_spec_section(config: FunctionYaml, out: _Collector, *, gpu: bool) -> None:
    if "spec" not in config.model_fields_set:
        out.error("spec", "missing: CVAT reads spec.description (KeyError otherwise)")
        return
    spec: FunctionSection = config.spec
    if "description" not in spec.model_fields_set:
        out.error("spec.description", "missing: CVAT indexes it directly and fails to list the function")
    elif not isinstance(spec.description, str) or not spec.description.strip():
        out.warning("spec.description", "empty: shown to users in the AI tools dialog")
    handler = spec.handler
    if not isinstance(handler, str) or ":" not in handler:
        out.error("spec.handler", f"{handler!r} is not 'module:function'")
    runtime = str(spec.runtime or "")
    match = re.match(r"^python:3\.(\d+)$", runtime)
    if not match:
        out.warning("spec.runtime", f"{runtime!r} is not a python:3.x runtime")
    elif int(match.group(1)) < 11:
        out.warning("spec.runtime", f"{runtime} is below python:3.11 (cvat-sdk and cvat-ext need >= 3.11)")
    timeout = spec.eventTimeout
    if timeout is None:
        out.error("spec.eventTimeout", "missing: say how long one frame may take (CVAT itself waits 120 s)")
    elif not DURATION_RE.match(str(timeout)):
        out.error("spec.eventTimeout", f"{timeout!r} is not a duration like '30s'")
    _check_triggers(spec, out, gpu=gpu)
    if gpu:
        limits = _mapping(spec.resources.get("limits"))
        if not _is_int(limits.get("nvidia.com/gpu")) or int(annotation_str(limits.get("nvidia.com/gpu"))) < 1:
            out.error("spec.resources.limits", "a GPU function needs 'nvidia.com/gpu: 1'")
        env_names = {e.name for e in spec.env}
        base_image = str(spec.build.get("baseImage", ""))
        if "NVIDIA_VISIBLE_DEVICES" not in env_names and not base_image.startswith(("nvidia/", "nvcr.io/")):
            out.warning("spec.env", "no NVIDIA_VISIBLE_DEVICES on a non-NVIDIA base image: the GPU may stay hidden")
    for i, item in enumerate(spec.env):
        if item.value_from is not None:
            out.warning(f"spec.env[{i}]", f"{item.name}: valueFrom works on Kubernetes only (not `functions serve`)")
    _check_build(spec, out)


def _check_triggers(spec: FunctionSection, out: _Collector, *, gpu: bool) -> None:
    http = [(name, t) for name, t in spec.triggers.items() if t.kind == "http"]
    if not http:
        out.error("spec.triggers", "no http trigger: CVAT invokes functions over HTTP")
        return
    for name, trigger in http:
        where = f"spec.triggers.{name}"
        workers = trigger.numWorkers
        if workers is None:
            hint = " (maxWorkers is the old name)" if trigger.maxWorkers is not None else ""
            out.error(f"{where}.numWorkers", f"missing{hint}: set how many requests run in parallel")
        elif not _is_int(workers) or int(workers) < 1:
            out.error(f"{where}.numWorkers", f"{workers!r} is not a positive integer")
        elif gpu and int(workers) > 1:
            out.warning(f"{where}.numWorkers", f"{workers} workers each load the model onto one GPU")
        body = trigger.attributes.get("maxRequestBodySize")
        if body is None:
            out.error(f"{where}.attributes.maxRequestBodySize", "missing: CVAT sends whole frames as base64")
        elif not _is_int(body) or int(body) < 1:
            out.error(f"{where}.attributes.maxRequestBodySize", f"{body!r} is not a positive byte count")


def _check_build(spec: FunctionSection, out: _Collector) -> None:
    directives = _mapping(spec.build.get("directives"))
    steps: list[tuple[str, str, str]] = []
    for phase in ("preCopy", "postCopy"):
        for k, d in enumerate(directives.get(phase) or []):
            d = _mapping(d)
            steps.append((f"spec.build.directives.{phase}[{k}]", str(d.get("kind", "")), str(d.get("value", ""))))
    for i, (where, kind, value) in enumerate(steps):
        fetches = kind in ("RUN", "ADD") and (
            kind == "ADD" or re.search(r"\b(curl|wget|gdown)\b", value) or "urlretrieve" in value
        )
        if not fetches:
            continue
        weights = [u for u in URL_RE.findall(value) if u.lower().split("?")[0].endswith(WEIGHT_EXTS)]
        if "gdown" in value and not weights:
            weights = ["<gdown download>"]
        for url in weights:
            base = url.rsplit("/", 1)[-1].split("?")[0]
            later = [v for _, _, v in steps[i + 1 :] if "sha256" in v and base in v]
            if "sha256" not in value and "--checksum=sha256:" not in value and not later:
                out.error(where, f"downloads {base} without a sha256 check (add '&& sha256sum -c' or --checksum)")


def _parse(raw: Mapping[str, Any], out: _Collector) -> FunctionYaml | None:
    """The document as :class:`FunctionYaml` (the runtime's model); structure errors -> issues."""
    try:
        return FunctionYaml.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "<root>"
            message = "missing" if err["type"] == "missing" else err["msg"]
            if where == "metadata":
                message += ": CVAT needs metadata.name and metadata.annotations"
            out.error(where, message)
        return None


def lint_config(raw: Any, *, path: str = "<function.yaml>", gpu: bool | None = None) -> list[LintIssue]:
    """Lint one parsed function.yaml; ``gpu`` defaults to "gpu" appearing in the file name."""
    out = _Collector(path)
    if not isinstance(raw, Mapping):
        out.error("<root>", "expected a YAML mapping")
        return out.issues
    config = _parse(raw, out)
    if config is None:
        return out.issues
    is_gpu = "gpu" in Path(path).name if gpu is None else gpu
    kind, annotations = _check_metadata(config, out)
    if annotations:
        _check_spec(kind, annotations, out)
    _check_spec_section(config, out, gpu=is_gpu)
    return out.issues


def _load(path: Path) -> tuple[Any, list[LintIssue]]:
    try:
        return read_function_yaml(path), []
    except ConfigError as exc:
        return None, [LintIssue(str(path), "error", "<file>", str(exc).removeprefix(f"{path}: "))]


def lint_file(path: str | Path) -> list[LintIssue]:
    """Lint one function yaml file."""
    p = Path(path)
    raw, issues = _load(p)
    return issues or lint_config(raw, path=str(p))


def find_function_yamls(root: str | Path) -> list[Path]:
    """Every ``function*.yaml`` below ``root`` (or ``root`` itself when it is a file), sorted."""
    r = Path(root)
    if r.is_file():
        return [r]
    return sorted(p for p in r.rglob("function*.yaml") if p.is_file())


def lint_paths(paths: Iterable[str | Path]) -> list[LintIssue]:
    """Lint files and folders (recursively), plus the CPU/GPU pairs found in the same folder."""
    files = sorted({f for p in paths for f in find_function_yamls(p)})
    issues: list[LintIssue] = []
    for f in files:
        issues.extend(lint_file(f))
    for cpu in (f for f in files if f.name == "function.yaml"):
        gpu = cpu.with_name("function-gpu.yaml")
        if gpu in files:
            issues.extend(_compare_pair(cpu, gpu))
    return issues


def _compare_pair(cpu: Path, gpu: Path) -> list[LintIssue]:
    try:
        a = FunctionYaml.model_validate(read_function_yaml(cpu))
        b = FunctionYaml.model_validate(read_function_yaml(gpu))
    except (ConfigError, ValidationError):
        return []  # each file's own lint reports it
    issues = []
    if a.name != b.name:
        issues.append(
            LintIssue(str(gpu), "warning", "metadata.name", f"differs from {cpu.name}: two functions in CVAT's list")
        )
    ann_a, ann_b = a.annotations, b.annotations
    for key in sorted(set(ann_a) | set(ann_b)):
        va, vb = ann_a.get(key), ann_b.get(key)
        if key == "spec" and va is not None and vb is not None:
            try:
                same = json.loads(va or "[]") == json.loads(vb or "[]")
            except ValueError:
                same = va == vb
        else:
            same = va == vb
        if not same:
            issues.append(
                LintIssue(
                    str(gpu),
                    "error",
                    f"metadata.annotations.{key}",
                    f"differs from {cpu.name}: the handler reads its labels from /opt/nuclio/function.yaml",
                )
            )
    return issues

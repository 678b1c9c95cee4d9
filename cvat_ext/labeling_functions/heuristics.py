"""YAML heuristics: labeling functions written as conditions on candidate features.

::

    labels: [vehicle, person, sign]
    target: object                            # or image: whole images, the votes become tags
    functions:
      - name: big_rectangle_is_vehicle        # "rectangular and larger than X pixels -> vehicle"
        when: {fill: {ge: 0.9}, area: {gt: 5000}}
        vote: vehicle
      - name: detector_person
        when: {det_label: {in: [person, pedestrian]}, det_score: {ge: 0.5}}
        vote: person
      - name: mostly_red_is_sign
        when: {hue_fraction: {hue: [330, 20], ge: 0.4}, hsv_s: {ge: 0.5}}
        vote: sign

``when`` maps a feature (:data:`cvat_ext.labeling_functions.candidates.FEATURES`, or ``det_label``)
to comparisons, all of which must hold: ``lt le gt ge eq ne`` take a number, ``between`` two
numbers (inclusive), ``in``/``not_in`` a list of detector class names (``det_label`` only).
``hue_fraction`` is the share of saturated pixels whose hue lies in ``hue: [lo, hi]`` degrees
(wrapping past 360), compared like any feature. A
feature that is NaN for a candidate (no detector score, pixels not read) fails every comparison:
the LF abstains there. Files are validated on load; an error names the file, function and key.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cvat_ext.errors import ConfigError
from cvat_ext.labeling_functions.candidates import FEATURES, Candidates
from cvat_ext.labeling_functions.functions import LabelingFunction, Target, vote

__all__ = ["load_heuristics"]

_NUMERIC_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
    "eq": operator.eq,
    "ne": operator.ne,
}


class Condition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lt: float | None = None
    le: float | None = None
    gt: float | None = None
    ge: float | None = None
    eq: float | None = None
    ne: float | None = None
    between: tuple[float, float] | None = None
    in_: list[str] | None = Field(default=None, alias="in")
    not_in: list[str] | None = None
    hue: tuple[float, float] | None = None  # hue_fraction only: the hue range in degrees

    @model_validator(mode="after")
    def _not_empty(self) -> Condition:
        if all(getattr(self, k) is None for k in (*_NUMERIC_OPS, "between", "in_", "not_in")):
            raise ValueError("needs at least one of lt, le, gt, ge, eq, ne, between, in, not_in")
        return self


class HeuristicSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")
    when: dict[str, Condition] = Field(min_length=1)
    vote: str

    @field_validator("when")
    @classmethod
    def _known_features(cls, value: dict[str, Condition]) -> dict[str, Condition]:
        for feature, cond in value.items():
            if feature == "hue_fraction":
                if cond.hue is None:
                    raise ValueError("hue_fraction needs hue: [lo, hi] (degrees)")
            elif cond.hue is not None:
                raise ValueError(f"{feature}: hue applies to hue_fraction only")
            if feature not in ("det_label", "hue_fraction") and feature not in FEATURES:
                raise ValueError(f"unknown feature {feature!r}; known: det_label, hue_fraction, {', '.join(FEATURES)}")
            if feature == "det_label" and any(getattr(cond, k) is not None for k in (*_NUMERIC_OPS, "between")):
                raise ValueError("det_label takes in / not_in (class names) only")
            if feature != "det_label" and (cond.in_ is not None or cond.not_in is not None):
                raise ValueError(f"{feature}: in / not_in apply to det_label only")
        return value


class HeuristicFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    labels: list[str] = Field(min_length=1)
    target: Target = "object"
    functions: list[HeuristicSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> HeuristicFile:
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"labels must be unique, got {self.labels}")
        names = [f.name for f in self.functions]
        if len(set(names)) != len(names):
            raise ValueError(f"function names must be unique, got {names}")
        for f in self.functions:
            if f.vote not in self.labels:
                raise ValueError(f"function {f.name!r}: vote {f.vote!r} is not one of labels {self.labels}")
        return self


def _mask(candidates: Candidates, feature: str, cond: Condition) -> npt.NDArray[np.bool_]:
    if feature == "det_label":
        mask = np.ones(len(candidates), dtype=bool)
        if cond.in_ is not None:
            mask &= candidates.det_is(*cond.in_)
        if cond.not_in is not None:
            mask &= ~candidates.det_is(*cond.not_in) & (candidates.det_ids >= 0)
        return mask
    if feature == "hue_fraction":
        assert cond.hue is not None
        values = candidates.hue_fraction(*cond.hue)
    else:
        values = candidates.feature(feature)
    mask = np.isfinite(values) | np.isinf(values)  # NaN fails everything
    for op, fn in _NUMERIC_OPS.items():
        bound = getattr(cond, op)
        if bound is not None:
            with np.errstate(invalid="ignore"):
                mask &= fn(values, bound)
    if cond.between is not None:
        lo, hi = cond.between
        mask &= (values >= lo) & (values <= hi)
    return mask


def _compile(spec: HeuristicSpec, labels: tuple[str, ...], where: str, target: Target) -> LabelingFunction:
    label = labels.index(spec.vote)

    def run(candidates: Candidates) -> npt.NDArray[np.int64]:
        mask = np.ones(len(candidates), dtype=bool)
        for feature, cond in spec.when.items():
            mask &= _mask(candidates, feature, cond)
        return vote(len(candidates), mask, label)

    return LabelingFunction(spec.name, run, labels, source=where, target=target)


def load_heuristics(path: str | Path) -> list[LabelingFunction]:
    """The LFs of a YAML heuristics file (schema in the module header)."""
    file = Path(path)
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{file}: cannot read heuristics ({exc})") from exc
    try:
        parsed = HeuristicFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{file}: {loc}: {first['msg']}") from exc
    labels = tuple(parsed.labels)
    return [_compile(spec, labels, f"yaml:{file.name}", parsed.target) for spec in parsed.functions]

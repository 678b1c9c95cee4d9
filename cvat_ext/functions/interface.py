"""The contract of a cvat-ext function: frozen specs of what it declares, Protocols of what it runs.

Contract first (as cvat-sdk's ``auto_annotation/interface.py``): this module holds only types.

* :class:`LabelSpec` / :class:`AttributeSpecDecl` — a label as a function declares it in
  ``metadata.annotations.spec`` (contracts §1.4); ``id`` is the model's class index;
* :class:`DetectorFunctionSpec` — a detector's labels and thresholds, validated once: every label
  the model can produce has a unique class id;
* :class:`InteractorFunctionSpec` — what CVAT's UI reads from an interactor's annotations
  (``min_pos_points``, ``min_neg_points``, ``startswith_box_optional``, ``help_message``);
* :class:`DetectionModel` — ``model(rgb (H, W, 3) uint8) -> Detections`` (unthresholded scores);
* :class:`Polygonize` — ``(MaskCrop) -> (K, 2) polygon | None`` for ``conv_mask_to_poly``;
* :class:`FunctionModel` / :class:`ModelFactory` — what a Nuclio ``main.py`` hands to
  :func:`~cvat_ext.functions.handler.make_handler`: ``build_model(context) -> model(request) -> JSON``.

Because these are Protocols, a test fake is a plain function or namespace.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from cvat_ext.errors import ConfigError

if TYPE_CHECKING:
    from cvat_ext.models.detections import Detections, MaskCrop

__all__ = [
    "AttributeSpecDecl",
    "DetectionModel",
    "DetectorFunctionSpec",
    "FunctionModel",
    "InteractorFunctionSpec",
    "LabelSpec",
    "ModelFactory",
    "Polygonize",
    "labels_by_id",
]


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


def labels_by_id(labels: Sequence[LabelSpec]) -> dict[int, LabelSpec]:
    """``{class id: label}`` for the labels that carry an id (what a model maps its outputs with)."""
    return {label.id: label for label in labels if label.id is not None}


@dataclass(frozen=True)
class DetectorFunctionSpec:
    """A detector function's declared labels and thresholds.

    ``default_threshold`` applies when CVAT sends no threshold (it omits 0.0 too);
    ``keypoint_thr``: a keypoint scoring below it is sent ``outside``. Labels without an ``id`` are
    declared for CVAT's label matching but never produced.
    """

    labels: tuple[LabelSpec, ...]
    default_threshold: float = 0.5
    keypoint_thr: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(self.labels))
        ids = [label.id for label in self.labels if label.id is not None]
        if not ids:
            raise ConfigError("detector function: no label in the spec carries an 'id' to map model classes")
        seen: dict[int, str] = {}
        for label in self.labels:
            if label.id is None:
                continue
            if label.id in seen:
                raise ConfigError(
                    f"detector function: labels '{seen[label.id]}' and '{label.name}' share id {label.id}"
                )
            seen[label.id] = label.name
        if not 0.0 <= self.default_threshold <= 1.0:
            raise ConfigError(f"detector function: default_threshold {self.default_threshold} is not in [0, 1]")

    @property
    def by_class_id(self) -> dict[int, LabelSpec]:
        """``{class id: label}``: how model outputs map to labels."""
        return labels_by_id(self.labels)


@dataclass(frozen=True)
class InteractorFunctionSpec:
    """What CVAT's UI reads from an interactor's annotations (contracts §1.3).

    ``min_pos_points`` (CVAT's default 1), ``min_neg_points`` (-1: negative points not allowed),
    ``startswith_box_optional`` (the user may start with a box or with points).
    """

    min_pos_points: int = 1
    min_neg_points: int = -1
    startswith_box_optional: bool = False
    help_message: str = ""

    @classmethod
    def from_annotations(cls, annotations: Mapping[str, str], *, where: str = "interactor") -> InteractorFunctionSpec:
        """Read the annotations as CVAT does (``int()``, and ``bool()`` of a non-empty string)."""
        try:
            min_pos = int(annotations.get("min_pos_points", "1"))
            min_neg = int(annotations.get("min_neg_points", "-1"))
        except ValueError as exc:
            raise ConfigError(f"{where}: min_pos_points / min_neg_points must be integers ({exc})") from exc
        return cls(
            min_pos_points=min_pos,
            min_neg_points=min_neg,
            startswith_box_optional=bool(annotations.get("startswith_box_optional", "")),
            help_message=annotations.get("help_message", ""),
        )


class DetectionModel(Protocol):
    """A detector's model: ``(H, W, 3) uint8 RGB -> Detections`` with unthresholded scores."""

    def __call__(self, rgb: npt.NDArray[np.uint8], /) -> Detections: ...


class Polygonize(Protocol):
    """A mask crop as a (K, 2) float polygon in image pixels, or None when it has none."""

    def __call__(self, mask: MaskCrop, /) -> npt.NDArray[np.float64] | None: ...


class FunctionModel(Protocol):
    """What a Nuclio worker runs per event: a validated request -> a JSON-able answer."""

    def __call__(self, request: Any, /) -> Any: ...


class ModelFactory(Protocol):
    """``build_model(context)``: called once per worker by ``init_context``."""

    def __call__(self, context: Any, /) -> FunctionModel: ...

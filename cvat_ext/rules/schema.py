"""Rule file format: the pydantic v2 models a ``qa_rules/*.yaml`` file is validated against.

A rule file (``RuleFile``) is a pack::

    version: 1
    name: driving
    include: [default.yaml]            # paths relative to this file; rules are merged by id
    actions: {error: reject_job, warning: open_issue}
    rules:
      - id: car-min-size               # unique in the resolved pack
        kind: size                     # selects the parameter model below
        severity: error                # error | warning
        scope: {labels: [car]}         # projects / tasks / labels / shape_types; empty = everything
        min_width: 4
    overrides:                         # patch included rules by id (deep merge, re-validated)
      dup-boxes: {severity: warning, iou_thr: 0.9}

Every model forbids unknown keys, so a typo (``min_widht``) is an error naming the file, the line
and the rule id, not a silently ignored bound. Sizes are absolute pixels unless the field name
ends in ``_frac`` (a fraction of the frame's width, height or area).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from cvat_ext.annotations.model import ShapeTypeName
from cvat_ext.qa.findings import Action, Severity

RULE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"

Px = Annotated[float, Field(ge=0)]
Frac = Annotated[float, Field(ge=0, le=1)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Scope(_Model):
    """Where a rule applies. A missing list means "all"; ids/names not present are simply never matched."""

    projects: tuple[int, ...] | None = None
    tasks: tuple[int, ...] | None = None
    labels: tuple[str, ...] | None = Field(default=None, description="label names the rule checks")
    shape_types: tuple[ShapeTypeName, ...] | None = None


class ActionsBySeverity(_Model):
    error: Action = Action.REJECT_JOB
    warning: Action = Action.OPEN_ISSUE

    def for_severity(self, severity: Severity) -> Action:
        return self.error if severity is Severity.ERROR else self.warning


class RuleBase(_Model):
    id: str = Field(pattern=RULE_ID_PATTERN, max_length=100)
    description: str = ""
    severity: Severity = Severity.ERROR
    action: Action | None = Field(default=None, description="overrides the pack's action for this severity")
    enabled: bool = True
    scope: Scope = Scope()


def _check_range(model: BaseModel, *pairs: tuple[str, str]) -> None:
    for low_name, high_name in pairs:
        low, high = getattr(model, low_name), getattr(model, high_name)
        if low is not None and high is not None and low > high:
            raise ValueError(f"{low_name} {low} is greater than {high_name} {high}")


def _require_any(model: BaseModel, names: tuple[str, ...]) -> None:
    if all(getattr(model, n) in (None, [], {}, ()) for n in names):
        raise ValueError(f"give at least one of {', '.join(names)}")


# ----------------------------------------------------------------------------------------------
# extent family: sizes, image bounds, aspect ratio, cuboids


class SizeRule(RuleBase):
    """Width/height/area bounds of each object: pixels and fractions of the frame."""

    kind: Literal["size"]
    min_width: Px | None = None
    max_width: Px | None = None
    min_height: Px | None = None
    max_height: Px | None = None
    min_area: Px | None = None
    max_area: Px | None = None
    min_width_frac: Frac | None = None
    max_width_frac: Frac | None = None
    min_height_frac: Frac | None = None
    max_height_frac: Frac | None = None
    min_area_frac: Frac | None = None
    max_area_frac: Frac | None = None

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        names = tuple(f"{b}_{d}{s}" for s in ("", "_frac") for d in ("width", "height", "area") for b in ("min", "max"))
        _require_any(self, names)
        _check_range(
            self, *((f"min_{d}{s}", f"max_{d}{s}") for s in ("", "_frac") for d in ("width", "height", "area"))
        )
        return self


class OutsideFrameRule(RuleBase):
    """Objects beyond the image: any part (``allow_truncation: false``) or entirely (``true``)."""

    kind: Literal["outside_frame"]
    tolerance_px: Px = 0.0
    allow_truncation: bool = True


class AspectRatioRule(RuleBase):
    """``width / height`` of each object within ``[min_ratio, max_ratio]``."""

    kind: Literal["aspect_ratio"]
    min_ratio: Annotated[float, Field(gt=0)] | None = None
    max_ratio: Annotated[float, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        _require_any(self, ("min_ratio", "max_ratio"))
        _check_range(self, ("min_ratio", "max_ratio"))
        return self


class CuboidSizeRule(RuleBase):
    """Projected size of cuboids: front-face width/height and front-to-back depth, in pixels."""

    kind: Literal["cuboid_size"]
    min_width: Px | None = None
    max_width: Px | None = None
    min_height: Px | None = None
    max_height: Px | None = None
    min_depth: Px | None = None
    max_depth: Px | None = None

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        names = ("min_width", "max_width", "min_height", "max_height", "min_depth", "max_depth")
        _require_any(self, names)
        _check_range(self, ("min_width", "max_width"), ("min_height", "max_height"), ("min_depth", "max_depth"))
        return self


# ----------------------------------------------------------------------------------------------
# content family: shape types, attributes, counts, frame tags


class AllowedShapeTypesRule(RuleBase):
    """Objects of the scoped labels must be one of ``types``."""

    kind: Literal["allowed_shape_types"]
    types: tuple[ShapeTypeName, ...] = Field(min_length=1)


class RequiredAttributesRule(RuleBase):
    """Attributes (by name) that must have a non-empty value, and the values allowed per attribute."""

    kind: Literal["required_attributes"]
    required: tuple[str, ...] = ()
    allowed_values: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _something(self) -> Self:
        _require_any(self, ("required", "allowed_values"))
        return self


class MaxObjectsPerFrameRule(RuleBase):
    """At most ``max_objects`` objects (of the scoped labels) on one frame."""

    kind: Literal["max_objects_per_frame"]
    max_objects: int = Field(ge=0)


class RequiredFrameTagsRule(RuleBase):
    """Every frame of the job carries the tag(s) named in ``tags`` (``all`` of them or ``any``)."""

    kind: Literal["required_frame_tags"]
    tags: tuple[str, ...] = Field(min_length=1)
    mode: Literal["all", "any"] = "all"


# ----------------------------------------------------------------------------------------------
# relation family: duplicates, overlaps, co-occurrence


class DuplicatesRule(RuleBase):
    """Two objects of one label and type on one frame (one job = one annotator) with IoU >= ``iou_thr``."""

    kind: Literal["duplicates"]
    iou_thr: float = Field(default=0.7, gt=0, le=1)


class ForbiddenOverlapRule(RuleBase):
    """Objects of ``scope.labels`` must not overlap objects of ``other_labels`` by more than ``max_overlap``.

    ``metric``: ``iou`` of the boxes, or ``ioa`` (intersection over the scoped object's box area).
    """

    kind: Literal["forbidden_overlap"]
    other_labels: tuple[str, ...] = Field(min_length=1)
    max_overlap: Frac = 0.0
    metric: Literal["iou", "ioa"] = "iou"

    @model_validator(mode="after")
    def _subject(self) -> Self:
        if not self.scope.labels:
            raise ValueError("scope.labels must name the labels that may not overlap other_labels")
        return self


class RequiredCooccurrenceRule(RuleBase):
    """Each object of ``scope.labels`` needs an object of one of ``other_labels`` on its frame.

    With ``must_overlap`` the partner's box must cover more than ``min_ioa`` of the object's box
    (``0`` = any positive intersection). E.g. a ``rider`` overlaps a ``bicycle`` or ``motorcycle``.
    """

    kind: Literal["required_cooccurrence"]
    other_labels: tuple[str, ...] = Field(min_length=1)
    must_overlap: bool = True
    min_ioa: Annotated[float, Field(ge=0, lt=1)] = 0.0

    @model_validator(mode="after")
    def _subject(self) -> Self:
        if not self.scope.labels:
            raise ValueError("scope.labels must name the labels that need a partner")
        return self


# ----------------------------------------------------------------------------------------------
# validity family: polygons, masks


class PolygonValidityRule(RuleBase):
    """Polygons: >= ``min_vertices``, no self-intersection (unless allowed), area > ``min_area`` px."""

    kind: Literal["polygon_validity"]
    min_vertices: int = Field(default=3, ge=3)
    allow_self_intersection: bool = False
    min_area: Px = 0.0


class MaskValidityRule(RuleBase):
    """Masks: at least ``min_pixels`` foreground pixels in at most ``max_fragments`` connected pieces."""

    kind: Literal["mask_validity"]
    min_pixels: int = Field(default=1, ge=1)
    max_fragments: int | None = Field(default=1, ge=1)
    connectivity: Literal[4, 8] = 8


# ----------------------------------------------------------------------------------------------
# keypoints, tracks


class KeypointsRule(RuleBase):
    """Skeletons: visible keypoint count, keypoints inside the object's box, bone-length outliers.

    * ``min_visible``: at least this many keypoints not ``outside``.
    * ``box_labels``: rectangles of these labels are the object's box (same ``group`` when the
      skeleton has one, else the box overlapping the skeleton most); visible keypoints must lie in
      it (``box_tolerance_px``).
    * ``max_bone_ratio``: a bone whose length relative to the skeleton's median bone differs from the
      per-label median of that relation by more than this factor is an outlier. Bones come from
      ``bones`` (keypoint label names) or else from the skeleton label's CVAT svg edges; the median
      needs ``min_skeletons`` skeletons of the label in the job.
    """

    kind: Literal["keypoints"]
    min_visible: int = Field(default=0, ge=0)
    box_labels: tuple[str, ...] = ()
    box_tolerance_px: Px = 0.0
    bones: tuple[tuple[str, str], ...] | None = None
    max_bone_ratio: Annotated[float, Field(gt=1)] | None = None
    min_skeletons: int = Field(default=5, ge=2)

    @model_validator(mode="after")
    def _something(self) -> Self:
        if self.min_visible == 0 and not self.box_labels and self.max_bone_ratio is None:
            raise ValueError("give at least one of min_visible, box_labels, max_bone_ratio")
        return self


class TracksRule(RuleBase):
    """Tracks: visible length >= ``min_length`` frames, hidden gaps <= ``max_gap`` frames, box centre
    speed between keyframes <= ``max_jump_px`` (pixels per frame) and <= ``max_jump_frac`` (fraction of
    the frame diagonal per frame)."""

    kind: Literal["tracks"]
    min_length: int | None = Field(default=None, ge=1)
    max_gap: int | None = Field(default=None, ge=0)
    max_jump_px: Px | None = None
    max_jump_frac: Frac | None = None

    @model_validator(mode="after")
    def _something(self) -> Self:
        _require_any(self, ("min_length", "max_gap", "max_jump_px", "max_jump_frac"))
        return self


# ----------------------------------------------------------------------------------------------
# expression


class ExpressionRule(RuleBase):
    """A predicate every scoped object must satisfy, e.g. ``width >= 4 and height >= 4``.

    Names: area, width, height, label, type, score, occluded, rotation, frame_width, frame_height,
    ``attributes["name"]`` (string value, ``""`` when unset). Operators: comparisons (incl. chains),
    ``and``/``or``/``not``, ``+ - * / // % **``, ``in``/``not in`` a literal list. Nothing else
    parses: no calls, no attribute access, no comprehensions.
    """

    kind: Literal["expression"]
    expr: str = Field(min_length=1, max_length=2000)
    message: str | None = Field(default=None, description="shown instead of the expression on a finding")

    @field_validator("expr")
    @classmethod
    def _compiles(cls, value: str) -> str:
        # imported here: the compiler is the checker's module, the schema only asks it for a verdict
        from cvat_ext.rules.kinds.expression import compile_expression

        compile_expression(value)  # raises ValueError with the position of the offending node
        return value


RULE_MODELS_ORDERED: tuple[type[RuleBase], ...] = (
    SizeRule,
    OutsideFrameRule,
    AspectRatioRule,
    CuboidSizeRule,
    AllowedShapeTypesRule,
    RequiredAttributesRule,
    MaxObjectsPerFrameRule,
    RequiredFrameTagsRule,
    DuplicatesRule,
    ForbiddenOverlapRule,
    RequiredCooccurrenceRule,
    PolygonValidityRule,
    MaskValidityRule,
    KeypointsRule,
    TracksRule,
    ExpressionRule,
)

Rule = Annotated[
    SizeRule
    | OutsideFrameRule
    | AspectRatioRule
    | CuboidSizeRule
    | AllowedShapeTypesRule
    | RequiredAttributesRule
    | MaxObjectsPerFrameRule
    | RequiredFrameTagsRule
    | DuplicatesRule
    | ForbiddenOverlapRule
    | RequiredCooccurrenceRule
    | PolygonValidityRule
    | MaskValidityRule
    | KeypointsRule
    | TracksRule
    | ExpressionRule,
    Field(discriminator="kind"),
]

RULE_ADAPTER: TypeAdapter[Rule] = TypeAdapter(Rule)

#: kind name -> parameter model
RULE_MODELS: dict[str, type[RuleBase]] = {
    get_args(m.model_fields["kind"].annotation)[0]: m for m in RULE_MODELS_ORDERED
}


class RuleFile(_Model):
    """One YAML rule pack file."""

    version: Literal[1] = 1
    name: str | None = None
    description: str = ""
    include: tuple[str, ...] = Field(default=(), description="other pack files, relative to this one")
    actions: ActionsBySeverity | None = None
    rules: tuple[Rule, ...] = ()
    overrides: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="rule id -> fields to change in an included rule"
    )


def rule_file_json_schema() -> dict[str, Any]:
    """The JSON Schema of a rule file (for editors: ``cvat-ext rules schema > qa_rules.schema.json``)."""
    schema = RuleFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "cvat-ext rule pack"
    return schema

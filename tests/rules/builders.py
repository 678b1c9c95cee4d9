"""Small builders for rule tests: a label set like a driving project, frame meta, shapes, packs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from cvat_ext.annotations.model import (
    Attribute,
    AttributeInputType,
    AttributeSpec,
    FrameInfo,
    JobAnnotations,
    JobMeta,
    Label,
    LabelSet,
    MaskRle,
    Shape,
    ShapeType,
    Tag,
    Track,
    TrackShape,
)
from cvat_ext.rules import Finding, RulePack, check_job
from cvat_ext.rules.schema import RULE_ADAPTER

SVG = "".join(f'<line data-type="edge" data-node-from="1" data-node-to="{n}"></line>' for n in (2, 3, 4)) + "".join(
    f'<circle r="1.5" cx="0" cy="0" data-type="element node" data-node-id="{n}" data-label-id="{40 + n}"></circle>'
    for n in (1, 2, 3, 4)
)
KEYPOINTS = {"head": 41, "l_hand": 42, "r_hand": 43, "foot": 44}

LABELS = LabelSet(
    (
        Label(1, "car", "rectangle"),
        Label(2, "person", "any"),
        Label(
            3,
            "sign",
            "rectangle",
            attributes=(
                AttributeSpec(
                    10, "kind", AttributeInputType.SELECT, default_value="other", values=("stop", "yield", "other")
                ),
                AttributeSpec(11, "note", AttributeInputType.TEXT),
            ),
        ),
        Label(
            4,
            "pose",
            "skeleton",
            sublabels=tuple(Label(i, n, "points", parent_id=4) for n, i in KEYPOINTS.items()),
            svg=SVG,
        ),
        Label(5, "blurry", "tag"),
        Label(6, "rider", "rectangle"),
        Label(7, "bicycle", "rectangle"),
        Label(8, "motorcycle", "rectangle"),
        Label(9, "day", "tag"),
        Label(12, "truck", "any"),
    )
)
LABEL_IDS = {label.name: label.id for label in LABELS}


def meta(frames: int = 10, size: tuple[int, int] = (640, 480), start: int = 0) -> JobMeta:
    return JobMeta(start_frame=start, stop_frame=start + frames - 1, frames=(FrameInfo(*size),) * frames)


def shape(kind: str, label: str, points: Any, *, frame: int = 0, id: int | None = None, **kw: Any) -> Shape:
    return Shape(ShapeType(kind), frame, LABEL_IDS[label], np.asarray(points, dtype=float), id=id, **kw)


def rect(label: str, xyxy: Iterable[float], *, frame: int = 0, id: int | None = None, **kw: Any) -> Shape:
    return shape("rectangle", label, list(xyxy), frame=frame, id=id, **kw)


def mask(label: str, bitmap: Any, left: int = 0, top: int = 0, *, frame: int = 0, id: int | None = None) -> Shape:
    rle = MaskRle.from_bitmap(np.asarray(bitmap, dtype=bool), left, top)
    return Shape(ShapeType.MASK, frame, LABEL_IDS[label], np.zeros((0, 2)), mask=rle, id=id)


def skeleton(
    points: Mapping[str, tuple[float, float] | None], *, frame: int = 0, id: int | None = None, group: int = 0
) -> Shape:
    """Keypoints by name; ``None`` = invisible (outside)."""
    elements = tuple(
        Shape(
            ShapeType.POINTS,
            frame,
            KEYPOINTS[name],
            np.array([xy if xy is not None else (0.0, 0.0)], dtype=float),
            outside=xy is None,
        )
        for name, xy in points.items()
    )
    return Shape(ShapeType.SKELETON, frame, LABEL_IDS["pose"], np.zeros((0, 2)), id=id, group=group, elements=elements)


def attrs(**values: str) -> tuple[Attribute, ...]:
    spec = {"kind": 10, "note": 11}
    return tuple(Attribute(spec[k], v) for k, v in values.items())


def tag(label: str, frame: int) -> Tag:
    return Tag(frame, LABEL_IDS[label])


def box_track(label: str, keyframes: Iterable[tuple[int, Iterable[float], bool]], *, id: int = 1) -> Track:
    """Rectangle track from (frame, xyxy, outside) keyframes."""
    shapes = tuple(
        TrackShape(ShapeType.RECTANGLE, f, np.asarray(list(xyxy), dtype=float), outside=out)
        for f, xyxy, out in keyframes
    )
    return Track(frame=shapes[0].frame, label_id=LABEL_IDS[label], shapes=shapes, id=id)


def pack(*rules: Mapping[str, Any]) -> RulePack:
    return RulePack(name="test", rules=tuple(RULE_ADAPTER.validate_python(dict(r)) for r in rules))


def run(
    rules: Mapping[str, Any] | list[Mapping[str, Any]],
    shapes: Iterable[Shape] = (),
    *,
    tags: Iterable[Tag] = (),
    tracks: Iterable[Track] = (),
    job_meta: JobMeta | None = None,
    **kw: Any,
) -> list[Finding]:
    rule_list = rules if isinstance(rules, list) else [rules]
    ann = JobAnnotations(shapes=tuple(shapes), tags=tuple(tags), tracks=tuple(tracks))
    return check_job(ann, LABELS, job_meta or meta(), pack(*rule_list), job_id=7, annotator="ann3", **kw)

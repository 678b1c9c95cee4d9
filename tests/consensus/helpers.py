"""Small builders for consensus tests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cvat_ext.annotations.model import (
    Attribute,
    AttributeInputType,
    AttributeSpec,
    FrameInfo,
    JobMeta,
    Label,
    LabelSet,
    Shape,
    ShapeType,
)

CAR, PERSON, POSE = 1, 2, 10
KIND_SPEC = 7


def labels() -> LabelSet:
    kind = AttributeSpec(KIND_SPEC, "kind", AttributeInputType.SELECT, values=("a", "b"), default_value="a")
    keypoints = tuple(Label(id=11 + i, name=f"kp{i}", type="points", parent_id=POSE) for i in range(3))
    return LabelSet(
        (
            Label(id=CAR, name="car", type="rectangle", attributes=(kind,)),
            Label(id=PERSON, name="person", type="any"),
            Label(id=POSE, name="pose", type="skeleton", sublabels=keypoints),
        )
    )


def meta(frames: int = 4, wh: tuple[int, int] = (640, 480)) -> JobMeta:
    return JobMeta(start_frame=0, stop_frame=frames - 1, frames=(FrameInfo(wh[0], wh[1], ""),) * frames)


def box(frame: int, label: int, xyxy: Sequence[float], *, attrs: dict[int, str] | None = None) -> Shape:
    return Shape(
        type=ShapeType.RECTANGLE,
        frame=frame,
        label_id=label,
        points=np.asarray(xyxy, dtype=np.float64),
        attributes=tuple(Attribute(k, v) for k, v in (attrs or {}).items()),
    )


def skeleton(frame: int, xy: Sequence[tuple[float, float]], outside: Sequence[bool]) -> Shape:
    elements = tuple(
        Shape(type=ShapeType.POINTS, frame=frame, label_id=11 + i, points=np.array([p]), outside=o)
        for i, (p, o) in enumerate(zip(xy, outside, strict=True))
    )
    return Shape(type=ShapeType.SKELETON, frame=frame, label_id=POSE, points=np.zeros((0, 2)), elements=elements)

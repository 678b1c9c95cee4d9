"""Annotation types (``model``), CVAT JSON conversion (``cvat_json``), track expansion (``tracks``)."""

from cvat_ext.annotations.model import (
    Attribute,
    AttributeInputType,
    AttributeSpec,
    FrameAnnotations,
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

__all__ = [
    "Attribute",
    "AttributeInputType",
    "AttributeSpec",
    "FrameAnnotations",
    "FrameInfo",
    "JobAnnotations",
    "JobMeta",
    "Label",
    "LabelSet",
    "MaskRle",
    "Shape",
    "ShapeType",
    "Tag",
    "Track",
    "TrackShape",
]

"""Annotation types (``model``), CVAT JSON conversion (``cvat_json``), track expansion (``tracks``),
the object table (``table``) and the columnar reader (``columnar_json``).

The names below are imported from ``model`` on first use (PEP 562), so a module of the package
that needs no NumPy (``json_files``) imports without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module("cvat_ext.annotations.model"), name)

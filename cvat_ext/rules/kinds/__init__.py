"""Rule kinds, one module per family; :data:`CHECKERS` maps a rule ``kind`` to its checker class.

===========  ========================================================================
extent       size, outside_frame, aspect_ratio, cuboid_size
content      allowed_shape_types, required_attributes, max_objects_per_frame, required_frame_tags
relations    duplicates, forbidden_overlap, required_cooccurrence
validity     polygon_validity, mask_validity
keypoints    keypoints
tracks       tracks
expression   expression
===========  ========================================================================
"""

from __future__ import annotations

from typing import Any

from cvat_ext.rules.kinds.base import Checker, JobContext
from cvat_ext.rules.kinds.content import (
    AllowedShapeTypesChecker,
    MaxObjectsPerFrameChecker,
    RequiredAttributesChecker,
    RequiredFrameTagsChecker,
)
from cvat_ext.rules.kinds.expression import ExpressionChecker
from cvat_ext.rules.kinds.extent import AspectRatioChecker, CuboidSizeChecker, OutsideFrameChecker, SizeChecker
from cvat_ext.rules.kinds.keypoints import KeypointsChecker
from cvat_ext.rules.kinds.relations import DuplicatesChecker, ForbiddenOverlapChecker, RequiredCooccurrenceChecker
from cvat_ext.rules.kinds.tracks import TracksChecker
from cvat_ext.rules.kinds.validity import MaskValidityChecker, PolygonValidityChecker

CHECKERS: dict[str, type[Checker[Any]]] = {
    c.kind: c
    for c in (
        SizeChecker,
        OutsideFrameChecker,
        AspectRatioChecker,
        CuboidSizeChecker,
        AllowedShapeTypesChecker,
        RequiredAttributesChecker,
        MaxObjectsPerFrameChecker,
        RequiredFrameTagsChecker,
        DuplicatesChecker,
        ForbiddenOverlapChecker,
        RequiredCooccurrenceChecker,
        PolygonValidityChecker,
        MaskValidityChecker,
        KeypointsChecker,
        TracksChecker,
        ExpressionChecker,
    )
}

__all__ = ["CHECKERS", "Checker", "JobContext"]

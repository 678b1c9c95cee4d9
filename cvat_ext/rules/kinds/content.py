"""Content family: ``allowed_shape_types``, ``required_attributes``, ``max_objects_per_frame``,
``required_frame_tags``."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from cvat_ext.qa.findings import Finding
from cvat_ext.rules.frame_batch import FrameBatch, type_lut
from cvat_ext.rules.kinds.base import Checker, JobContext
from cvat_ext.rules.schema import (
    AllowedShapeTypesRule,
    MaxObjectsPerFrameRule,
    RequiredAttributesRule,
    RequiredFrameTagsRule,
)


class AllowedShapeTypesChecker(Checker[AllowedShapeTypesRule]):
    kind = "allowed_shape_types"

    def __init__(self, rule: AllowedShapeTypesRule, ctx: JobContext) -> None:
        super().__init__(rule, ctx)
        self.allowed = type_lut(rule.types)

    def check_batch(self, batch: FrameBatch) -> Iterator[Finding]:
        bad = self.in_scope(batch) & ~self.allowed[batch.type_code]
        for row in np.flatnonzero(bad):
            detail = f"type {batch.type_name[row]} is not allowed (allowed: {', '.join(self.rule.types)})"
            yield self.object_finding(batch, int(row), detail)


class RequiredAttributesChecker(Checker[RequiredAttributesRule]):
    kind = "required_attributes"

    def check_batch(self, batch: FrameBatch) -> Iterator[Finding]:
        names = self.ctx.attribute_names
        for row in np.flatnonzero(self.in_scope(batch)):
            values = {names.get(a.spec_id, f"#{a.spec_id}"): a.value for a in batch.row_attributes(int(row))}
            problems = [f"attribute '{n}' has no value" for n in self.rule.required if not values.get(n)]
            for attr, allowed in self.rule.allowed_values.items():
                value = values.get(attr)
                if value and value not in allowed:
                    problems.append(f"attribute '{attr}' is {value!r}, allowed: {', '.join(allowed)}")
            if problems:
                yield self.object_finding(batch, int(row), "; ".join(problems))


class MaxObjectsPerFrameChecker(Checker[MaxObjectsPerFrameRule]):
    kind = "max_objects_per_frame"

    def check_batch(self, batch: FrameBatch) -> Iterator[Finding]:
        counts = np.bincount(batch.frame_pos[self.in_scope(batch)], minlength=batch.n_frames)
        which = ", ".join(self.rule.scope.labels) if self.rule.scope.labels is not None else "any label"
        for k in np.flatnonzero(counts > self.rule.max_objects):
            message = f"{counts[k]} objects ({which}) > max_objects {self.rule.max_objects}"
            yield self.frame_finding(batch, int(k), message)


class RequiredFrameTagsChecker(Checker[RequiredFrameTagsRule]):
    """Runs on every frame of the job, including frames without any annotation."""

    kind = "required_frame_tags"

    def __init__(self, rule: RequiredFrameTagsRule, ctx: JobContext) -> None:
        super().__init__(rule, ctx)
        self.wanted = rule.tags

    def check_batch(self, batch: FrameBatch) -> Iterator[Finding]:
        names = self.ctx.label_names
        for k, tags in enumerate(batch.tags):
            present = {names.get(t.label_id, "") for t in tags}
            missing = [t for t in self.wanted if t not in present]
            if self.rule.mode == "all" and missing:
                yield self.frame_finding(batch, k, f"frame tag(s) {', '.join(missing)} missing")
            elif self.rule.mode == "any" and len(missing) == len(self.wanted):
                yield self.frame_finding(batch, k, f"none of the frame tags {', '.join(self.wanted)} is set")

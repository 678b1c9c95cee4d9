"""Extent family: ``size``, ``outside_frame``, ``aspect_ratio``, ``cuboid_size``.

All four compare per-frame columns against bounds in one vectorised pass; only the violating rows
reach Python to format their messages.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cvat_ext.annotations.model import FloatArray, ShapeType
from cvat_ext.qa.findings import Finding
from cvat_ext.rules.frame_batch import FrameBatch
from cvat_ext.rules.kinds.base import Checker, JobContext, fmt
from cvat_ext.rules.schema import AspectRatioRule, CuboidSizeRule, OutsideFrameRule, SizeRule


@dataclass(frozen=True)
class Bound:
    """One ``min_x``/``max_x`` bound: the field name, the measured column, the limit, the unit."""

    name: str
    values: FloatArray
    limit: float
    unit: str = " px"

    def violated(self) -> npt.NDArray[np.bool_]:
        with np.errstate(invalid="ignore"):
            return self.values < self.limit if self.name.startswith("min") else self.values > self.limit

    def describe(self, row: int) -> str:
        measure = self.name.split("_", 1)[1]
        sign = "<" if self.name.startswith("min") else ">"
        return f"{measure} {fmt(self.values[row])}{self.unit} {sign} {self.name} {fmt(self.limit)}{self.unit}"


def bound_findings(
    checker: Checker[SizeRule] | Checker[CuboidSizeRule] | Checker[AspectRatioRule],
    batch: FrameBatch,
    rows: npt.NDArray[np.bool_],
    bounds: list[Bound],
) -> Iterator[Finding]:
    """One finding per row of ``rows`` that breaks any of ``bounds``, naming every broken bound."""
    if not bounds or not rows.any():
        return
    broken = np.stack([b.violated() for b in bounds]) & rows[None, :]
    for row in np.flatnonzero(broken.any(axis=0)):
        details = [b.describe(int(row)) for b, hit in zip(bounds, broken[:, row], strict=True) if hit]
        yield checker.object_finding(batch, int(row), "; ".join(details))


def _bounds(rule: object, columns: dict[str, FloatArray], units: dict[str, str]) -> list[Bound]:
    found = []
    for measure, values in columns.items():
        for side in ("min", "max"):
            name = f"{side}_{measure}"
            limit = getattr(rule, name)
            if limit is not None:
                found.append(Bound(name, values, float(limit), units.get(measure, " px")))
    return found


class SizeChecker(Checker[SizeRule]):
    kind = "size"

    def __init__(self, rule: SizeRule, ctx: JobContext) -> None:
        super().__init__(rule, ctx)
        self.has_fractions = any(
            getattr(rule, f"{side}_{m}_frac") is not None
            for side in ("min", "max")
            for m in ("width", "height", "area")
        )

    def check_batch(self, batch: FrameBatch) -> Iterator[Finding]:
        rows = self.in_scope(batch)
        columns = {"width": batch.width, "height": batch.height, "area": batch.area}
        units = {"area": " px²"}
        if self.has_fractions:
            # NaN where the frame size is unknown: no fraction bound can fire there
            frame_w = np.where(batch.frame_w > 0, batch.frame_w, np.nan)
            frame_h = np.where(batch.frame_h > 0, batch.frame_h, np.nan)
            columns |= {
                "width_frac": batch.width / frame_w,
                "height_frac": batch.height / frame_h,
                "area_frac": batch.area / (frame_w * frame_h),
            }
            units |= {"width_frac": "", "height_frac": "", "area_frac": ""}
        yield from bound_findings(self, batch, rows, _bounds(self.rule, columns, units))


class AspectRatioChecker(Checker[AspectRatioRule]):
    kind = "aspect_ratio"

    def check_batch(self, batch: FrameBatch) -> Iterator[Finding]:
        rows = self.in_scope(batch) & (batch.height > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = batch.width / np.where(batch.height > 0, batch.height, 1.0)
        yield from bound_findings(self, batch, rows, _bounds(self.rule, {"ratio": ratio}, {"ratio": ""}))


class CuboidSizeChecker(Checker[CuboidSizeRule]):
    """Front face = CVAT points 0-3, back face = points 4-7; depth = mean front-to-back corner distance."""

    kind = "cuboid_size"

    def check_batch(self, batch: FrameBatch) -> Iterator[Finding]:
        rows = self.in_scope(batch) & (batch.type_name == ShapeType.CUBOID.value)
        if not rows.any():
            return
        idx = np.flatnonzero(rows)
        corners = np.stack([batch.shapes[i].points for i in idx])  # (C, 8, 2)
        front = corners[:, :4]
        n = len(batch)
        width, height, depth = np.zeros(n), np.zeros(n), np.zeros(n)
        width[idx] = front[:, :, 0].max(axis=1) - front[:, :, 0].min(axis=1)
        height[idx] = front[:, :, 1].max(axis=1) - front[:, :, 1].min(axis=1)
        depth[idx] = np.linalg.norm(corners[:, 4:] - front, axis=2).mean(axis=1)
        columns = {"width": width, "height": height, "depth": depth}
        yield from bound_findings(self, batch, rows, _bounds(self.rule, columns, {}))


class OutsideFrameChecker(Checker[OutsideFrameRule]):
    kind = "outside_frame"

    def check_batch(self, batch: FrameBatch) -> Iterator[Finding]:
        rows = self.in_scope(batch) & batch.size_known()
        tol = self.rule.tolerance_px
        frame_w, frame_h = batch.frame_w, batch.frame_h
        x1, y1, x2, y2 = batch.xyxy.T
        if self.rule.allow_truncation:
            # only objects with nothing inside the (tolerance-grown) image
            bad = rows & ((x2 <= -tol) | (y2 <= -tol) | (x1 >= frame_w + tol) | (y1 >= frame_h + tol))
        else:
            bad = rows & ((x1 < -tol) | (y1 < -tol) | (x2 > frame_w + tol) | (y2 > frame_h + tol))
        for row in np.flatnonzero(bad):
            width, height = batch.row_frame_wh(int(row))
            beyond = max(-x1[row], -y1[row], x2[row] - width, y2[row] - height)
            box = ", ".join(fmt(v) for v in batch.xyxy[row])
            what = "entirely outside" if self.rule.allow_truncation else f"{fmt(beyond)} px outside"
            detail = f"box [{box}] is {what} the {width}x{height} image (tolerance {fmt(tol)} px)"
            yield self.object_finding(batch, int(row), detail)

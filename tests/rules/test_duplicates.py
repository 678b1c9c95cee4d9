"""Duplicates: the engine's prefilters (box IoU for plain rectangles, an IoU upper bound for other
area shapes) find exactly the pairs a brute-force similarity_matrix over each label/type finds."""

from __future__ import annotations

import numpy as np
import pytest

from cvat_ext.annotations.model import Shape, ShapeType
from cvat_ext.geometry import SimilarityParams, similarity_matrix
from tests.rules.builders import LABEL_IDS, run, shape

DUP = {"id": "dup", "kind": "duplicates", "iou_thr": 0.6}


def brute_force(shapes: list[Shape], thr: float) -> set[int]:
    """Ids of the later shape of each pair (same label and type) with similarity >= thr."""
    flagged: set[int] = set()
    for key in {(s.label_id, s.type) for s in shapes}:
        group = [s for s in shapes if (s.label_id, s.type) == key]
        sim = similarity_matrix(group, group, SimilarityParams(image_wh=(640, 480)))
        for _, j in np.argwhere(np.triu(sim >= thr, k=1)):
            flagged.add(group[j].id)  # type: ignore[arg-type]
    return flagged


@pytest.mark.parametrize("seed", range(6))
def test_prefilters_lose_nothing(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shapes: list[Shape] = []
    next_id = iter(range(1, 10_000))
    for _ in range(12):
        label = str(rng.choice(["car", "person"]))
        x, y = rng.uniform(50, 500), rng.uniform(50, 350)
        w, h = rng.uniform(10, 80, size=2)
        rot = float(rng.choice([0.0, 0.0, 30.0]))
        base = shape("rectangle", label, [x, y, x + w, y + h], id=next(next_id), rotation=rot)
        jitter = rng.uniform(-0.15, 0.15, size=4) * [w, h, w, h]
        copy = shape("rectangle", label, base.points + jitter, id=next(next_id), rotation=rot)
        angles = np.sort(rng.uniform(0, 2 * np.pi, 7))
        poly = np.stack([x + w * np.cos(angles), y + h * np.sin(angles)], axis=1)
        shapes += [base, copy, shape("polygon", label, poly, id=next(next_id))]
        shapes.append(shape("polygon", label, poly + rng.uniform(-0.2, 0.2, 2) * [w, h], id=next(next_id)))
    found = {f.object_id for f in run(DUP, shapes)}
    assert found == brute_force(shapes, 0.6)
    assert found  # the random scene does contain duplicates


def test_masks_and_polygons_are_not_compared_across_types() -> None:
    square = np.array([[10, 10], [30, 10], [30, 30], [10, 30]], dtype=float)
    bitmap = np.ones((20, 20), dtype=bool)
    from cvat_ext.annotations.model import MaskRle

    poly = Shape(ShapeType.POLYGON, 0, LABEL_IDS["person"], square, id=1)
    mask = Shape(
        ShapeType.MASK, 0, LABEL_IDS["person"], np.zeros((0, 2)), mask=MaskRle.from_bitmap(bitmap, 10, 10), id=2
    )
    assert run(DUP, [poly, mask]) == []
    twin = Shape(
        ShapeType.MASK, 0, LABEL_IDS["person"], np.zeros((0, 2)), mask=MaskRle.from_bitmap(bitmap, 11, 10), id=3
    )
    assert [f.object_id for f in run(DUP, [poly, mask, twin])] == [3]

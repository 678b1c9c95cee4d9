from __future__ import annotations

import numpy as np
import pytest

from cvat_ext.annotations.model import Shape, ShapeType
from cvat_ext.errors import AnnotationFormatError
from cvat_ext.geometry import SimilarityParams, similarity_matrix


def rect(x0: float, y0: float, x1: float, y1: float, rotation: float = 0.0) -> Shape:
    return Shape(ShapeType.RECTANGLE, 0, 1, [x0, y0, x1, y1], rotation=rotation)


def test_rectangles_plain_and_rotated() -> None:
    a = [rect(0, 0, 10, 10), rect(5, 0, 15, 10)]
    b = [rect(0, 0, 10, 10), rect(0, 0, 10, 10, rotation=45)]
    sim = similarity_matrix(a, b, SimilarityParams())
    assert sim.shape == (2, 2)
    assert sim[0, 0] == pytest.approx(1.0)
    assert sim[1, 0] == pytest.approx(1 / 3)
    assert 0.7 < sim[0, 1] < 0.72
    np.testing.assert_array_equal(sim, similarity_matrix(b, a, SimilarityParams()).T)


@pytest.mark.parametrize(("n", "m"), [(0, 0), (2, 0), (0, 2)])
def test_empty(n: int, m: int) -> None:
    a = [rect(0, 0, 1, 1)] * n
    b = [rect(0, 0, 1, 1)] * m
    assert similarity_matrix(a, b, SimilarityParams()).shape == (n, m)


def test_mixed_types_raise() -> None:
    poly = Shape(ShapeType.POLYLINE, 0, 1, [[0, 0], [1, 1]])
    with pytest.raises(AnnotationFormatError, match="polyline"):
        similarity_matrix([rect(0, 0, 1, 1)], [poly], SimilarityParams())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"oks_sigma": 0}, "oks_sigma"), ({"line_thickness": -1}, "line_thickness"), ({"iou_thr": 2}, "iou_thr"),
     ({"keypoint_sigmas": np.array([0.1, -1])}, "keypoint_sigmas")],
)
def test_params_validated(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(AnnotationFormatError, match=match):
        SimilarityParams(**kwargs)  # type: ignore[arg-type]

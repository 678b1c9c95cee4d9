"""The models as cvat-sdk auto-annotation functions, checked by the SDK's own driver mapper."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
cvataa = pytest.importorskip("cvat_sdk.auto_annotation")
skimage_data = pytest.importorskip("skimage.data")

from cvat_sdk.auto_annotation.driver import _AnnotationMapper  # noqa: E402
from cvat_sdk.masks import encode_mask  # noqa: E402
from PIL import Image  # noqa: E402

from cvat_ext.functions.interface import LabelSpec  # noqa: E402
from cvat_ext.functions.sdk.function import SdkDetectionFunction  # noqa: E402
from cvat_ext.models.detections import Detections, MaskCrop  # noqa: E402
from tests.functions.loading import iou  # noqa: E402

pytestmark = pytest.mark.models


def context(threshold: float | None = None, to_poly: bool = False) -> Any:
    # the DetectionFunctionContext protocol is three attributes: a namespace is a valid fake
    return SimpleNamespace(frame_name="f.png", conf_threshold=threshold, conv_mask_to_poly=to_poly)


def sdk_check(function: Any, shapes: list[Any], *, to_poly: bool = False) -> list[Any]:
    """Run the SDK driver's validation/remapping (a dataset with exactly the function's labels)."""
    ds_labels = [
        SimpleNamespace(
            name=label.name,
            id=100 + label.id,  # task ids differ from spec ids: the driver remaps by name
            # a task that wants polygons from a mask model declares polygon labels
            type="polygon" if to_poly and label.type == "mask" else label.type,
            attributes=[],
            sublabels=[
                SimpleNamespace(name=sl.name, id=200 + sl.id, type="points", attributes=[])
                for sl in getattr(label, "sublabels", [])
            ],
        )
        for label in function.spec.labels
    ]
    mapper = _AnnotationMapper(
        logging.getLogger("t"),
        function.spec.labels,
        ds_labels,
        allow_unmatched_labels=False,
        conv_mask_to_poly=to_poly,
    )
    _, mapped = mapper.validate_and_remap(shapes, 7)
    return list(mapped)


@pytest.mark.skipif(not hasattr(cv2, "HOGDescriptor"), reason="OpenCV 5 has no HOG; the models extra pins opencv < 5")
def test_sdk_opencv_module_on_astronaut() -> None:
    import cvat_ext.functions.sdk.opencv as module

    image = Image.fromarray(skimage_data.astronaut())
    shapes = module.detect(context(), image)
    mapped = sdk_check(module, shapes)
    assert {s.frame for s in mapped} == {7} and {s.label_id for s in mapped} <= {100, 101}
    faces = [s for s in mapped if s.label_id == 101]  # the driver remapped face (spec id 1) in place
    assert faces and all(s.type.value == "rectangle" for s in shapes)
    assert max(iou(list(s.points), [175, 60, 275, 165]) for s in faces) > 0.6
    assert all(0.5 <= s.score <= 1 for s in shapes)
    strict = module.detect(context(0.99), image)
    assert len(strict) < len(shapes) and all(s.score >= 0.99 for s in strict)


def _fake_model(rgb: np.ndarray) -> Detections:
    bits = np.zeros((6, 8), dtype=bool)
    bits[1:5, 2:7] = True
    kp = np.array([[[10, 12, 0.9], [20, 22, -1.0]]] * 3, dtype=float)
    return Detections(
        np.array([[40, 50, 48, 56], [0, 0, 9, 9], [1, 1, 5, 5]], dtype=float),
        np.array([0.9, 0.8, 0.3]),
        np.array([1, 2, 3]),
        masks=(MaskCrop(bits, 40, 50), None, None),
        keypoints=kp,
    )


LABELS = [
    LabelSpec("blob", "mask", 1),
    LabelSpec("box", "rectangle", 2),
    LabelSpec("pose", "skeleton", 3, sublabels=(LabelSpec("a", "points", 0), LabelSpec("b", "points", 1))),
]


def _square_polygon(mask: MaskCrop) -> np.ndarray:
    left, top, right, bottom = mask.ltrb
    return np.array([[left, top], [right, top], [right, bottom], [left, bottom]], dtype=float)


def test_masks_skeletons_and_scores_pass_the_sdk_driver() -> None:
    function = SdkDetectionFunction(lambda: _fake_model, LABELS, default_threshold=0.1, polygonize=_square_polygon)
    image = Image.new("RGB", (64, 64))
    shapes = function.detect(context(), image)
    assert [s.type.value for s in shapes] == ["mask", "rectangle", "skeleton"]
    full = np.zeros((64, 64), dtype=bool)
    full[51:55, 42:47] = True
    assert list(shapes[0].points) == encode_mask(full)
    assert [e.outside for e in shapes[2].elements] == [False, True]
    assert [s.score for s in shapes] == [0.9, 0.8, 0.3]
    assert len(sdk_check(function, shapes)) == 3
    # conv_mask_to_poly: the SDK forbids masks then; we send polygons
    poly_shapes = function.detect(context(0.5, to_poly=True), image)
    assert [s.type.value for s in poly_shapes] == ["polygon", "rectangle"]
    assert len(sdk_check(function, poly_shapes, to_poly=True)) == 2


def test_torchvision_sdk_factories_with_tiny_models() -> None:
    pytest.importorskip("torch")
    pytest.importorskip("torchvision")
    from cvat_ext.functions.sdk import keypointrcnn as sdk_keypointrcnn
    from cvat_ext.functions.sdk import maskrcnn as sdk_maskrcnn

    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, size=(96, 128, 3), dtype=np.uint8))
    masks = sdk_maskrcnn.create(variant="tiny", device="cpu")
    shapes = masks.detect(context(0.001), image)
    assert shapes and {s.type.value for s in shapes} <= {"mask"}
    assert len(sdk_check(masks, shapes)) == len(shapes)
    poses = sdk_keypointrcnn.create(variant="tiny", device="cpu")
    shapes = poses.detect(context(0.001), image)
    assert shapes and all(len(s.elements) == 17 for s in shapes)
    assert len(sdk_check(poses, shapes)) == len(shapes)


@pytest.mark.parametrize(
    ("size_wh", "mode"),
    [((1, 1), "RGB"), ((1, 4000), "RGB"), ((200, 40), "RGB"), ((96, 160), "I;16"), ((96, 160), "F")],
)
def test_sdk_opencv_module_takes_odd_frames(size_wh: tuple[int, int], mode: str) -> None:
    # the cvat-sdk path goes through the same frame normalisation as the Nuclio path
    from cvat_ext.functions.sdk import opencv as sdk_opencv

    image = Image.new(mode, size_wh)
    shapes = sdk_opencv.detect(context(0.5), image)
    assert shapes == []

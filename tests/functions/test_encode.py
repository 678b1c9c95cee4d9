"""The one Detections -> CVAT shapes policy, checked through both writers (Nuclio items, cvat-sdk shapes)."""

from __future__ import annotations

import numpy as np
import pytest

from cvat_ext.errors import AnnotationFormatError, ConfigError
from cvat_ext.functions.encode import plan_shapes
from cvat_ext.functions.interface import DetectorFunctionSpec, InteractorFunctionSpec, LabelSpec
from cvat_ext.functions.response import detections_to_items
from cvat_ext.models.detections import Detections, MaskCrop

POSE = LabelSpec("pose", "skeleton", 4, sublabels=(LabelSpec("a", "points", 0), LabelSpec("b", "points", 1)))
LABELS = {
    1: LabelSpec("blob", "mask", 1),
    2: LabelSpec("outline", "polygon", 2),
    3: LabelSpec("car", "rectangle", 3),
    4: POSE,
    5: LabelSpec("thing", "any", 5),
}
FULL = MaskCrop(np.ones((3, 4), dtype=bool), 10, 20)
EMPTY = MaskCrop(np.zeros((3, 4), dtype=bool), 10, 20)


def _one(class_id: int, mask: MaskCrop | None) -> Detections:
    return Detections(
        np.array([[10.0, 20.0, 13.0, 22.0]]),
        np.array([0.8]),
        np.array([class_id]),
        masks=(mask,),
        keypoints=np.array([[[11.0, 21.0, 0.9], [12.0, 22.0, 0.1]]]),
    )


# (class id, mask, expected kind or None = dropped, expected counters (dropped, skipped))
POLICY = [
    (1, FULL, "mask", (0, 0)),
    (1, None, None, (1, 0)),  # a mask label without a mask: dropped, never a box
    (1, EMPTY, None, (1, 0)),
    (2, FULL, "mask", (0, 0)),
    (2, None, None, (1, 0)),
    (3, FULL, "rectangle", (0, 0)),  # a box label ignores the mask
    (3, None, "rectangle", (0, 0)),
    (4, None, "skeleton", (0, 0)),
    (5, FULL, "rectangle", (0, 0)),
    (99, FULL, None, (0, 1)),  # a class the function does not declare
]


@pytest.mark.parametrize(("class_id", "mask", "kind", "counts"), POLICY)
def test_plan_follows_the_policy(
    class_id: int, mask: MaskCrop | None, kind: str | None, counts: tuple[int, int]
) -> None:
    plan = plan_shapes(_one(class_id, mask), LABELS, keypoint_thr=0.5)
    assert [s.kind for s in plan.shapes] == ([] if kind is None else [kind])
    assert (plan.dropped_without_mask, plan.skipped_unlabelled) == counts
    if kind == "skeleton":
        assert plan.shapes[0].outside is not None and plan.shapes[0].outside.tolist() == [False, True]


@pytest.mark.parametrize(("class_id", "mask", "kind", "counts"), POLICY)
def test_nuclio_items_follow_the_same_policy(
    class_id: int, mask: MaskCrop | None, kind: str | None, counts: tuple[int, int]
) -> None:
    items = detections_to_items(_one(class_id, mask), LABELS, keypoint_thr=0.5)
    assert [i["type"] for i in items] == ([] if kind is None else [kind])


@pytest.mark.parametrize(("class_id", "mask", "kind", "counts"), POLICY)
def test_sdk_shapes_follow_the_same_policy(
    class_id: int, mask: MaskCrop | None, kind: str | None, counts: tuple[int, int]
) -> None:
    pytest.importorskip("cvat_sdk")
    from PIL import Image

    from cvat_ext.functions.sdk.function import SdkDetectionFunction

    def square(crop: MaskCrop) -> np.ndarray:
        left, top, right, bottom = crop.ltrb
        return np.array([[left, top], [right, top], [right, bottom], [left, bottom]], dtype=float)

    dets = _one(class_id, mask)
    function = SdkDetectionFunction(
        lambda: lambda rgb: dets, list(LABELS.values()), keypoint_thr=0.5, polygonize=square
    )
    context = type("Ctx", (), {"conf_threshold": 0.1, "conv_mask_to_poly": False})()
    shapes = function.detect(context, Image.new("RGB", (32, 32)))
    # the SDK writes a polygon label's mask as a polygon (its types are strict), same object either way
    expected = [] if kind is None else ["polygon" if class_id == 2 else kind]
    assert [s.type.value for s in shapes] == expected


def test_skeleton_without_keypoints_is_a_function_error() -> None:
    dets = Detections(np.array([[0.0, 0, 1, 1]]), np.array([0.9]), np.array([4]))
    with pytest.raises(AnnotationFormatError, match="pose"):
        plan_shapes(dets, LABELS)


def test_empty_detections_plan_nothing() -> None:
    plan = plan_shapes(Detections.empty(with_masks=True), LABELS)
    assert plan.shapes == () and plan.dropped_without_mask == 0


@pytest.mark.parametrize(
    ("labels", "fragment"),
    [
        ((LabelSpec("a", "rectangle"),), "carries an 'id'"),
        ((LabelSpec("a", "rectangle", 1), LabelSpec("b", "rectangle", 1)), "share id 1"),
    ],
)
def test_detector_spec_checks_its_labels(labels: tuple[LabelSpec, ...], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        DetectorFunctionSpec(labels)


def test_detector_spec_checks_its_threshold() -> None:
    with pytest.raises(ConfigError, match="default_threshold"):
        DetectorFunctionSpec((LabelSpec("a", "rectangle", 1),), default_threshold=1.5)


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        ({}, InteractorFunctionSpec(1, -1, False, "")),
        (
            {"min_pos_points": "0", "min_neg_points": "0", "startswith_box_optional": "true"},
            InteractorFunctionSpec(0, 0, True),
        ),
        # CVAT reads bool("false") as True: the spec says what CVAT will do
        ({"startswith_box_optional": "false"}, InteractorFunctionSpec(1, -1, True)),
    ],
)
def test_interactor_spec_reads_annotations_as_cvat_does(
    annotations: dict[str, str], expected: InteractorFunctionSpec
) -> None:
    assert InteractorFunctionSpec.from_annotations(annotations) == expected


def test_interactor_spec_bad_int_names_the_function() -> None:
    with pytest.raises(ConfigError, match="sam: min_pos_points"):
        InteractorFunctionSpec.from_annotations({"min_pos_points": "one"}, where="sam")


def test_repository_sam_interactors_declare_what_their_functions_need() -> None:
    from pathlib import Path

    from cvat_ext.functions.spec import load_function_config

    serverless = Path(__file__).resolve().parents[2] / "serverless" / "pytorch"
    drop_in = load_function_config(serverless / "facebookresearch" / "sam" / "nuclio" / "function.yaml").interactor
    server = load_function_config(serverless / "cvat_ext" / "sam-interactor" / "nuclio" / "function.yaml").interactor
    # the drop-in takes a bare frame (the browser decodes); the server-decoded one needs a click or a box
    assert (drop_in.min_pos_points, drop_in.startswith_box_optional) == (0, True)
    assert (server.min_pos_points, server.min_neg_points, server.startswith_box_optional) == (1, 0, True)

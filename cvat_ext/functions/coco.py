"""COCO label facts shared by the torchvision functions and their cvat-sdk wrappers.

``COCO_CATEGORIES`` is torchvision's 91-entry class index of its COCO detection models (index 0
is the background, ``"N/A"`` marks ids unused by COCO 2017). ``COCO_KEYPOINTS`` are the 17 person
keypoints in model output order and ``COCO_SKELETON`` the usual limb edges between them (0-based).
"""

from __future__ import annotations

from cvat_ext.functions.interface import LabelSpec

COCO_CATEGORIES: tuple[str, ...] = (
    "__background__",
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "N/A",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "N/A",
    "backpack",
    "umbrella",
    "N/A",
    "N/A",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "N/A",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "N/A",
    "dining table",
    "N/A",
    "N/A",
    "toilet",
    "N/A",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "N/A",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
)

COCO_KEYPOINTS: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)

#: limb edges as (from, to) keypoint indices
COCO_SKELETON: tuple[tuple[int, int], ...] = (
    (15, 13),
    (13, 11),
    (16, 14),
    (14, 12),
    (11, 12),
    (5, 11),
    (6, 12),
    (5, 6),
    (5, 7),
    (6, 8),
    (7, 9),
    (8, 10),
    (1, 2),
    (0, 1),
    (0, 2),
    (1, 3),
    (2, 4),
    (3, 5),
    (4, 6),
)

#: where each keypoint sits in CVAT's skeleton editor (0..100 box; a person facing the viewer)
_KEYPOINT_XY: tuple[tuple[float, float], ...] = (
    (50, 8),
    (46, 5),
    (54, 5),
    (42, 7),
    (58, 7),
    (36, 22),
    (64, 22),
    (30, 38),
    (70, 38),
    (26, 52),
    (74, 52),
    (42, 55),
    (58, 55),
    (41, 75),
    (59, 75),
    (40, 95),
    (60, 95),
)


def coco_detection_labels(label_type: str = "mask") -> tuple[LabelSpec, ...]:
    """One label per COCO class, ``id`` = torchvision class index, all of ``label_type``."""
    return tuple(
        LabelSpec(name, label_type, idx) for idx, name in enumerate(COCO_CATEGORIES) if idx > 0 and name != "N/A"
    )


def skeleton_svg(
    names: tuple[str, ...], edges: tuple[tuple[int, int], ...], xy: tuple[tuple[float, float], ...]
) -> str:
    """CVAT's skeleton SVG fragment: ``<line data-type="edge">`` per edge, ``<circle>`` per node (1-based ids)."""
    parts = [
        f'<line x1="{xy[a][0]}" y1="{xy[a][1]}" x2="{xy[b][0]}" y2="{xy[b][1]}" stroke="black" '
        f'data-type="edge" data-node-from="{a + 1}" data-node-to="{b + 1}"></line>'
        for a, b in edges
    ]
    parts += [
        f'<circle r="1.5" stroke="black" fill="#b3b3b3" cx="{x}" cy="{y}" data-type="element node" '
        f'data-element-id="{i + 1}" data-node-id="{i + 1}" data-label-name="{name}"></circle>'
        for i, (name, (x, y)) in enumerate(zip(names, xy, strict=True))
    ]
    return "".join(parts)


def coco_person_skeleton_label(label_id: int = 1, name: str = "person") -> LabelSpec:
    """The skeleton label of the keypoint model: 17 ``points`` sublabels (ids 0..16) and its SVG."""
    return LabelSpec(
        name,
        "skeleton",
        label_id,
        sublabels=tuple(LabelSpec(kp, "points", i) for i, kp in enumerate(COCO_KEYPOINTS)),
        svg=skeleton_svg(COCO_KEYPOINTS, COCO_SKELETON, _KEYPOINT_XY),
    )

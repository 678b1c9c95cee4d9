"""Every rule kind on good and bad data: (rule, objects, expected findings, words in the message)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from cvat_ext.annotations.model import Shape
from cvat_ext.rules import Action, Severity
from tests.rules.builders import attrs, box_track, mask, meta, rect, run, shape, skeleton, tag

SIZE = {"id": "sz", "kind": "size", "min_width": 4, "min_height": 4}
SIZE_FRAC = {"id": "szf", "kind": "size", "max_area_frac": 0.5, "min_width_frac": 0.01}
OUT_TRUNC_OK = {"id": "out", "kind": "outside_frame", "allow_truncation": True, "tolerance_px": 1}
OUT_STRICT = {"id": "edge", "kind": "outside_frame", "allow_truncation": False, "tolerance_px": 2}
RATIO = {"id": "ar", "kind": "aspect_ratio", "min_ratio": 0.2, "max_ratio": 5, "scope": {"labels": ["person"]}}
TYPES = {"id": "ty", "kind": "allowed_shape_types", "types": ["rectangle"], "scope": {"labels": ["car"]}}
ATTRS = {
    "id": "at",
    "kind": "required_attributes",
    "scope": {"labels": ["sign"]},
    "required": ["kind"],
    "allowed_values": {"kind": ["stop", "yield"]},
}
DUP = {"id": "dup", "kind": "duplicates", "iou_thr": 0.8}
FORBID = {
    "id": "fo",
    "kind": "forbidden_overlap",
    "scope": {"labels": ["person"]},
    "other_labels": ["car"],
    "metric": "ioa",
    "max_overlap": 0.5,
}
COOC = {
    "id": "co",
    "kind": "required_cooccurrence",
    "scope": {"labels": ["rider"]},
    "other_labels": ["bicycle", "motorcycle"],
    "min_ioa": 0.1,
}
POLY = {"id": "pv", "kind": "polygon_validity", "min_area": 1}
POLY4 = {"id": "pv4", "kind": "polygon_validity", "min_vertices": 4}
MASK = {"id": "mv", "kind": "mask_validity", "min_pixels": 4, "max_fragments": 1}
MASK4 = {"id": "mv4", "kind": "mask_validity", "max_fragments": 1, "connectivity": 4}
KP_VIS = {"id": "kv", "kind": "keypoints", "min_visible": 3}
KP_BOX = {"id": "kb", "kind": "keypoints", "box_labels": ["person"], "box_tolerance_px": 2}
MAXOBJ = {"id": "mo", "kind": "max_objects_per_frame", "max_objects": 2, "scope": {"labels": ["car"]}}
CUBOID = {"id": "cu", "kind": "cuboid_size", "min_width": 10, "max_depth": 50}
EXPR = {"id": "ex", "kind": "expression", "expr": "width >= 4 and height >= 4", "scope": {"labels": ["car"]}}
EXPR_ATTR = {
    "id": "exa",
    "kind": "expression",
    "expr": 'area >= 400 or attributes["kind"] == "other"',
    "scope": {"labels": ["sign"]},
    "message": "small signs must be kind=other",
}

BOWTIE = [[0, 0], [10, 10], [10, 0], [0, 10]]
SQUARE = [[0, 0], [10, 0], [10, 10], [0, 10]]
FLAT = [[0, 0], [5, 0], [10, 0]]
TWO_BLOBS = np.zeros((6, 6), dtype=bool)
TWO_BLOBS[:2, :2] = True
TWO_BLOBS[4:, 4:] = True
DIAGONAL = np.eye(4, dtype=bool)


def cuboid(width: float, depth: float) -> Shape:
    front = [[10, 10], [10, 30], [10 + width, 10], [10 + width, 30]]
    back = [[x + depth, y] for x, y in front]
    return shape("cuboid", "car", front + back, id=9)


FULL_POSE = {"head": (50, 10), "l_hand": (20, 40), "r_hand": (80, 40), "foot": (50, 90)}

CASES: list[tuple[str, dict[str, Any], list[Shape], int, str]] = [
    ("size ok", SIZE, [rect("car", [10, 10, 30, 30])], 0, ""),
    ("size 2x2", SIZE, [rect("car", [10, 10, 12, 12], id=5)], 1, "width 2 px < min_width 4 px; height 2 px"),
    ("size 2 px tall", SIZE, [rect("car", [10, 10, 30, 12])], 1, "height 2 px < min_height"),
    ("size mask pixels", SIZE, [mask("person", np.ones((3, 3)))], 1, "width 3 px"),
    ("frac ok", SIZE_FRAC, [rect("car", [0, 0, 100, 100])], 0, ""),
    ("frac too big", SIZE_FRAC, [rect("car", [0, 0, 600, 400])], 1, "area_frac 0.781 > max_area_frac 0.5"),
    ("frac too thin", SIZE_FRAC, [rect("car", [0, 0, 3, 100])], 1, "width_frac 0.00469 < min_width_frac 0.01"),
    ("inside", OUT_TRUNC_OK, [rect("car", [0, 0, 640, 480])], 0, ""),
    ("truncated allowed", OUT_TRUNC_OK, [rect("car", [-20, 10, 30, 40])], 0, ""),
    ("entirely outside", OUT_TRUNC_OK, [rect("car", [650, 10, 700, 40])], 1, "entirely outside the 640x480"),
    ("within tolerance", OUT_STRICT, [rect("car", [-1.5, 10, 641, 40])], 0, ""),
    ("beyond edge", OUT_STRICT, [rect("car", [-21.77, 246.88, 73.36, 274.44])], 1, "21.8 px outside"),
    ("rotated beyond edge", OUT_STRICT, [rect("car", [610, 100, 640, 160], rotation=45)], 1, "16.8 px outside"),
    ("ellipse beyond", OUT_STRICT, [shape("ellipse", "person", [630, 100, 650, 90])], 1, "10 px outside"),
    ("ratio ok", RATIO, [rect("person", [0, 0, 20, 60])], 0, ""),
    ("ratio flat", RATIO, [rect("person", [0, 0, 200, 20])], 1, "ratio 10 > max_ratio 5"),
    ("ratio other label", RATIO, [rect("car", [0, 0, 200, 20])], 0, ""),
    ("type ok", TYPES, [rect("car", [0, 0, 20, 20])], 0, ""),
    ("type polygon", TYPES, [shape("polygon", "car", SQUARE, id=3)], 1, "car polygon 3: type polygon is not allowed"),
    ("attr ok", ATTRS, [rect("sign", [0, 0, 20, 20], attributes=attrs(kind="stop"))], 0, ""),
    ("attr missing", ATTRS, [rect("sign", [0, 0, 20, 20])], 1, "attribute 'kind' has no value"),
    ("attr value", ATTRS, [rect("sign", [0, 0, 20, 20], attributes=attrs(kind="other"))], 1, "'other', allowed: stop"),
    ("dup distinct", DUP, [rect("car", [0, 0, 20, 20], id=1), rect("car", [30, 0, 50, 20], id=2)], 0, ""),
    ("dup other label", DUP, [rect("car", [0, 0, 20, 20], id=1), rect("person", [0, 0, 20, 20], id=2)], 0, ""),
    (
        "dup same",
        DUP,
        [rect("car", [0, 0, 20, 20], id=1), rect("car", [0, 0, 20, 21], id=2)],
        1,
        "car rectangle 2: duplicates car rectangle 1 (IoU 0.952 >= iou_thr 0.8)",
    ),
    ("forbid apart", FORBID, [rect("person", [0, 0, 10, 10]), rect("car", [20, 20, 40, 40])], 0, ""),
    (
        "forbid inside",
        FORBID,
        [rect("person", [22, 22, 30, 30]), rect("car", [20, 20, 40, 40])],
        1,
        "ioa 1 > max_overlap",
    ),
    ("rider on bike", COOC, [rect("rider", [10, 0, 30, 40]), rect("bicycle", [5, 20, 35, 50])], 0, ""),
    ("rider on moto", COOC, [rect("rider", [10, 0, 30, 40]), rect("motorcycle", [5, 20, 35, 50])], 0, ""),
    (
        "rider alone",
        COOC,
        [rect("rider", [10, 0, 30, 40]), rect("bicycle", [100, 20, 135, 50])],
        1,
        "overlaps no bicycle",
    ),
    ("rider no partner", COOC, [rect("rider", [10, 0, 30, 40])], 1, "best coverage 0"),
    ("polygon ok", POLY, [shape("polygon", "person", SQUARE)], 0, ""),
    ("bowtie", POLY, [shape("polygon", "person", BOWTIE, id=4)], 1, "self-intersects"),
    ("flat", POLY, [shape("polygon", "person", FLAT)], 1, "area 0 px² <= min_area 1"),
    ("triangle < 4", POLY4, [shape("polygon", "person", [[0, 0], [9, 0], [0, 9]])], 1, "3 vertices < min_vertices 4"),
    ("mask ok", MASK, [mask("person", np.ones((3, 3)))], 0, ""),
    ("mask fragments", MASK, [mask("person", TWO_BLOBS, 5, 5)], 1, "2 fragments > max_fragments 1"),
    ("mask tiny", MASK, [mask("person", [[1, 0], [0, 0]])], 1, "1 foreground pixels < min_pixels 4"),
    ("diagonal 8-conn", MASK, [mask("person", DIAGONAL)], 0, ""),
    ("diagonal 4-conn", MASK4, [mask("person", DIAGONAL)], 1, "4 fragments"),
    ("pose visible", KP_VIS, [skeleton(FULL_POSE)], 0, ""),
    ("pose hidden", KP_VIS, [skeleton({**FULL_POSE, "foot": None, "r_hand": None})], 1, "2 of 4 keypoints visible"),
    ("pose in box", KP_BOX, [skeleton(FULL_POSE), rect("person", [18, 8, 82, 92])], 0, ""),
    (
        "pose hand out",
        KP_BOX,
        [skeleton({**FULL_POSE, "r_hand": (120, 40)}), rect("person", [18, 8, 82, 92], id=11)],
        1,
        "keypoint(s) r_hand outside person rectangle 11",
    ),
    (
        "pose grouped box",
        KP_BOX,
        [
            skeleton(FULL_POSE, group=3),
            rect("person", [18, 8, 82, 92], group=4),
            rect("person", [0, 0, 30, 30], group=3),
        ],
        1,
        "outside",
    ),
    ("few cars", MAXOBJ, [rect("car", [0, 0, 9, 9]), rect("car", [20, 0, 29, 9]), rect("person", [0, 0, 5, 5])], 0, ""),
    (
        "many cars",
        MAXOBJ,
        [rect("car", [i * 20, 0, i * 20 + 9, 9]) for i in range(3)],
        1,
        "3 objects (car) > max_objects 2",
    ),
    ("cuboid ok", CUBOID, [cuboid(20, 10)], 0, ""),
    ("cuboid deep", CUBOID, [cuboid(20, 80)], 1, "depth 80 px > max_depth 50 px"),
    ("cuboid thin", CUBOID, [cuboid(5, 10)], 1, "width 5 px < min_width 10 px"),
    ("expr ok", EXPR, [rect("car", [0, 0, 10, 10])], 0, ""),
    ("expr fails", EXPR, [rect("car", [0, 0, 10, 2])], 1, "fails `width >= 4 and height >= 4` (width=10, height=2)"),
    ("expr small other", EXPR_ATTR, [rect("sign", [0, 0, 10, 10], attributes=attrs(kind="other"))], 0, ""),
    ("expr small stop", EXPR_ATTR, [rect("sign", [0, 0, 10, 10], attributes=attrs(kind="stop"))], 1, "small signs"),
]


@pytest.mark.parametrize(("rule", "shapes", "count", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_kind(rule: dict[str, Any], shapes: list[Shape], count: int, words: str) -> None:
    findings = run(rule, shapes)
    assert len(findings) == count, [str(f) for f in findings]
    if count:
        assert words in findings[0].message
        assert findings[0].code == rule["id"]
        assert findings[0].rule_kind == rule["kind"]


def test_outside_shapes_of_tracks_are_not_checked() -> None:
    hidden = rect("car", [1, 1, 2, 2], outside=True)
    assert run(SIZE, [hidden]) == []


def test_frame_tags() -> None:
    rule = {"id": "tags", "kind": "required_frame_tags", "tags": ["day", "blurry"], "mode": "any"}
    found = run(rule, [rect("car", [0, 0, 9, 9], frame=1)], tags=[tag("day", 0), tag("blurry", 2)], job_meta=meta(4))
    # frames 1 (annotated, untagged) and 3 (empty) lack a tag; the finding covers the whole image
    assert [f.frame for f in found] == [1, 3]
    assert found[0].xyxy == (0.0, 0.0, 640.0, 480.0)
    assert found[0].object_id is None
    rule_all = {**rule, "mode": "all"}
    found = run(rule_all, tags=[tag("day", 0), tag("blurry", 0), tag("day", 1)], job_meta=meta(2))
    assert [(f.frame, f.message) for f in found] == [(1, "frame tag(s) blurry missing")]


TRACK_RULE = {"id": "tr", "kind": "tracks", "min_length": 3, "max_gap": 2, "max_jump_px": 30}


@pytest.mark.parametrize(
    ("keyframes", "words"),
    [
        ([(0, [0, 0, 10, 10], False), (5, [10, 0, 20, 10], False), (9, [10, 0, 20, 10], True)], []),
        ([(0, [0, 0, 10, 10], False), (2, [0, 0, 10, 10], True)], ["visible on 2 frame(s) < min_length 3"]),
        (
            [(0, [0, 0, 10, 10], False), (3, [0, 0, 10, 10], True), (7, [0, 0, 10, 10], False)],
            ["hidden for 4 frames (3-6) > max_gap 2"],
        ),
        (
            [(0, [0, 0, 10, 10], False), (2, [200, 0, 210, 10], False), (5, [0, 0, 1, 1], True)],
            ["centre moves 100 px/frame between frames 0 and 2"],
        ),
    ],
)
def test_tracks(keyframes: list[tuple[int, list[float], bool]], words: list[str]) -> None:
    found = run(TRACK_RULE, tracks=[box_track("car", keyframes, id=42)])
    assert len(found) == len(words), [str(f) for f in found]
    assert all(w in f.message for w, f in zip(words, found, strict=True))
    for f in found:
        assert f.track_id == 42 and f.message.startswith("car track 42: ")


def test_track_jump_as_fraction_of_diagonal() -> None:
    rule = {"id": "tj", "kind": "tracks", "max_jump_frac": 0.1}
    slow = box_track("car", [(0, [0, 0, 10, 10], False), (10, [300, 0, 310, 10], False)])
    fast = box_track("car", [(0, [0, 0, 10, 10], False), (1, [300, 0, 310, 10], False)], id=2)
    found = run(rule, tracks=[slow, fast])
    assert [f.track_id for f in found] == [2]
    assert "0.375 of the diagonal" in found[0].message  # 300 px / 800 px diagonal


def test_bone_ratio_outlier() -> None:
    rule = {"id": "bones", "kind": "keypoints", "max_bone_ratio": 2.0, "min_skeletons": 5}
    normal = [skeleton(FULL_POSE, frame=f, id=100 + f) for f in range(5)]
    # the foot is 5x further from the head than usual, relative to the skeleton's other bones
    odd = skeleton({**FULL_POSE, "foot": (50, 410)}, frame=5, id=200)
    found = run(rule, [*normal, odd])
    assert [f.object_id for f in found] == [200]
    assert "bone head-foot is" in found[0].message and "x the label median" in found[0].message
    # too few skeletons for a median: nothing judged
    assert run(rule, [*normal[:3], odd]) == []


def test_bones_from_rule_names() -> None:
    rule = {
        "id": "b",
        "kind": "keypoints",
        "max_bone_ratio": 2.0,
        "min_skeletons": 3,
        "bones": [["head", "l_hand"], ["head", "r_hand"]],
    }
    poses = [skeleton(FULL_POSE, frame=f, id=f) for f in range(3)]
    odd = skeleton({**FULL_POSE, "l_hand": (49, 11)}, frame=4, id=9)
    assert [f.object_id for f in run(rule, [*poses, odd])] == [9]


def test_finding_fields_and_actions() -> None:
    rule = {**SIZE, "severity": "warning"}
    (found,) = run(rule, [rect("car", [630, 10, 642, 12], id=77, frame=3)])
    assert found.severity is Severity.WARNING
    assert found.action is Action.OPEN_ISSUE  # the default action for warnings
    assert (found.job_id, found.frame, found.object_id, found.annotator, found.label) == (7, 3, 77, "ann3", "car")
    assert found.xyxy == (630.0, 10.0, 640.0, 12.0)  # clipped into the image for the CVAT issue
    assert str(found).startswith("job 7 frame 3: [warning sz] car rectangle 77: ")
    (found,) = run({**SIZE, "action": "send_to_review"}, [rect("car", [0, 0, 1, 1])])
    assert found.action is Action.SEND_TO_REVIEW
    assert found.rule_record()["action"] == "send_to_review"


def test_scope_by_project_and_task() -> None:
    rule = {**SIZE, "scope": {"projects": [24], "tasks": [52]}}
    tiny = [rect("car", [0, 0, 1, 1])]
    assert run(rule, tiny) == []
    assert run(rule, tiny, project_id=24) == []
    assert len(run(rule, tiny, project_id=24, task_id=52)) == 1
    assert run({**SIZE, "enabled": False}, tiny) == []


def test_unknown_label_in_scope_matches_nothing() -> None:
    assert run({**SIZE, "scope": {"labels": ["unicorn"]}}, [rect("car", [0, 0, 1, 1])]) == []


def test_track_shapes_are_checked_per_frame_with_their_track_id() -> None:
    # a car track shrinking from 20x20 to 0x0: frames where the interpolated box is under 4 px are reported
    track = box_track("car", [(0, [0, 0, 20, 20], False), (10, [0, 0, 0, 0], False), (11, [0, 0, 0, 0], True)], id=5)
    found = run(SIZE, tracks=[track], job_meta=meta(12))
    assert [f.frame for f in found] == [9, 10]  # 20 - 2*9 = 2 px on frame 9, 0 px on frame 10
    assert all(f.object_id is None and f.track_id == 5 for f in found)
    assert found[0].message.startswith("car rectangle (track 5): width 2 px < min_width 4 px")


def test_unknown_frame_size_skips_only_frame_relative_checks() -> None:
    from cvat_ext.annotations.model import FrameInfo, JobMeta

    mixed = JobMeta(start_frame=0, stop_frame=1, frames=(FrameInfo(640, 480), FrameInfo(800, 600)))
    far = [rect("car", [0, 0, 600, 2], frame=50)]  # CVAT accepts frames beyond the job
    rules = [SIZE_FRAC, OUT_STRICT, SIZE, {"id": "e", "kind": "expression", "expr": "frame_width == 0"}]
    found = run(rules, far, job_meta=mixed)
    assert sorted(f.code for f in found) == ["sz"]  # the pixel bound still applies


def test_check_job_orders_by_frame_then_rule() -> None:
    shapes = [rect("car", [0, 0, 2, 2], frame=f) for f in (3, 1)] + [rect("car", [700, 0, 720, 2], frame=1)]
    found = run([OUT_TRUNC_OK, SIZE], shapes)
    assert [(f.frame, f.code) for f in found] == [(1, "out"), (1, "sz"), (1, "sz"), (3, "sz")]

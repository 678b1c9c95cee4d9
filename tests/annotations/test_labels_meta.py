"""Labels and job frame meta parsed from the recorded CVAT answers."""

from __future__ import annotations

from typing import Any

from cvat_ext.annotations.cvat_json import dump_labels, parse_job_meta, parse_labels
from cvat_ext.annotations.model import AttributeInputType, FrameInfo
from tests.annotations.recordings import load


def _labels_page() -> dict[str, Any]:
    page: dict[str, Any] = load("22_labels_list_task.json")["exchanges"][0]["response"]["body"]
    return page


def test_labels_from_recording() -> None:
    labels = parse_labels(_labels_page(), where="task 52")
    assert [label.name for label in labels] == ["car", "person", "sign", "pose", "blurry"]
    assert labels.by_name["car"].type == "rectangle"
    assert labels.by_name["blurry"].type == "tag"
    sign = labels.by_name["sign"]
    kind, flag = sign.attributes
    assert (kind.id, kind.name, kind.input_type, kind.mutable) == (32, "kind", AttributeInputType.SELECT, False)
    assert kind.values == ("stop", "yield", "other") and kind.default_value == "other"
    assert flag.input_type is AttributeInputType.CHECKBOX and flag.values == ("false",)
    assert labels.attribute(33) == flag
    pose = labels.by_name["pose"]
    assert [s.name for s in pose.sublabels] == ["head", "l_hand", "r_hand", "l_foot", "r_foot"]
    assert all(s.parent_id == pose.id and s.type == "points" for s in pose.sublabels)
    assert 'data-label-id="169"' in pose.svg
    assert labels.get(171).name == "r_hand"
    assert pose.parent_id is None and pose.color == "#b83df5"


def test_labels_accept_a_plain_list_too() -> None:
    page = _labels_page()
    assert parse_labels(page["results"]) == parse_labels(page)


def test_dump_labels_gives_cvat_answer_without_ids_of_owners() -> None:
    page = _labels_page()
    expected = [{k: v for k, v in label.items() if k not in ("project_id", "task_id")} for label in page["results"]]
    assert dump_labels(parse_labels(page)) == expected


def _meta(index: int) -> dict[str, Any]:
    meta: dict[str, Any] = load("34_job_data_meta.json")["exchanges"][index]["response"]["body"]
    return meta


def test_job_meta_of_a_replica() -> None:
    meta = parse_job_meta(_meta(0), where="job 132")
    assert (meta.start_frame, meta.stop_frame, meta.step) == (0, 9, 1)
    assert len(meta.frames) == 10
    assert meta.frame_info(3) == FrameInfo(640, 480, "frame_003.png")
    assert meta.included_frames is None and meta.deleted_frames == ()
    assert meta.frame_indices() == list(range(10))


def test_job_meta_of_a_gt_job() -> None:
    meta = parse_job_meta(_meta(1), where="job 139")
    assert (meta.start_frame, meta.stop_frame) == (0, 19)
    assert meta.included_frames == (1, 7, 8, 11, 15)
    assert meta.frame_indices() == [1, 7, 8, 11, 15]
    assert meta.frame_info(15).name == "frame_015.png"
    assert meta.frame_info(2).name == "placeholder.jpg"


def test_job_meta_with_step_and_deleted_frames() -> None:
    meta = parse_job_meta(
        {
            "start_frame": 10,
            "stop_frame": 16,
            "frame_filter": "step=3",
            "frames": [{"width": 4, "height": 3, "name": n} for n in ("a", "b", "c")],
            "deleted_frames": [13],
            "included_frames": None,
        }
    )
    assert meta.step == 3
    assert meta.frame_indices() == [10, 16]
    assert meta.frame_info(16).name == "c"

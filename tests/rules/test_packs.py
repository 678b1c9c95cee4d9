"""The shipped packs on realistic synthetic jobs (clean = no finding; each defect = its rule) and on
recorded CVAT annotations."""

from __future__ import annotations

from pathlib import Path

import pytest

from cvat_ext.rules import Severity, check_job, iter_findings, load_packs
from tests.rules.recorded import recorded_job
from tests.rules.scenes import DRIVING_DEFECTS, RETAIL_DEFECTS, driving_job, retail_job

QA_RULES = Path(__file__).resolve().parents[2] / "qa_rules"


@pytest.fixture(scope="module")
def driving() -> object:
    return load_packs([QA_RULES / "driving.yaml"])


@pytest.fixture(scope="module")
def retail() -> object:
    return load_packs([QA_RULES / "retail_shelves.yaml"])


def test_driving_clean_scene_has_no_findings(driving: object) -> None:
    ann, labels, meta = driving_job()
    found = check_job(ann, labels, meta, driving, job_id=1, annotator="ann1")  # type: ignore[arg-type]
    assert found == [], [str(f) for f in found]


@pytest.mark.parametrize("defect", sorted(DRIVING_DEFECTS))
def test_driving_defect_caught_by_its_rule(driving: object, defect: str) -> None:
    ann, labels, meta = driving_job([defect])
    found = check_job(ann, labels, meta, driving, job_id=1, annotator="ann1")  # type: ignore[arg-type]
    assert {f.code for f in found} == set(DRIVING_DEFECTS[defect].split("+")), [str(f) for f in found]


def test_driving_all_defects_at_once(driving: object) -> None:
    ann, labels, meta = driving_job(DRIVING_DEFECTS)
    found = check_job(ann, labels, meta, driving, job_id=1, annotator="ann1")  # type: ignore[arg-type]
    assert {f.code for f in found} == {r for v in DRIVING_DEFECTS.values() for r in v.split("+")}


def test_retail_clean_scene_has_no_findings(retail: object) -> None:
    ann, labels, meta = retail_job()
    found = check_job(ann, labels, meta, retail, job_id=2, annotator="ann2")  # type: ignore[arg-type]
    assert found == [], [str(f) for f in found]


@pytest.mark.parametrize("defect", sorted(RETAIL_DEFECTS))
def test_retail_defect_caught_by_its_rule(retail: object, defect: str) -> None:
    ann, labels, meta = retail_job([defect])
    found = check_job(ann, labels, meta, retail, job_id=2, annotator="ann2")  # type: ignore[arg-type]
    assert {f.code for f in found} == set(RETAIL_DEFECTS[defect].split("+")), [str(f) for f in found]


def test_retail_actions_come_from_the_pack(retail: object) -> None:
    ann, labels, meta = retail_job(["no_section_tag", "unknown_facing"])
    found = check_job(ann, labels, meta, retail, job_id=2, annotator="ann2")  # type: ignore[arg-type]
    actions = {(f.code, f.severity.value, f.action.value) for f in found}
    assert actions == {("section-tag", "error", "send_to_review"), ("product-facing", "warning", "open_issue")}


# ----------------------------------------------------------------------------------------------
# recorded CVAT 2.73 annotations


def test_recorded_merged_job_impossible_labels() -> None:
    """The merged parent job carries ann3's 2x2 boxes and boxes partly outside the 640x480 image."""
    ann, labels, meta = recorded_job("72_consensus_parent_after_merge.json")
    pack = load_packs([QA_RULES / "default.yaml"])
    found = check_job(ann, labels, meta, pack, job_id=131, annotator="ann3", project_id=24, task_id=52)
    tiny = sorted(f.object_id for f in found if f.code == "tiny-object")
    edge = sorted(f.object_id for f in found if f.code == "beyond-image-edge")
    assert tiny == [4372, 4406, 4421]
    assert edge == [4365, 4370, 4414, 4419]
    one = next(f for f in found if f.object_id == 4372)
    assert one.message == "car rectangle 4372: width 2 px < min_width 4 px; height 2 px < min_height 4 px"
    assert (one.frame, one.severity, one.job_id, one.annotator) == (2, Severity.ERROR, 131, "ann3")
    assert one.xyxy == (410.7, 21.0, 412.7, 23.0)
    beyond = next(f for f in found if f.object_id == 4419)
    assert beyond.xyxy[0] == 0.0  # pinned inside the image
    assert {f.code for f in found} <= {"tiny-object", "beyond-image-edge", "polygon-valid"}


@pytest.mark.parametrize("name", ["default.yaml", "driving.yaml", "retail_shelves.yaml"])
def test_recorded_replica_with_every_shape_type(name: str) -> None:
    """ann1's replica (every shape type, skeletons, a track) runs through every pack."""
    ann, labels, meta = recorded_job("40_job_annotations_get_replica.json")
    pack = load_packs([QA_RULES / name])
    found = list(iter_findings(ann, labels, meta, pack, job_id=136, annotator="ann1"))
    assert all(f.job_id == 136 and f.annotator == "ann1" for f in found)
    assert all(10 <= f.frame <= 19 for f in found)
    if name == "driving.yaml":
        # the recorded car track moves 83.7 px/frame between keyframes 12 and 15 (diagonal 800 px)
        assert [(f.code, f.track_id, f.frame) for f in found] == [("vehicle-tracks", 42, 15)]
    if name == "retail_shelves.yaml":
        # no section tags in a driving task: every frame of the job is reported once
        assert sorted(f.frame for f in found if f.code == "section-tag") == list(range(10, 20))


def test_recorded_gt_job_is_clean() -> None:
    ann, labels, meta = recorded_job("41_job_annotations_get_gt.json")
    pack = load_packs([QA_RULES / "default.yaml"])
    assert check_job(ann, labels, meta, pack, job_id=139, annotator="rev1") == []


@pytest.mark.parametrize("batch_rows", [1, 50, 10_000])
def test_batching_does_not_change_findings(driving: object, batch_rows: int) -> None:
    """One frame per batch, a few frames per batch, or the whole job at once: the same findings."""
    ann, labels, meta = driving_job(DRIVING_DEFECTS)
    reference = check_job(ann, labels, meta, driving, job_id=1, annotator="a")  # type: ignore[arg-type]
    found = iter_findings(ann, labels, meta, driving, job_id=1, annotator="a", batch_rows=batch_rows)  # type: ignore[arg-type]
    key = lambda f: (f.frame, f.code, f.object_id or 0, f.track_id or 0, f.message)  # noqa: E731
    assert sorted(found, key=key) == sorted(reference, key=key)
    assert len(reference) >= len(DRIVING_DEFECTS)


def test_recorded_skeleton_svg_gives_the_bones() -> None:
    from cvat_ext.rules.kinds.keypoints import skeleton_bones

    _, labels, _ = recorded_job("40_job_annotations_get_replica.json")
    pose = labels.by_name["pose"]
    ids = {sub.name: sub.id for sub in pose.sublabels}
    assert skeleton_bones(pose) == [(ids["head"], ids[n]) for n in ("l_hand", "r_hand", "l_foot", "r_foot")]
    assert skeleton_bones(pose, (("head", "l_foot"), ("knee", "head"))) == [(ids["head"], ids["l_foot"])]


def test_recorded_skeletons_with_hidden_keypoints() -> None:
    """ann1's skeletons have some keypoints outside (invisible): min_visible counts only visible ones."""
    ann, labels, meta = recorded_job("40_job_annotations_get_replica.json")
    skeletons = [s for s in ann.shapes if s.type.value == "skeleton"]
    visible = {s.id: sum(not e.outside for e in s.elements) for s in skeletons}
    pack = load_packs([QA_RULES / "default.yaml"])
    strict = type(pack)(
        name="strict",
        rules=(pack.rule("skeleton-visible").model_copy(update={"min_visible": 5}),),
    )
    found = check_job(ann, labels, meta, strict, job_id=136, annotator="ann1")
    assert sorted(f.object_id for f in found) == sorted(i for i, n in visible.items() if n < 5)
    assert found and all("keypoints visible < min_visible 5" in f.message for f in found)

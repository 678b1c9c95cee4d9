"""The engine end to end on small fixed scenarios whose numbers are computed by hand."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from cvat_ext.annotations.cvat_json import dump_job_annotations, parse_job_annotations
from cvat_ext.annotations.model import JobAnnotations, MaskRle, Shape, ShapeType, Track, TrackShape
from cvat_ext.consensus.engine import score_replicas
from cvat_ext.consensus.report import FindingKind
from cvat_ext.consensus.settings import ConsensusSettings
from cvat_ext.errors import ConfigError
from tests.consensus.helpers import CAR, KIND_SPEC, PERSON, box, labels, meta

EQUAL = ConsensusSettings(iou_thr=0.5, quorum=2, estimate_reliability=False)


def golden_replicas() -> dict[str, JobAnnotations]:
    """Frame 0: X seen by a, b, c (c shifted by 1 px); Y by a (person) and b (car); Z by c only.
    Frame 1: W by a and b, IoU exactly 0.5."""
    a = [box(0, CAR, [0, 0, 10, 10]), box(0, PERSON, [100, 100, 120, 120]), box(1, CAR, [0, 0, 20, 20])]
    b = [box(0, CAR, [0, 0, 10, 10]), box(0, CAR, [100, 100, 120, 120]), box(1, CAR, [0, 0, 20, 10])]
    c = [box(0, CAR, [1, 0, 11, 10]), box(0, CAR, [200, 200, 210, 210])]
    return {name: JobAnnotations(shapes=tuple(s)) for name, s in (("a", a), ("b", b), ("c", c))}


def test_golden_report() -> None:
    result = score_replicas(golden_replicas(), labels(), meta(2), EQUAL)
    s = result.summary
    iou_ac = 90 / 110  # X: a vs c
    # clusters X{a,b,c} Y{a,b} Z{c} W{a,b}; Z is below the quorum
    assert (s.frames, s.clusters, s.kept) == (2, 4, 3)
    assert s.mean_iou == pytest.approx((1 + 2 * iou_ac + 1 + 0.5) / 5)
    # 5 matched pairs, 8 objects: pooled pairwise F1 = 2 * 5 / ((3 - 1) * 8)
    assert s.f1 == pytest.approx(10 / 16)
    assert (s.missing, s.extra, s.label_disagreements, s.low_overlap) == (2, 1, 1, 1)
    # localise-then-label units X(1,1,1) Y(2,1,-) Z(-,-,1) W(1,1,-): by hand alpha = 1 - 77/78
    assert s.alpha_lol == pytest.approx(1 / 78)
    # labels only: X(1,1,1) Y(2,1) W(1,1); Z has a single value: alpha = 1 - 2/2
    assert s.alpha_label == pytest.approx(0.0)
    assert s.quorum == "2"

    by_name = {a.annotator: a for a in result.annotators}
    a, c = by_name["a"], by_name["c"]
    assert (a.objects, a.matched, a.missing, a.extra) == (3, 3, 0, 0)
    assert a.vs_consensus_label_accuracy == pytest.approx(2 / 3)  # Y: person, the consensus says car (tie -> lower id)
    assert a.vs_consensus_mean_iou == pytest.approx((1 + iou_ac + 1 + 0.5) / 4)
    assert (c.objects, c.matched, c.missing, c.extra) == (2, 1, 2, 1)
    assert (c.vs_consensus_precision, c.vs_consensus_recall, c.vs_consensus_f1) == pytest.approx((1 / 2, 1 / 3, 2 / 5))

    pairs = {(p.a, p.b): p for p in result.pairs}
    assert (pairs[("a", "b")].matched, pairs[("a", "b")].f1) == (3, 1.0)
    assert pairs[("a", "b")].mean_iou == pytest.approx(2.5 / 3)
    assert (pairs[("a", "c")].matched, pairs[("a", "c")].f1) == (1, pytest.approx(0.4))

    kinds = sorted((f.frame, f.code) for f in result.findings)
    assert kinds == [
        (0, "extra"),
        (0, "label_disagreement"),
        (0, "missing"),
        (1, "low_overlap"),
        (1, "missing"),
    ]
    label_finding = next(f for f in result.findings if f.code is FindingKind.LABEL_DISAGREEMENT)
    assert label_finding.votes.labels_by_annotator == (("a", "person"), ("b", "car"))
    assert label_finding.xyxy == (100.0, 100.0, 120.0, 120.0)
    assert label_finding.votes.missing == ("c",)
    assert [(f.frame, f.clusters, f.kept, f.findings) for f in result.frames] == [(0, 3, 2, 3), (1, 1, 1, 2)]
    assert result.frames[1].mean_iou == pytest.approx(0.5)

    merged = sorted(result.merged.shapes, key=lambda sh: (sh.frame, sh.points[0]))
    assert [(sh.frame, sh.label_id, sh.source) for sh in merged] == [(0, CAR, "consensus")] * 2 + [
        (1, CAR, "consensus")
    ]
    assert merged[0].points == pytest.approx([1 / 3, 0, 31 / 3, 10])
    assert merged[0].score == 1.0
    assert merged[1].points == pytest.approx([100, 100, 120, 120]) and merged[1].score == pytest.approx(0.6667)
    assert merged[2].points == pytest.approx([0, 0, 20, 15])


@pytest.mark.parametrize(("quorum", "kept"), [(1, 4), (2, 3), (3, 1)])
def test_quorum_decides_what_is_merged(quorum: int, kept: int) -> None:
    settings = EQUAL.model_copy(update={"quorum": quorum})
    result = score_replicas(golden_replicas(), labels(), meta(2), settings)
    assert result.summary.kept == kept == len(result.merged.shapes)
    extra = [f for f in result.findings if f.code is FindingKind.EXTRA]
    assert sum(len(f.votes.present) for f in extra) == result.summary.extra


def test_merged_output_is_cvat_json_that_parses_back() -> None:
    result = score_replicas(golden_replicas(), labels(), meta(2), ConsensusSettings())
    data = dump_job_annotations(result.merged)
    assert set(data) >= {"version", "tags", "shapes", "tracks"}
    for shape in data["shapes"]:
        assert shape["source"] == "consensus"
        assert 0 < shape["score"] <= 1
        assert shape["type"] == "rectangle" and len(shape["points"]) == 4
    back = parse_job_annotations(data, where="merged")
    assert len(back.shapes) == len(result.merged.shapes)
    for got, want in zip(back.shapes, result.merged.shapes, strict=True):
        assert np.allclose(got.points, want.points) and got.label_id == want.label_id


def test_attribute_disagreement_and_vote() -> None:
    replicas = {
        "a": JobAnnotations(shapes=(box(0, CAR, [0, 0, 10, 10], attrs={KIND_SPEC: "a"}),)),
        "b": JobAnnotations(shapes=(box(0, CAR, [0, 0, 10, 10], attrs={KIND_SPEC: "b"}),)),
        "c": JobAnnotations(shapes=(box(0, CAR, [0, 0, 10, 10], attrs={KIND_SPEC: "b"}),)),
    }
    result = score_replicas(replicas, labels(), meta(1), EQUAL)
    assert result.summary.attribute_disagreements == 1
    assert [f.code for f in result.findings] == [FindingKind.ATTRIBUTE_DISAGREEMENT]
    assert result.merged.shapes[0].attribute_map() == {KIND_SPEC: "b"}


def test_labels_matched_within_label_only_when_asked() -> None:
    replicas = {
        "a": JobAnnotations(shapes=(box(0, CAR, [0, 0, 10, 10]),)),
        "b": JobAnnotations(shapes=(box(0, PERSON, [0, 0, 10, 10]),)),
    }
    across = score_replicas(replicas, labels(), meta(1), EQUAL)
    assert (across.summary.clusters, across.summary.label_disagreements) == (1, 1)
    within = score_replicas(replicas, labels(), meta(1), EQUAL.model_copy(update={"match_across_labels": False}))
    assert (within.summary.clusters, within.summary.label_disagreements) == (2, 0)


def test_tracks_are_expanded_and_matched_to_shapes() -> None:
    track = Track(
        frame=0,
        label_id=CAR,
        shapes=(
            TrackShape(type=ShapeType.RECTANGLE, frame=0, points=np.array([0.0, 0, 10, 10])),
            TrackShape(type=ShapeType.RECTANGLE, frame=2, points=np.array([4.0, 0, 14, 10])),
        ),
    )
    replicas = {
        "a": JobAnnotations(tracks=(track,)),
        "b": JobAnnotations(shapes=tuple(box(f, CAR, [2.0 * f, 0, 2.0 * f + 10, 10]) for f in range(3))),
    }
    result = score_replicas(replicas, labels(), meta(3), EQUAL)
    assert (result.summary.clusters, result.summary.kept) == (3, 3)
    assert result.summary.mean_iou == pytest.approx(1.0)


def test_masks_are_fused_by_pixel_vote() -> None:
    def mask(left: int) -> Shape:
        rle = MaskRle.from_bitmap(np.ones((10, 10), dtype=bool), left, 0)
        return Shape(type=ShapeType.MASK, frame=0, label_id=CAR, points=np.zeros((0, 2)), mask=rle)

    replicas = {n: JobAnnotations(shapes=(mask(x),)) for n, x in (("a", 0), ("b", 0), ("c", 2))}
    result = score_replicas(replicas, labels(), meta(1), EQUAL)
    (shape,) = result.merged.shapes
    assert shape.type is ShapeType.MASK and shape.mask is not None
    assert shape.mask.ltrb == (0, 0, 9, 9)
    parsed = parse_job_annotations(dump_job_annotations(result.merged))
    assert parsed.shapes[0].mask == shape.mask


def test_empty_job_and_bad_input() -> None:
    empty = {"a": JobAnnotations(), "b": JobAnnotations()}
    result = score_replicas(empty, labels(), meta(1), EQUAL)
    assert result.summary.clusters == 0 and math.isnan(result.summary.f1)
    assert result.merged.shapes == ()
    with pytest.raises(ConfigError, match="at least 2 replicas"):
        score_replicas({"a": JobAnnotations()}, labels(), meta(1))
    with pytest.raises(ConfigError, match="unknown annotators"):
        score_replicas(empty, labels(), meta(1), ConsensusSettings(weights={"zz": 1.0}))
    with pytest.raises(ConfigError, match="iou_thr"):
        ConsensusSettings.parse({"iou_thr": 2})


@pytest.mark.parametrize("budget", [0, 7])  # frame 0 holds 7 objects: with 7 the budget runs out mid-job
def test_second_pass_rereads_when_the_job_is_large(monkeypatch: pytest.MonkeyPatch, budget: int) -> None:
    import cvat_ext.consensus.engine as engine

    cached = score_replicas(golden_replicas(), labels(), meta(2), EQUAL.model_copy(update={"chunk_frames": 1}))
    monkeypatch.setattr(engine, "CACHE_OBJECTS", budget)
    streamed = score_replicas(golden_replicas(), labels(), meta(2), EQUAL.model_copy(update={"chunk_frames": 1}))
    assert streamed.summary == cached.summary
    assert [sh.points.tolist() for sh in streamed.merged.shapes] == [sh.points.tolist() for sh in cached.merged.shapes]


def test_cvat_rule_baseline_keeps_singletons_and_picks_a_member() -> None:
    settings = ConsensusSettings(iou_thr=0.5, quorum=1, method="nearest")
    result = score_replicas(golden_replicas(), labels(), meta(2), settings)
    merged = sorted(result.merged.shapes, key=lambda sh: (sh.frame, sh.points[0]))
    assert len(merged) == 4  # Z, seen by one annotator, is kept
    # X: the mean box is [1/3, 0, 31/3, 10]; a's and b's [0, 0, 10, 10] is nearest (a first)
    assert merged[0].points.tolist() == [0, 0, 10, 10]
    assert {sh.source for sh in merged} == {"consensus"}
    assert result.summary.method == "nearest" and result.summary.quorum == "1"


def test_skeletons_merge_keypoint_by_keypoint() -> None:
    from tests.consensus.helpers import POSE, skeleton

    replicas = {
        "a": JobAnnotations(shapes=(skeleton(0, [(100, 100), (300, 300), (200, 150)], [False, False, False]),)),
        "b": JobAnnotations(shapes=(skeleton(0, [(101, 100), (300, 301), (200, 151)], [False, False, True]),)),
        "c": JobAnnotations(shapes=(skeleton(0, [(102, 100), (301, 300), (201, 150)], [False, False, True]),)),
    }
    result = score_replicas(replicas, labels(), meta(1), EQUAL)
    assert (result.summary.clusters, result.summary.kept) == (1, 1)
    (shape,) = result.merged.shapes
    assert shape.type is ShapeType.SKELETON and shape.label_id == POSE
    assert [tuple(e.points[0]) for e in shape.elements] == [(101.0, 100.0), (300.0, 300.0), (200.0, 150.0)]
    assert [e.outside for e in shape.elements] == [False, False, True]  # 1 of 3 sees keypoint 3
    back = parse_job_annotations(dump_job_annotations(result.merged))
    assert len(back.shapes[0].elements) == 3


def test_progress_reports_both_passes() -> None:
    seen: list[tuple[str, int]] = []
    score_replicas(
        golden_replicas(),
        labels(),
        meta(2),
        EQUAL.model_copy(update={"chunk_frames": 1}),
        progress=lambda stage, n: seen.append((stage, n)),
    )
    assert seen == [("match", 1), ("match", 1), ("merge", 1), ("merge", 1)]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"quorum": 0}, "quorum"),
        ({"method": "mean"}, "method"),
        ({"surprise": 1}, "surprise"),
        ({"iou_thr": 0}, "iou_thr"),
    ],
)
def test_settings_reject_bad_values(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ConsensusSettings.parse(data)


def test_merged_json_validates_against_the_cvat_request_schema() -> None:
    """The body we PUT must be a valid ``LabeledDataRequest`` of CVAT 2.73's OpenAPI schema."""
    import yaml
    from openapi_schema_validator import OAS30Validator

    from tests.shared_data import SCHEMA_PATH

    spec = yaml.safe_load(SCHEMA_PATH.read_text())
    validator = OAS30Validator({"$ref": "#/components/schemas/LabeledDataRequest", "components": spec["components"]})
    replicas = golden_replicas()
    mask = MaskRle.from_bitmap(np.ones((3, 4), dtype=bool), 30, 30)
    for name in replicas:
        extra = Shape(type=ShapeType.MASK, frame=1, label_id=PERSON, points=np.zeros((0, 2)), mask=mask)
        replicas[name] = JobAnnotations(shapes=(*replicas[name].shapes, extra))
    result = score_replicas(replicas, labels(), meta(2), ConsensusSettings())
    body = dump_job_annotations(result.merged)
    assert {s["type"] for s in body["shapes"]} == {"rectangle", "mask"}
    errors = [e.message for e in validator.iter_errors(body)]
    assert errors == []


def test_tags_are_voted_and_disagreements_reported() -> None:
    from cvat_ext.annotations.model import Tag

    replicas = {
        "a": JobAnnotations(tags=(Tag(frame=0, label_id=PERSON), Tag(frame=0, label_id=CAR))),
        "b": JobAnnotations(tags=(Tag(frame=0, label_id=PERSON),)),
        "c": JobAnnotations(tags=(Tag(frame=0, label_id=PERSON),)),
    }
    result = score_replicas(replicas, labels(), meta(1), EQUAL)
    assert [(t.label_id, t.source) for t in result.merged.tags] == [(PERSON, "consensus")]
    (finding,) = result.findings
    assert (finding.code, finding.label, finding.votes.present, finding.votes.missing) == (
        FindingKind.TAG_DISAGREEMENT,
        "car",
        ("a",),
        ("b", "c"),
    )
    assert result.frames[0].findings == 1


def test_attribute_order_is_not_a_disagreement() -> None:
    from cvat_ext.annotations.model import Attribute

    base = box(0, CAR, [0, 0, 10, 10])
    one = dataclasses.replace(base, attributes=(Attribute(KIND_SPEC, "a"), Attribute(99, "x")))
    other = dataclasses.replace(base, attributes=(Attribute(99, "x"), Attribute(KIND_SPEC, "a")))
    replicas = {"a": JobAnnotations(shapes=(one,)), "b": JobAnnotations(shapes=(other,))}
    result = score_replicas(replicas, labels(), meta(1), EQUAL)
    assert result.summary.attribute_disagreements == 0


def test_masks_are_clipped_to_their_own_frame_size() -> None:
    from cvat_ext.annotations.model import FrameInfo, JobMeta

    def mask(frame: int, width: int) -> Shape:
        rle = MaskRle.from_bitmap(np.ones((5, width), dtype=bool), 0, 0)
        return Shape(type=ShapeType.MASK, frame=frame, label_id=CAR, points=np.zeros((0, 2)), mask=rle)

    # unclipped IoU 50/100 = 0.5; inside a 10 px wide frame both masks are the same 50 pixels
    replicas = {
        "a": JobAnnotations(shapes=(mask(0, 20), mask(1, 20))),
        "b": JobAnnotations(shapes=(mask(0, 10), mask(1, 10))),
    }
    sizes = JobMeta(start_frame=0, stop_frame=1, frames=(FrameInfo(10, 10), FrameInfo(100, 100)))
    result = score_replicas(replicas, labels(), sizes, EQUAL.model_copy(update={"iou_thr": 0.6, "rejoin_share": 0.0}))
    first = result.frames[0]
    assert (first.frame, first.clusters, first.mean_iou) == (0, 1, 1.0)
    assert (result.frames[1].frame, result.frames[1].clusters) == (1, 2)

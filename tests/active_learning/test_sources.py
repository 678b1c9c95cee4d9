"""Readers: CVAT JSON predictions, consensus results and reports, rule findings, frame meta."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cvat_ext.active_learning import sources
from cvat_ext.active_learning.signals import disagreement_signal
from cvat_ext.annotations.cvat_json import parse_job_annotations, parse_job_meta
from cvat_ext.annotations.model import JobAnnotations
from cvat_ext.consensus import ConsensusSettings, score_replicas
from cvat_ext.consensus.report import write_report_json
from cvat_ext.errors import AnnotationFormatError
from cvat_ext.inputs.files import read_meta
from cvat_ext.qa.findings import Action, Finding, Severity, Source
from tests.active_learning.helpers import meta_json, predictions_json, write
from tests.consensus.helpers import CAR, PERSON, box, labels, meta


def test_predictions_from_json_and_from_annotations_agree(tmp_path: Path) -> None:
    data = predictions_json([(3, 0.9), (1, 0.42), (3, 0.5)])
    data["tracks"] = [{"frame": 0, "label_id": 1, "group": 0, "source": "manual", "attributes": [], "elements": [],
                       "shapes": [{"type": "rectangle", "frame": 0, "points": [0, 0, 5, 5], "outside": False,
                                   "occluded": False, "z_order": 0, "rotation": 0, "attributes": []}]}]
    det = sources.read_predictions(write(tmp_path / "pred.json", data))
    # the shapes in frame order (file order within a frame); the track carries no score: not a row
    assert det.frame_idx.tolist() == [1, 3, 3]
    assert det.score.tolist() == [0.42, 0.9, 0.5]
    same = sources.detections_from_annotations(parse_job_annotations(data))
    order = np.argsort(same.frame_idx, kind="stable")
    assert same.frame_idx[order].tolist() == det.frame_idx.tolist()
    assert same.score[order].tolist() == det.score.tolist()
    assert len(sources.detections_from_annotations(JobAnnotations())) == 0


def _shape_edit(**changes: Any) -> dict[str, Any]:
    data = predictions_json([(0, 0.9), (1, 0.5), (2, 0.3)])
    data["shapes"][2].update(changes)
    return data


def _slow_path(data: dict[str, Any]) -> dict[str, Any]:
    """The same body with an integer written as ``1.0``: the columnar reader's strict per-object path reads it."""
    data["shapes"][1]["frame"] = 1.0
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        # the predictions' own rule: a score is a probability
        (_shape_edit(score=1.5), r"pred.json: shapes\[2\]: score 1.5 is not a number in \[0, 1\]$"),
        (_shape_edit(score=-0.25), r"pred.json: shapes\[2\]: score -0.25 is not a number in \[0, 1\]$"),
        (_slow_path(_shape_edit(score=2)), r"pred.json: shapes\[2\]: score 2 is not a number in \[0, 1\]$"),
        # the columnar reader's strict messages, as for every annotations file
        (_shape_edit(score="high"), r"pred.json: shapes\[2\].* field 'score': expected a number, got str 'high'"),
        (_shape_edit(score=True), r"shapes\[2\].* field 'score': expected a number, got bool True"),
        (_shape_edit(frame="7"), r"shapes\[2\]: rectangle 3 field 'frame': expected an integer, got str '7'"),
        (_shape_edit(frame=2.5), r"shapes\[2\]: rectangle 3 field 'frame': expected an integer, got float 2.5"),
        (_shape_edit(points=[1.0, 2.0]), r"shapes\[2\].*rectangle"),
        ({"shapes": [{"label_id": 1, "frame": 0}]}, r"shapes\[0\]: shape is missing required field 'type'"),
        ({"shapes": [7]}, r"shapes\[0\]: shape must be a JSON object, got int 7"),
        ({"shapes": {}}, r"pred.json: annotations field 'shapes': expected a list, got dict"),
        ([], r"pred.json: annotations must be a JSON object, got list"),
    ],
)
def test_prediction_errors_name_the_file_and_item(tmp_path: Path, data: Any, message: str) -> None:
    with pytest.raises(AnnotationFormatError, match=message):
        sources.read_predictions(write(tmp_path / "pred.json", data))


def test_prediction_score_defaults_to_certain(tmp_path: Path) -> None:
    data = predictions_json([(0, 0.5)])
    del data["shapes"][0]["score"]
    assert sources.read_predictions(write(tmp_path / "p.json", data)).score.tolist() == [1.0]


def test_bad_json_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(AnnotationFormatError, match=r"broken\.json: invalid JSON"):
        sources.read_predictions(path)


def _replicas() -> dict[str, JobAnnotations]:
    """Frame 0: one car all agree on. Frame 1: a car a and b agree on, c's box elsewhere; a person
    only a drew. Frame 3: a and b disagree on the label."""
    a = [box(0, CAR, [0, 0, 10, 10]), box(1, CAR, [0, 0, 20, 20]), box(1, PERSON, [50, 50, 60, 60]),
         box(3, CAR, [0, 0, 30, 30])]
    b = [box(0, CAR, [0, 0, 10, 10]), box(1, CAR, [0, 0, 20, 20]), box(3, PERSON, [0, 0, 30, 30])]
    c = [box(0, CAR, [1, 0, 11, 10]), box(1, CAR, [100, 100, 120, 120]), box(3, CAR, [0, 0, 30, 30])]
    return {n: JobAnnotations(shapes=tuple(s)) for n, s in (("a", a), ("b", b), ("c", c))}


def test_consensus_result_and_its_report_file_give_the_same_signal(tmp_path: Path) -> None:
    result = score_replicas(_replicas(), labels(), meta(4), ConsensusSettings(iou_thr=0.5, quorum=2))
    write_report_json(result, tmp_path / "report.json")
    from_file = sources.read_consensus_report(tmp_path / "report.json")
    in_memory = sources.consensus_frames_from_result(result)
    assert from_file.n_annotators == in_memory.n_annotators == 3
    assert from_file.frame_idx.tolist() == in_memory.frame_idx.tolist() == [0, 1, 3]
    for name in ("clusters", "kept", "f1", "missing", "extra", "label_disagreements"):
        np.testing.assert_allclose(getattr(from_file, name), getattr(in_memory, name), atol=1e-6, err_msg=name)
    np.testing.assert_allclose(in_memory.f1, [f.f1 for f in result.frames])
    frames = sources.frames_from_metas([("job", meta(4))])
    sig = disagreement_signal(frames, in_memory)
    assert sig.value[0] == 0.0 and sig.value[2] == 0.0  # full agreement; frame 2 empty for everyone
    assert sig.value[1] > 0.0 and sig.value[3] > 0.0
    assert sig.details["label_share"][3] > 0.0  # the car/person disagreement


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"summary": {"annotators": ["a", "b"]}}, "not a consensus report: frames: Field required"),
        ({"summary": {"annotators": ["a"]}, "frames": []}, "fewer than 2 annotators"),
        ({"summary": {"annotators": ["a", "b"]}, "frames": [{"frame": "x"}]}, r"frames\[0\]\.frame"),
        ([1, 2], "not a consensus report"),
    ],
)
def test_consensus_report_errors(tmp_path: Path, data: Any, message: str) -> None:
    with pytest.raises(AnnotationFormatError, match=f"report.json: {message}" if "frames:" in message else message):
        sources.read_consensus_report(write(tmp_path / "report.json", data))


def _finding(frame: int, severity: Severity) -> Finding:
    return Finding(
        Source.RULE, "r1", severity, frame, (0, 0, 1, 1), "too small", Action.OPEN_ISSUE, 812, object_id=4
    )


def test_findings_from_rules_output_and_objects(tmp_path: Path) -> None:
    found = [_finding(2, Severity.ERROR), _finding(2, Severity.WARNING), _finding(5, Severity.ERROR)]
    data = {"summary": {"errors": 2, "warnings": 1}, "findings": [f.rule_record() for f in found]}
    counts = sources.read_findings(write(tmp_path / "findings.json", data))
    assert counts.frame_idx.tolist() == [2, 2, 5] and counts.is_error.tolist() == [True, False, True]
    same = sources.findings_from_rules(found)
    assert same.frame_idx.tolist() == [2, 2, 5] and same.is_error.tolist() == [True, False, True]
    bare = sources.read_findings(write(tmp_path / "bare.json", data["findings"]))
    assert bare.frame_idx.tolist() == [2, 2, 5]
    data["findings"][1]["severity"] = "fatal"
    with pytest.raises(AnnotationFormatError, match=r"findings.json: findings\[1\]: severity 'fatal' is not"):
        sources.read_findings(write(tmp_path / "findings.json", data))


def test_frames_from_metas(tmp_path: Path) -> None:
    fs = sources.frames_from_metas([
        ("b", parse_job_meta(meta_json(10, 14))),
        ("a", parse_job_meta({**meta_json(0, 9), "deleted_frames": [3]})),
    ])
    assert fs.frame_idx.tolist() == [0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]
    assert [fs.job_names[j] for j in fs.job.tolist()] == ["a"] * 9 + ["b"] * 5
    with pytest.raises(AnnotationFormatError, match="frame 5 is in both 'x' and 'y'"):
        sources.frames_from_metas([("x", parse_job_meta(meta_json(0, 9))), ("y", parse_job_meta(meta_json(5, 12)))])
    with pytest.raises(AnnotationFormatError, match="no frame meta"):
        sources.frames_from_metas([])
    path = write(tmp_path / "meta.json", {"frames": "nope"})
    with pytest.raises(AnnotationFormatError, match=r"meta\.json"):
        read_meta(path)

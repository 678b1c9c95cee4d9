"""Careless input, as a user gives it on the command line: one line naming the file and the object,
exit code 2, nothing half-written. Every row starts from a workspace on which the same command
succeeds (``test_workspace_commands_succeed``), then breaks one thing."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cvat_ext.cli import main

REPO = Path(__file__).resolve().parents[2]
CAR, PERSON, POSE = 1, 2, 10
KIND, AGE = 7, 8

LABELS: list[dict[str, Any]] = [
    {"id": CAR, "name": "car", "type": "rectangle", "color": "#ff0000", "attributes": [
        {"id": KIND, "name": "kind", "input_type": "select", "mutable": False, "default_value": "sedan",
         "values": ["sedan", "van"]}]},
    {"id": PERSON, "name": "person", "type": "any", "color": "#00ff00", "attributes": [
        {"id": AGE, "name": "age", "input_type": "number", "mutable": True, "default_value": "30",
         "values": ["0", "120", "1"]}]},
    {"id": POSE, "name": "pose", "type": "skeleton", "color": "#0000ff", "attributes": [],
     "svg": "", "sublabels": [{"id": 11 + i, "name": f"kp{i}", "type": "points", "attributes": []} for i in range(3)]},
]


def meta(start: int, stop: int) -> dict[str, Any]:
    frames = [{"width": 640, "height": 480, "name": f"f{i:04d}.jpg"} for i in range(start, stop + 1)]
    return {"chunk_size": 36, "size": len(frames), "start_frame": start, "stop_frame": stop, "frame_filter": "",
            "frames": frames}


def box(frame: int, label: int, x: float, attrs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"type": "rectangle", "frame": frame, "label_id": label, "points": [x, 10.0, x + 40.0, 60.0],
            "occluded": False, "outside": False, "z_order": 0, "rotation": 0.0, "group": 0, "source": "manual",
            "attributes": attrs or [], "elements": []}


def skeleton(frame: int) -> dict[str, Any]:
    elements = [{"type": "points", "frame": frame, "label_id": 11 + i, "points": [100.0 + 10 * i, 100.0],
                 "occluded": False, "outside": False, "attributes": []} for i in range(3)]
    return {"type": "skeleton", "frame": frame, "label_id": POSE, "points": [], "occluded": False, "outside": False,
            "z_order": 0, "rotation": 0.0, "group": 0, "source": "manual", "attributes": [], "elements": elements}


def annotations(shift: float = 0.0, frames: range = range(0, 100, 7)) -> dict[str, Any]:
    shapes = [box(f, CAR, 10.0 + shift, [{"spec_id": KIND, "value": "van"}]) for f in frames]
    shapes += [box(f, PERSON, 300.0 + shift, [{"spec_id": AGE, "value": "40"}]) for f in frames[::2]]
    shapes.append(skeleton(4))
    track = {"frame": 20, "label_id": CAR, "group": 0, "source": "manual",
             "attributes": [{"spec_id": KIND, "value": "sedan"}],
             "shapes": [{"type": "rectangle", "frame": f, "points": [200.0, 200.0, 260.0, 250.0], "occluded": False,
                         "outside": f == 24, "z_order": 0, "rotation": 0.0, "attributes": []} for f in (20, 22, 24)],
             "elements": []}
    tags = [{"frame": 3, "label_id": PERSON, "group": 0, "source": "manual", "attributes": []}]
    return {"version": 0, "tags": tags, "shapes": shapes, "tracks": [track]}


@dataclass
class Workspace:
    root: Path
    labels: Path
    meta: Path
    a: Path
    b: Path
    rules: Path
    findings: Path
    report: Path

    def write(self, name: str, data: Any) -> Path:
        path = self.root / name
        path.write_text(json.dumps(data))
        return path

    def edit(self, path: Path, change: Callable[[Any], None]) -> None:
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))

    def consensus(self, **swap: Path) -> list[str]:
        files = {"a": self.a, "b": self.b, "labels": self.labels, "meta": self.meta, **swap}
        return ["qa", "consensus", "--annotations", f"a={files['a']}", "--annotations", f"b={files['b']}",
                "--labels", str(files["labels"]), "--meta", str(files["meta"]), "--no-progress",
                "--merged-out", str(self.root / "out" / "merged.json")]

    def check(self, **swap: Path) -> list[str]:
        files = {"rules": self.rules, "annotations": self.a, "labels": self.labels, "meta": self.meta, **swap}
        return ["rules", "check", "--rules", str(files["rules"]), "--annotations", str(files["annotations"]),
                "--labels", str(files["labels"]), "--meta", str(files["meta"]), "--no-progress", "--fail-on", "never"]

    def rank(self, **swap: Path) -> list[str]:
        files = {"meta": self.meta, "predictions": self.a, "findings": self.findings, "report": self.report, **swap}
        return ["al", "rank", "--meta", f"job={files['meta']}", "--predictions", str(files["predictions"]),
                "--findings", str(files["findings"]), "--consensus-report", str(files["report"])]


@pytest.fixture
def ws(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Workspace:
    w = Workspace(tmp_path, tmp_path / "labels.json", tmp_path / "meta.json", tmp_path / "a.json",
                  tmp_path / "b.json", tmp_path / "rules.yaml", tmp_path / "findings.json", tmp_path / "report.json")
    w.write("labels.json", LABELS)
    w.write("meta.json", meta(0, 99))
    w.write("a.json", annotations())
    w.write("b.json", annotations(shift=2.0))
    shutil.copy(REPO / "qa_rules" / "default.yaml", w.rules)
    assert main([*w.check(), "--format", "json"]) == 0
    w.findings.write_text(capsys.readouterr().out)
    assert main([*w.consensus(), "--report-out", str(w.report)]) == 0
    capsys.readouterr()
    return w


def test_workspace_commands_succeed(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (ws.consensus(), ws.check(), ws.rank()):
        assert main(argv) == 0, capsys.readouterr().err
    assert capsys.readouterr().err == ""


def _outside_frame(w: Workspace) -> list[str]:
    w.edit(w.b, lambda d: d["shapes"].__setitem__(1, box(150, CAR, 10.0)))
    return w.consensus()


def _other_job_meta(w: Workspace) -> list[str]:
    w.write("a.json", annotations(frames=range(0, 500, 3)))
    w.write("meta.json", meta(0, 99))
    return w.check()


def _track_keyframe_outside(w: Workspace) -> list[str]:
    w.edit(w.a, lambda d: d["tracks"][0]["shapes"].append({**d["tracks"][0]["shapes"][0], "frame": 120}))
    return w.check()


def _gt_meta(w: Workspace) -> list[str]:
    w.write("gt_meta.json", {**meta(0, 99), "included_frames": [0, 4, 7, 14]})
    return w.check(meta=w.root / "gt_meta.json")


def _unknown_label(w: Workspace) -> list[str]:
    w.edit(w.a, lambda d: d["shapes"][3].__setitem__("label_id", 99))
    return w.check()


def _unknown_tag_label(w: Workspace) -> list[str]:
    w.edit(w.b, lambda d: d["tags"][0].__setitem__("label_id", 42))
    return w.consensus()


def _not_a_keypoint(w: Workspace) -> list[str]:
    w.edit(w.a, lambda d: d["shapes"][-1]["elements"][1].__setitem__("label_id", CAR))
    return w.check()


def _unknown_attribute(w: Workspace) -> list[str]:
    w.edit(w.a, lambda d: d["shapes"][2]["attributes"][0].__setitem__("spec_id", 42))
    return w.consensus()


def _attribute_of_other_label(w: Workspace) -> list[str]:
    w.edit(w.a, lambda d: d["tracks"][0]["attributes"][0].__setitem__("spec_id", AGE))
    return w.check()






def _labels_page_as_meta(w: Workspace) -> list[str]:
    page = w.write("labels_page.json", {"count": 3, "next": None, "previous": None, "results": LABELS})
    return w.consensus(meta=page)







def _predictions_of_other_job(w: Workspace) -> list[str]:
    w.write("meta_other.json", meta(500, 599))
    return w.rank(meta=w.root / "meta_other.json")


def _latin1_rules(w: Workspace) -> list[str]:
    text = w.rules.read_text().replace("description: Geometry", "description: Géométrie", 1)
    w.rules.write_bytes(text.encode("latin-1"))
    return w.check()


def _latin1_labels(w: Workspace) -> list[str]:
    w.labels.write_bytes(json.dumps(LABELS).replace('"van"', '"vän"').encode("latin-1"))
    return w.consensus()


def _labels_for_lint(w: Workspace) -> list[str]:
    return ["rules", "lint", str(w.labels)]


#: (case, argv builder, expected message fragments)
CASES: list[tuple[str, Callable[[Workspace], list[str]], tuple[str, ...]]] = [
    ("frame outside the meta", _outside_frame,
     ("b.json: shapes[1] is on frame 150, outside the job's frames 0..99 (100 frames) of ", "meta.json",
      "1 of 31 objects are outside")),
    ("meta of another job (100 vs 500 frames)", _other_job_meta,
     ("a.json: shapes[34] is on frame 102, outside the job's frames 0..99 (100 frames)",
      "the annotations span frames 0..498: is the meta from another job?")),
    ("track keyframe outside", _track_keyframe_outside, ("a.json: tracks[0].shapes[3] is on frame 120",)),
    ("frame not in a GT job's frames", _gt_meta,
     ("a.json: tags[0] is on frame 3, outside the job's 4 ground-truth frames of",)),
    ("unknown label id", _unknown_label,
     ("a.json: shapes[3] (frame 21) has label id 99, which ", "labels.json does not have (ids 1, 2, 10, 11, 12, 13)")),
    ("unknown label id on a tag", _unknown_tag_label, ("b.json: tags[0] (frame 3) has label id 42",)),
    ("keypoint of another label", _not_a_keypoint,
     ("a.json: shapes[23].elements[1] (frame 4) has label id 1, not a keypoint of skeleton 'pose' (id 10)",)),
    ("unknown attribute id", _unknown_attribute,
     ("a.json: shapes[2].attributes[0] (frame 14) has attribute id 42, which ", "labels.json does not have")),
    ("attribute of another label", _attribute_of_other_label,
     ("a.json: tracks[0].attributes[0] (frame 20) has attribute id 8 of label 'person', not of its label 'car'",)),
    ("labels given as annotations", lambda w: w.consensus(b=w.labels),
     ("labels.json: this is a labels file (GET /api/labels), not job annotations", "check --annotations b=")),
    ("meta given as annotations", lambda w: w.check(annotations=w.meta),
     ("meta.json: this is a job frame meta (GET /api/jobs/{id}/data/meta), not job annotations",)),
    ("annotations given as labels", lambda w: w.consensus(labels=w.a),
     ("a.json: this is job annotations (GET /api/jobs/{id}/annotations), not a labels file", "check --labels")),
    ("annotations given as meta", lambda w: w.check(meta=w.b), ("b.json: this is job annotations", "check --meta")),
    ("labels page given as meta", _labels_page_as_meta, ("labels_page.json: this is a labels file",)),
    ("rule pack given as findings", lambda w: w.rank(findings=w.rules),
     ("rules.yaml: this is a rule pack (YAML with rules:), not rule findings", "check --findings")),
    ("annotations given as a rule pack", lambda w: w.check(rules=w.a),
     ("a.json: this is job annotations", "not a rule pack", "check --rules")),
    ("findings given as a consensus report", lambda w: w.rank(report=w.findings),
     ("findings.json: this is rule findings", "not a consensus report", "check --consensus-report")),
    ("consensus report given as findings", lambda w: w.rank(findings=w.report),
     ("report.json: this is a consensus report",)),
    ("consensus report given as predictions", lambda w: w.rank(predictions=w.report),
     ("report.json: this is a consensus report", "check --predictions")),
    ("predictions of another job", _predictions_of_other_job,
     ("a.json: none of its 24 detections (frames 0..98) lies on a frame of the --meta jobs (job)",)),
    ("rule pack in Latin-1", _latin1_rules, ("rules.yaml:5:15: not UTF-8 text (byte 0xe9); save the file as UTF-8",)),
    ("labels in Latin-1", _latin1_labels, ("labels.json:1:", "not UTF-8 text (byte 0xe4)")),
    ("labels given to rules lint", _labels_for_lint, ("labels.json: this is a labels file", "not a rule pack")),
]


@pytest.mark.parametrize(("builder", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_careless_input_gets_one_line(
    ws: Workspace, capsys: pytest.CaptureFixture[str], builder: Callable[[Workspace], list[str]],
    expected: tuple[str, ...],
) -> None:
    argv = builder(ws)
    shutil.rmtree(ws.root / "out", ignore_errors=True)
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("cvat-ext: error: ")
    for fragment in expected:
        assert fragment in lines[0]
    assert not (ws.root / "out").exists()  # nothing half-written


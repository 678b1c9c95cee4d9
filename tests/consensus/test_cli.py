"""``cvat-ext qa consensus`` end to end on files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from cvat_ext.annotations.cvat_json import dump_job_annotations, dump_labels, parse_job_annotations
from cvat_ext.cli import main
from tests.consensus.helpers import labels
from tests.consensus.test_engine import golden_replicas


def _write_inputs(tmp_path: Path) -> list[str]:
    args = []
    for name, ann in golden_replicas().items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(dump_job_annotations(ann)))
        args += ["--annotations", f"{name}={path}"]
    (tmp_path / "labels.json").write_text(json.dumps({"count": 3, "results": dump_labels(labels())}))
    frames = [{"width": 640, "height": 480, "name": f"{i}.png"} for i in range(2)]
    (tmp_path / "meta.json").write_text(json.dumps({"start_frame": 0, "stop_frame": 1, "frames": frames}))
    return [*args, "--labels", str(tmp_path / "labels.json"), "--meta", str(tmp_path / "meta.json")]


def test_cli_writes_report_tables_and_merge(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    argv = [
        "qa",
        "consensus",
        *_write_inputs(tmp_path),
        "--report-out",
        str(out / "report.json"),
        "--csv-dir",
        str(out / "tables"),
        "--merged-out",
        str(out / "merged.json"),
        "--quorum",
        "2",
        "--no-progress",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "4 clusters, 3 merged" in printed
    assert printed.strip().splitlines()[-1].startswith("sidecar decision: review (agreement 0.")  # 3 disagree
    report = json.loads((out / "report.json").read_text())
    assert report["summary"]["kept"] == 3 and report["summary"]["quorum"] == "2"
    assert {f["kind"] for f in report["findings"]} == {"missing", "extra", "label_disagreement", "low_overlap"}
    merged = parse_job_annotations(json.loads((out / "merged.json").read_text()), where="merged.json")
    assert len(merged.shapes) == 3 and {s.source for s in merged.shapes} == {"consensus"}
    with (out / "tables" / "findings.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 5
    label_row = next(r for r in rows if r["kind"] == "label_disagreement")
    assert label_row["labels_by_annotator"] == "a:person;b:car"
    assert sorted(p.name for p in (out / "tables").iterdir()) == [
        "annotators.csv",
        "findings.csv",
        "frames.csv",
        "labels.csv",
        "pairs.csv",
        "summary.csv",
    ]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda p: (p / "a.json").write_text("{not json"), "a.json"),
        (lambda p: (p / "b.json").write_text(json.dumps({"shapes": [{"type": "rectangle"}]})), "b.json"),
        (lambda p: (p / "meta.json").unlink(), "meta.json"),
    ],
)
def test_cli_errors_name_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mutate: object, expected: str
) -> None:
    argv = ["qa", "consensus", *_write_inputs(tmp_path), "--no-progress"]
    mutate(tmp_path)  # type: ignore[operator]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("cvat-ext: error:") and expected in err


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--quorum", "zero"], "--quorum"),
        (["--iou-thr", "1.5"], "iou_thr"),
        (["--keypoint-sigmas", "guess"], "--keypoint-sigmas"),
        (["--keypoint-sigmas", "pose=0.1,x"], "--keypoint-sigmas"),
        (["--keypoint-sigmas", "pose=0.1,0.2"], "skeleton 'pose' has 3 keypoints"),
        (["--keypoint-sigmas", "pose=0.1,0.2,-1"], "keypoint_sigmas"),
    ],
)
def test_cli_rejects_bad_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], expected: str
) -> None:
    assert main(["qa", "consensus", *_write_inputs(tmp_path), *extra]) == 2
    assert expected in capsys.readouterr().err


def test_cli_needs_two_replicas(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = _write_inputs(tmp_path)
    assert main(["qa", "consensus", *argv[2:]]) == 0
    assert main(["qa", "consensus", *argv[4:]]) == 2
    assert "at least 2 replicas" in capsys.readouterr().err


@pytest.mark.parametrize("sigmas", [["estimate"], ["default"], ["pose=0.05,0.1,0.2"]])
def test_cli_accepts_keypoint_sigmas(tmp_path: Path, sigmas: list[str]) -> None:
    report = tmp_path / "report.json"
    args = [a for s in sigmas for a in ("--keypoint-sigmas", s)]
    argv = ["qa", "consensus", *_write_inputs(tmp_path), *args, "--report-out", str(report), "--no-progress"]
    assert main(argv) == 0
    got = json.loads(report.read_text())["keypoint_sigmas"]
    assert got == ({"pose": [0.05, 0.1, 0.2]} if sigmas[0].startswith("pose") else {})

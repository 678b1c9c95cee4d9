"""``cvat-ext rules lint|check|schema`` through the real entry point (exit codes are the CI contract)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cvat_ext.cli import main
from tests.rules.recorded import body

QA_RULES = Path(__file__).resolve().parents[2] / "qa_rules"


@pytest.fixture
def merged_job(tmp_path: Path) -> list[str]:
    """CLI arguments for the recorded merged parent job 131 (2x2 boxes, boxes beyond the edge)."""
    files = {
        "ann.json": body("72_consensus_parent_after_merge.json"),
        "labels.json": body("22_labels_list_task.json"),
        "meta.json": body("34_job_data_meta.json"),
    }
    for name, data in files.items():
        (tmp_path / name).write_text(json.dumps(data))
    return [
        "--annotations",
        str(tmp_path / "ann.json"),
        "--labels",
        str(tmp_path / "labels.json"),
        "--meta",
        str(tmp_path / "meta.json"),
    ]


def test_lint_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "lint", *map(str, sorted(QA_RULES.glob("*.yaml")))]) == 0
    assert "3 rule file(s) OK" in capsys.readouterr().out


def test_lint_errors_name_file_line_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - id: car-size\n    kind: size\n    min_widht: 4\n")
    assert main(["rules", "lint", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:4 rule 'car-size': min_widht: unknown key" in err


def test_check_table_and_exit_code(merged_job: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    args = ["rules", "check", "--rules", str(QA_RULES / "default.yaml"), *merged_job, "--job-id", "131"]
    assert main([*args, "--annotator", "ann3"]) == 1
    out = capsys.readouterr().out
    assert "tiny-object" in out and "4372" in out
    *_, counts, decision = out.strip().splitlines()
    assert counts.startswith("9 finding(s): 5 error(s), 4 warning(s)")
    # default.yaml: errors reject_job, so the sidecar would send the job back
    assert decision == "sidecar decision: reject (5 reject_job findings (tiny-object, polygon-valid))"
    assert main([*args, "--fail-on", "never"]) == 0


@pytest.mark.parametrize(
    ("error_action", "max_errors", "decision"),
    [
        ("open_issue", 5, "sidecar decision: accept (5 rule errors <= 5)"),
        ("open_issue", 4, "sidecar decision: review (5 rule errors > 4)"),
        ("send_to_review", 5, "sidecar decision: review (5 send_to_review findings (tiny-object, polygon-valid))"),
        ("none", 0, "sidecar decision: accept (0 rule errors <= 0)"),
    ],
)
def test_check_decision_line_follows_the_pack_actions(
    tmp_path: Path, merged_job: list[str], capsys: pytest.CaptureFixture[str], error_action: str, max_errors: int,
    decision: str,
) -> None:
    pack = tmp_path / "pack.yaml"
    default = QA_RULES / "default.yaml"
    pack.write_text(f"version: 1\nname: p\ninclude: [{default}]\nactions: {{error: {error_action}}}\n")
    args = ["rules", "check", "--rules", str(pack), *merged_job, "--max-errors", str(max_errors), "--fail-on", "never"]
    assert main(args) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == decision


def test_check_json(merged_job: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["rules", "check", "--rules", str(QA_RULES / "default.yaml"), *merged_job, "--format", "json"])
    assert rc == 1
    report = json.loads(capsys.readouterr().out)
    assert report["summary"]["errors"] == 5
    first = report["findings"][0]
    assert set(first) >= {
        "rule_id",
        "severity",
        "action",
        "job_id",
        "frame",
        "object_id",
        "annotator",
        "message",
        "position",
    }


def test_check_quiet_warnings_only(tmp_path: Path, merged_job: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    warn = tmp_path / "warn.yaml"
    warn.write_text(
        "rules:\n  - id: edge\n    kind: outside_frame\n    severity: warning\n    allow_truncation: false\n"
    )
    assert main(["rules", "check", "--rules", str(warn), *merged_job, "--format", "quiet"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["rules", "check", "--rules", str(warn), *merged_job, "--format", "quiet", "--fail-on", "warning"]) == 1


def test_check_bad_input_is_exit_2(tmp_path: Path, merged_job: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    args = ["rules", "check", "--rules", str(QA_RULES / "default.yaml"), *merged_job]
    args[args.index("--annotations") + 1] = str(broken)
    assert main(args) == 2
    assert "broken.json" in capsys.readouterr().err
    bad_rules = tmp_path / "r.yaml"
    bad_rules.write_text("rules: [{id: x, kind: nope}]\n")
    assert main(["rules", "check", "--rules", str(bad_rules), *merged_job]) == 2
    assert "r.yaml:1 rule 'x'" in capsys.readouterr().err


def test_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "cvat-ext rule pack"


def test_lint_against_task_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps(body("22_labels_list_task.json")))
    pack = tmp_path / "p.yaml"
    pack.write_text(
        "rules:\n"
        "  - id: ok\n    kind: size\n    scope: {labels: [car]}\n    min_width: 2\n"
        "  - id: typo\n    kind: size\n    scope: {labels: [cra]}\n    min_width: 2\n"
        "  - id: bones\n    kind: keypoints\n    max_bone_ratio: 3\n    bones: [[head, knee]]\n"
    )
    assert main(["rules", "lint", "--labels", str(labels), str(pack)]) == 0
    err = capsys.readouterr().err
    assert f"warning: {pack}:6 rule 'typo': scope.labels: no label named cra" in err
    assert f"{pack}:10 rule 'bones': bones: no keypoint named knee" in err
    assert "rule 'ok'" not in err
    assert main(["rules", "lint", "--labels", str(labels), "--strict", str(pack)]) == 1
    assert "error: " in capsys.readouterr().err


@pytest.mark.parametrize(("flag", "shown"), [("--progress", True), ("--no-progress", False)])
def test_check_progress_bar_on_stderr(
    merged_job: list[str], capsys: pytest.CaptureFixture[str], flag: str, shown: bool
) -> None:
    args = ["rules", "check", "--rules", str(QA_RULES / "default.yaml"), *merged_job, "--fail-on", "never"]
    assert main([*args, flag]) == 0
    err = capsys.readouterr().err
    # the recorded parent job covers frames 0-9: the bar ends at 10/10
    assert ("rules: 100%" in err and "10/10" in err) is shown

"""File kinds sniffed from real bodies (the CVAT 2.73 recordings, our own outputs, the rule packs)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from cvat_ext.errors import InputMismatchError
from cvat_ext.inputs.files import read_labels
from cvat_ext.inputs.kinds import MAX_EVENTS, FileKind, expect_kind, sniff_kind
from tests.shared_data import RECORDED_DIR

REPO = Path(__file__).resolve().parents[2]


def recorded_body(name: str) -> Any:
    return json.loads((RECORDED_DIR / f"{name}.json").read_text())["exchanges"][0]["response"]["body"]


def write(tmp_path: Path, name: str, data: Any) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(("recording", "kind"), [
    ("22_labels_list_task", FileKind.LABELS),
    ("34_job_data_meta", FileKind.META),
    ("40_job_annotations_get_replica", FileKind.ANNOTATIONS),
    ("41_job_annotations_get_gt", FileKind.ANNOTATIONS),
    ("31_jobs_list_replicas_of_parent", None),  # a jobs page is none of the inputs: the reader says why
    ("21_task_get", FileKind.CVAT_RECORD),
    ("33_job_get", FileKind.CVAT_RECORD),
])
def test_recorded_cvat_bodies(tmp_path: Path, recording: str, kind: FileKind | None) -> None:
    assert sniff_kind(write(tmp_path, "body.json", recorded_body(recording))) is kind


def test_labels_as_a_plain_list_and_empty_inputs(tmp_path: Path) -> None:
    assert sniff_kind(write(tmp_path, "l.json", recorded_body("22_labels_list_task")["results"])) is FileKind.LABELS
    assert sniff_kind(write(tmp_path, "e.json", [])) is None
    assert sniff_kind(write(tmp_path, "d.json", {})) is None
    assert sniff_kind(write(tmp_path, "a.json", {"version": 0, "tags": []})) is FileKind.ANNOTATIONS
    # a rule pack written as JSON (YAML reads it) also starts with "version"
    assert sniff_kind(write(tmp_path, "pack.json", {"version": 1, "name": "x", "rules": []})) is FileKind.RULES


@pytest.mark.parametrize("pack", sorted(p.name for p in (REPO / "qa_rules").glob("*.yaml")))
def test_every_shipped_rule_pack_is_rules(pack: str) -> None:
    assert sniff_kind(REPO / "qa_rules" / pack) is FileKind.RULES


def test_our_outputs(tmp_path: Path) -> None:
    findings = {"summary": {"pack": "default", "rules": 3, "errors": 0, "warnings": 0}, "findings": []}
    assert sniff_kind(write(tmp_path, "f.json", findings)) is FileKind.FINDINGS
    assert sniff_kind(write(tmp_path, "fl.json", [{"rule_id": "x", "frame": 1, "severity": "error"}])) is (
        FileKind.FINDINGS)
    report = {"summary": {"frames": 3, "annotators": ["a", "b"]}, "annotators": [], "frames": [], "findings": []}
    assert sniff_kind(write(tmp_path, "r.json", report)) is FileKind.CONSENSUS_REPORT


def test_the_deciding_key_is_read_first_not_the_whole_file(tmp_path: Path) -> None:
    # a deciding key after more events than the sniff reads: undecided (the reader has its say)
    noise = {"x": list(range(MAX_EVENTS + 10)), "shapes": []}
    assert sniff_kind(write(tmp_path, "noise.json", noise)) is None


def test_broken_and_missing_files_are_left_to_the_reader(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 0, "shapes": [')
    assert sniff_kind(bad) is FileKind.ANNOTATIONS  # decided before the break; the reader reports it
    assert sniff_kind(tmp_path / "missing.json") is None
    (tmp_path / "latin.yaml").write_bytes("name: d\xe9faut\n".encode("latin-1"))
    assert sniff_kind(tmp_path / "latin.yaml") is None
    expect_kind(tmp_path / "missing.json", FileKind.ANNOTATIONS, "--annotations")  # no opinion, no error


def test_expect_kind_names_file_kind_and_option(tmp_path: Path) -> None:
    path = write(tmp_path, "meta.json", recorded_body("34_job_data_meta"))
    with pytest.raises(InputMismatchError) as err:
        expect_kind(path, (FileKind.ANNOTATIONS, FileKind.FINDINGS), "--predictions")
    assert str(err.value) == (
        f"{path}: this is a job frame meta (GET /api/jobs/{{id}}/data/meta), not job annotations "
        "(GET /api/jobs/{id}/annotations) or rule findings (cvat-ext rules check --format json): check --predictions"
    )
    expect_kind(path, FileKind.META, "--meta")


def test_a_pipe_is_not_sniffed(tmp_path: Path) -> None:
    """``--labels <(curl ...)``: sniffing would drain the pipe and the reader would wait forever."""
    fifo = tmp_path / "labels.fifo"
    os.mkfifo(fifo)
    assert sniff_kind(fifo) is None  # returns without opening it (an open would block: no writer)
    body = recorded_body("22_labels_list_task")

    def serve() -> None:
        with fifo.open("w") as fh:  # one reader, once
            fh.write(json.dumps(body))

    writer = threading.Thread(target=serve, daemon=True)
    writer.start()
    labels = read_labels(fifo)
    writer.join(timeout=5)
    assert not writer.is_alive() and len(labels.labels) == len(body if isinstance(body, list) else body["results"])

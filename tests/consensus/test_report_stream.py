"""Streamed report / merged writers give exactly what the in-memory result holds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cvat_ext.annotations.cvat_json import dump_job_annotations
from cvat_ext.consensus.engine import score_replicas
from cvat_ext.consensus.report import write_merged_json, write_report_json
from cvat_ext.consensus.settings import ConsensusSettings
from tests.consensus.helpers import labels, meta
from tests.consensus.test_conformity import _golden
from tests.consensus.test_engine import golden_replicas


@pytest.mark.parametrize("chunk_frames", [1, 2, 256])
@pytest.mark.parametrize("which", ["golden", "conformity"])
def test_streamed_files_equal_the_in_memory_result(tmp_path: Path, chunk_frames: int, which: str) -> None:
    replicas = golden_replicas() if which == "golden" else _golden()
    settings = ConsensusSettings(iou_thr=0.5, quorum=2, estimate_reliability=False, chunk_frames=chunk_frames)
    result = score_replicas(replicas, labels(), meta(3), settings)
    write_report_json(result, tmp_path / "report.json")
    write_merged_json(result, tmp_path / "merged.json")
    # the streamed files are built before the cached properties are ever touched
    report = json.loads((tmp_path / "report.json").read_text())
    merged = json.loads((tmp_path / "merged.json").read_text())
    assert report == json.loads(json.dumps(result.to_json()))
    assert merged == json.loads(json.dumps(dump_job_annotations(result.merged)))
    assert [f["frame"] for f in report["findings"]] == sorted(f["frame"] for f in report["findings"])
    assert merged["shapes"] and [s["frame"] for s in merged["shapes"]] == sorted(s["frame"] for s in merged["shapes"])

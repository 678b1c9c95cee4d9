"""The columnar writers write the bytes of the per-object writers of ``consensus.report``."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

from cvat_ext.annotations.cvat_json import parse_job_annotations
from cvat_ext.annotations.model import Attribute, JobAnnotations, LabelSet, Tag
from cvat_ext.consensus import finding_text, writers
from cvat_ext.consensus.engine import score_replicas
from cvat_ext.consensus.report import ConsensusResult, write_csv_tables, write_merged_json, write_report_json
from cvat_ext.consensus.settings import ConsensusSettings
from cvat_ext.consensus.writers import write_outputs
from tests.annotations import recordings
from tests.consensus.helpers import labels as golden_labels
from tests.consensus.helpers import meta as golden_meta

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from consensus_generator import Kind, Scenario, generate


def _both(result: ConsensusResult, tmp_path: Path) -> tuple[dict[str, bytes], dict[str, bytes]]:
    old, new = tmp_path / "old", tmp_path / "new"
    write_report_json(result, old / "report.json")
    write_csv_tables(result, old / "tables")
    write_merged_json(result, old / "merged.json")
    write_outputs(result, report_out=new / "report.json", csv_dir=new / "tables", merged_out=new / "merged.json")

    def read(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    return read(old), read(new)


def _with_tags_and_attributes(replicas: dict[str, JobAnnotations], seed: int) -> dict[str, JobAnnotations]:
    """Tags on a few frames and attribute values on some shapes, differing between annotators."""
    rng = np.random.default_rng(seed)
    out = {}
    for r, (name, ann) in enumerate(replicas.items()):
        shapes = tuple(
            dataclasses.replace(s, attributes=(Attribute(1, f"v{int(rng.integers(2))}é"),)) if rng.random() < 0.3 else s
            for s in ann.shapes
        )
        tags = tuple(Tag(frame=f, label_id=1 + (f + r) % 2) for f in range(0, 6, 2))
        out[name] = dataclasses.replace(ann, shapes=shapes, tags=tags)
    return out


CASES = [
    ("rectangle", {}, 1),
    ("rectangle", {"method": "nearest"}, 2),
    ("rectangle", {"quorum": 2, "match_across_labels": False}, 3),
    ("mask", {}, 4),
    ("mask", {"method": "staple"}, 5),
    ("polygon", {}, 6),
    ("polygon", {"method": "nearest"}, 7),
    ("skeleton", {"keypoint_sigmas": "estimate"}, 8),
]


@pytest.mark.parametrize(("kind", "options", "seed"), CASES)
def test_generated_jobs_byte_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: Kind, options: dict[str, object], seed: int
) -> None:
    if seed % 2:
        monkeypatch.setattr(finding_text, "WINDOW_CLUSTERS", 3)  # windows of a few clusters
    g = generate(Scenario(kind=kind, frames=14, objects_per_frame=7, seed=seed))
    replicas = _with_tags_and_attributes(g.replicas, seed)
    result = score_replicas(replicas, g.labels, g.meta, ConsensusSettings.parse({"chunk_frames": 4, **options}))
    assert result.n_findings > 0 and result.merged_parts is not None and finding_text.supported(result)
    old, new = _both(result, tmp_path)
    assert sorted(new) == sorted(old) and len(new) == 8
    for name in old:
        assert new[name] == old[name], name


def test_recorded_cvat_bodies_byte_identical(tmp_path: Path) -> None:
    """Replicas taken from CVAT's recorded bodies (ids, sources, attributes, tracks as CVAT writes them)."""
    bodies = [body for _, side, _, body in recordings.annotation_bodies() if side == "response" and body["shapes"]]
    assert len(bodies) >= 3
    replicas = {f"r{i}": parse_job_annotations(body) for i, body in enumerate(bodies[:3])}
    labels: LabelSet = golden_labels()
    result = score_replicas(replicas, labels, golden_meta(20), ConsensusSettings(chunk_frames=3))
    old, new = _both(result, tmp_path)
    assert new == old


def test_unknown_row_fields_fall_back_to_the_per_object_writers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    g = generate(Scenario(kind="rectangle", frames=4, objects_per_frame=5, seed=9))
    result = score_replicas(g.replicas, g.labels, g.meta)
    monkeypatch.setattr(writers, "_FINDING_FIELDS", ("frame", "kind"))
    old, new = _both(result, tmp_path)
    assert new == old


@pytest.mark.parametrize("seed", [21, 22])
def test_names_that_need_quoting_byte_identical(tmp_path: Path, seed: int) -> None:
    """Annotator and label names with commas, quotes, semicolons and non-ASCII letters: the CSV
    cells and the JSON strings are quoted and escaped as csv and json do it."""
    g = generate(Scenario(kind="rectangle", frames=12, objects_per_frame=6, seed=seed))
    odd_names = ['a, "b"', "c;d", "é:ü"]
    replicas = dict(zip(odd_names, _with_tags_and_attributes(g.replicas, seed).values(), strict=True))
    labels = LabelSet(
        tuple(dataclasses.replace(lb, name=f'{lb.name}, "q{i}" ü') for i, lb in enumerate(g.labels.labels))
    )
    result = score_replicas(replicas, labels, g.meta, ConsensusSettings.parse({"chunk_frames": 5}))
    assert result.n_findings > 0 and finding_text.supported(result)
    old, new = _both(result, tmp_path)
    assert new == old


def test_blocks_out_of_frame_order_fall_back_to_the_per_object_writers(tmp_path: Path) -> None:
    g = generate(Scenario(kind="rectangle", frames=6, objects_per_frame=5, seed=23))
    result = score_replicas(g.replicas, g.labels, g.meta, ConsensusSettings.parse({"chunk_frames": 6}))
    block = max(result.finding_blocks, key=lambda b: b.frame.size)
    assert np.unique(block.frame).size > 1
    flipped = dataclasses.replace(block, **{f.name: getattr(block, f.name)[::-1] for f in dataclasses.fields(block)})
    blocks = tuple(flipped if b is block else b for b in result.finding_blocks)
    result = dataclasses.replace(result, finding_blocks=blocks)
    assert not finding_text.supported(result)
    old, new = _both(result, tmp_path)
    assert new == old

"""The columnar polygon fusion gives what the per-cluster fusion gave: same merged polygons, same
conformity, same bytes in every output."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from cvat_ext.annotations.columnar_json import ReplicaColumns, read_annotations_bytes
from cvat_ext.annotations.cvat_json import dump_job_annotations
from cvat_ext.annotations.model import JobAnnotations, Shape, ShapeType
from cvat_ext.consensus import fuse, polygon_fusion
from cvat_ext.consensus.merge import dominant_member
from cvat_ext.consensus.polygon_fusion import FusedPolygons
from cvat_ext.consensus.settings import ConsensusSettings
from cvat_ext.consensus.table_source import score_tables
from cvat_ext.consensus.writers import write_outputs

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from consensus_generator import Generated, Scenario, generate


def _with_twins(replicas: dict[str, JobAnnotations], seed: int) -> dict[str, JobAnnotations]:
    """A share of the second annotator's polygons replaced by the first's nearest drawing (same
    frame and label), the copier put first: two annotators who pasted the same outline, the
    earlier one not the vote's lead (the conformity rule's tie)."""
    rng = np.random.default_rng(seed)
    lead_name, copier_name, *rest = list(replicas)
    by_frame: dict[tuple[int, int], list[Shape]] = {}
    for s in replicas[lead_name].shapes:
        by_frame.setdefault((s.frame, s.label_id), []).append(s)
    copied = []
    for s in replicas[copier_name].shapes:
        near = by_frame.get((s.frame, s.label_id))
        if near and rng.random() < 0.5:
            twin = min(near, key=lambda t: float(np.abs(t.points.mean(axis=0) - s.points.mean(axis=0)).sum()))
            s = dataclasses.replace(s, points=twin.points)
        copied.append(s)
    copier = dataclasses.replace(replicas[copier_name], shapes=tuple(copied))
    return {copier_name: copier, lead_name: replicas[lead_name], **{n: replicas[n] for n in rest}}


def _outputs(
    tables: Mapping[str, ReplicaColumns], g: Generated, settings: ConsensusSettings, root: Path
) -> dict[str, bytes]:
    result = score_tables(tables, g.labels, g.meta, settings)
    write_outputs(result, report_out=root / "report.json", csv_dir=root / "tables", merged_out=root / "merged.json")
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    ("seed", "options", "twins"),
    [(1, {}, False), (2, {}, True), (3, {"method": "staple"}, False), (4, {"mask_vote_thr": 0.3}, True)],
)
def test_columnar_polygon_fusion_equals_per_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int, options: dict[str, object], twins: bool
) -> None:
    g = generate(Scenario(kind="polygon", frames=12, objects_per_frame=8, seed=seed))
    replicas = _with_twins(g.replicas, seed) if twins else g.replicas
    tables = {
        n: read_annotations_bytes(json.dumps(dump_job_annotations(a)).encode(), where=n) for n, a in replicas.items()
    }
    settings = ConsensusSettings.parse({"chunk_frames": 5, **options})
    parts: list[FusedPolygons] = []
    real = fuse.fuse_polygon_clusters

    def spy(*args: object, **kwargs: object) -> object:
        got = real(*args, **kwargs)  # type: ignore[arg-type]
        assert got is not None, "a polygon group fell back to the per-cluster path"
        parts.append(got)
        return got

    monkeypatch.setattr(fuse, "fuse_polygon_clusters", spy)
    new = _outputs(tables, g, settings, tmp_path / "new")
    assert parts and sum(p.start.size - 1 for p in parts) > 50
    monkeypatch.setattr(fuse, "fuse_polygon_clusters", lambda *_a, **_k: None)
    old = _outputs(tables, g, settings, tmp_path / "old")
    assert sorted(new) == sorted(old)
    for name in old:
        assert new[name] == old[name], name
    merged = json.loads(new["merged.json"])
    assert merged["shapes"] and all(s["type"] == ShapeType.POLYGON.value for s in merged["shapes"])


@pytest.mark.parametrize("n_annot", [3, 7, 8, 12])
def test_dominant_rows_equal_the_per_cluster_rule(n_annot: int) -> None:
    """``_dominant`` decides each row as :func:`dominant_member` decides the row's members alone,
    also with 8 or more members (NumPy's pairwise sums), leads at the threshold's very edge."""
    rng = np.random.default_rng(n_annot)
    n_rows = 4000
    weight = rng.choice([0.1, 0.2, 0.3, 0.7, 1.0 / 3.0, 2.0 / 3.0], size=(n_rows, n_annot))
    present = rng.random((n_rows, n_annot)) < 0.8
    rows, lead = np.arange(n_rows), rng.integers(0, n_annot, n_rows)
    present[rows, lead] = True
    weight = np.where(present, weight, 0.0)
    # the lead weighs the others' sum plus 2e-9, give or take: at 0.5, within an ulp of deciding
    others = weight.sum(axis=1) - weight[rows, lead]
    weight[rows, lead] = others + 2e-9 * rng.choice([0.5, 1.0, 1.0 + 1e-7, 2.0], n_rows)
    lead = np.where(present, weight, -np.inf).argmax(axis=1)
    got = polygon_fusion._dominant(weight, present, lead, "wbf", 0.5)
    want = np.array([dominant_member(w[on], 0.5) is not None for w, on in zip(weight, present, strict=True)])
    assert got.any() and not got.all()
    np.testing.assert_array_equal(got, want)

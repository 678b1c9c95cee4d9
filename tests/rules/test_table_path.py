"""The rules over columns give the findings the rules over objects give: every shipped pack, on
the rule test scenes (every defect at once), the recorded CVAT bodies and generated jobs of every
shape kind, with small batches so batch boundaries fall everywhere."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

from cvat_ext.annotations.columnar_json import read_annotations_body
from cvat_ext.annotations.cvat_json import dump_job_annotations, parse_job_annotations
from cvat_ext.annotations.model import JobAnnotations, JobMeta, LabelSet, ShapeType
from cvat_ext.annotations.tracks import iter_frames
from cvat_ext.rules import check_job, load_packs
from cvat_ext.rules.engine import iter_findings
from cvat_ext.rules.frame_batch import LabelIndex, build_frame_batch, build_table_batch
from tests.rules.recorded import recorded_job
from tests.rules.scenes import DRIVING_DEFECTS, RETAIL_DEFECTS, driving_job, retail_job

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from consensus_generator import Scenario, generate

QA_RULES = Path(__file__).resolve().parents[2] / "qa_rules"
PACKS = ("default.yaml", "driving.yaml", "retail_shelves.yaml")


def _without_tracks(job: tuple[JobAnnotations, LabelSet, JobMeta]) -> tuple[JobAnnotations, LabelSet, JobMeta]:
    ann, labels, meta = job
    return dataclasses.replace(ann, tracks=()), labels, meta


def _generated(kind: str, seed: int) -> tuple[JobAnnotations, LabelSet, JobMeta]:
    g = generate(Scenario(kind=kind, frames=40, objects_per_frame=12, seed=seed))  # type: ignore[arg-type]
    return next(iter(g.replicas.values())), g.labels, g.meta


SCENES = {
    "driving": lambda: _without_tracks(driving_job(DRIVING_DEFECTS)),
    "retail": lambda: _without_tracks(retail_job(RETAIL_DEFECTS)),
    "recorded parent": lambda: _without_tracks(recorded_job("72_consensus_parent_after_merge.json")),
    "recorded replica": lambda: _without_tracks(recorded_job("40_job_annotations_get_replica.json")),
    "recorded gt": lambda: _without_tracks(recorded_job("41_job_annotations_get_gt.json")),
    "rectangles": lambda: _generated("rectangle", 1),
    "polygons": lambda: _generated("polygon", 2),
    "masks": lambda: _generated("mask", 3),
    "skeletons": lambda: _generated("skeleton", 4),
}


@pytest.mark.parametrize("pack_name", PACKS)
@pytest.mark.parametrize("scene", sorted(SCENES))
@pytest.mark.parametrize("batch_rows", [7, 4096])
def test_columns_give_the_findings_objects_give(pack_name: str, scene: str, batch_rows: int) -> None:
    ann, labels, meta = SCENES[scene]()
    pack = load_packs([QA_RULES / pack_name])
    body = dump_job_annotations(ann)
    columns = read_annotations_body(body, where=scene, last_frame=meta.stop_frame)
    assert not columns.from_tracks
    objects = parse_job_annotations(body, where=scene)
    kw = {"job_id": 3, "annotator": "ann1", "batch_rows": batch_rows}
    want = check_job(objects, labels, meta, pack, **kw)  # type: ignore[arg-type]
    got = check_job(columns, labels, meta, pack, **kw)  # type: ignore[arg-type]
    assert [repr(f) for f in got] == [repr(f) for f in want]
    if scene in ("driving", "retail"):
        assert want  # the defects are found


def test_scenes_hold_findings_of_most_rules() -> None:
    """The comparison above is not vacuous: together the scenes fire most rules of the packs."""
    fired: set[str] = set()
    rules: set[str] = set()
    for pack_name in PACKS:
        pack = load_packs([QA_RULES / pack_name])
        rules |= {r.id for r in pack.rules}
        for make in SCENES.values():
            ann, labels, meta = make()
            fired |= {f.code for f in check_job(ann, labels, meta, pack, job_id=3, annotator=None)}
    assert len(fired) >= 0.6 * len(rules), sorted(rules - fired)


def test_columns_with_tracks_are_refused() -> None:
    ann, labels, meta = driving_job(DRIVING_DEFECTS)
    assert ann.tracks
    columns = read_annotations_body(dump_job_annotations(ann), where="driving", last_frame=meta.stop_frame)
    pack = load_packs([QA_RULES / "driving.yaml"])
    with pytest.raises(ValueError, match="tracks"):
        list(iter_findings(columns, labels, meta, pack, job_id=1, annotator=None))


@pytest.mark.parametrize("scene", sorted(SCENES))
def test_table_batches_hold_the_object_batches_columns(scene: str) -> None:
    """Geometry from columns equals geometry from objects, bit for bit: every shape kind of the
    recorded bodies (ellipses, masks, polygons, polylines, points, skeletons), rotated ellipses
    and rectangles included."""
    ann, labels, meta = SCENES[scene]()
    rng = np.random.default_rng(len(scene))
    turned = tuple(
        dataclasses.replace(s, rotation=float(rng.uniform(0, 360)))
        if s.type in (ShapeType.RECTANGLE, ShapeType.ELLIPSE) and rng.random() < 0.5
        else s
        for s in ann.shapes
    )
    body = dump_job_annotations(dataclasses.replace(ann, shapes=turned))
    columns = read_annotations_body(body, where=scene, last_frame=meta.stop_frame)
    objects = parse_job_annotations(body, where=scene)
    index = LabelIndex.from_labels(labels)
    frames = sorted(set(objects.frames()))
    by_object = build_frame_batch(list(iter_frames(objects, frames=frames)), [(640, 480)] * len(frames), index)
    table = columns.shapes
    visible = np.flatnonzero(~table.outside)
    counts = np.array([np.count_nonzero(table.frame[visible] == f) for f in frames], dtype=np.int64)
    tags = [columns.tags.get(f, ()) for f in frames]
    by_table = build_table_batch(table, visible, np.array(frames), counts, tags, [(640, 480)] * len(frames), index)
    for name in (
        "starts",
        "frame",
        "xyxy",
        "width",
        "height",
        "area",
        "rotation",
        "label_id",
        "label_idx",
        "type_code",
    ):
        np.testing.assert_array_equal(getattr(by_table, name), getattr(by_object, name), err_msg=name)
    assert by_table.tags == by_object.tags
    assert [repr(s) for s in by_table.shapes] == [repr(s) for s in by_object.shapes]
    assert [by_table.row_attributes(i) for i in range(len(by_table))] == [s.attributes for s in by_object.shapes]

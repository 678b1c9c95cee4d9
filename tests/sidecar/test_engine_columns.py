"""The sidecar's consensus runner gives the same outcome from columns as from objects."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cvat_ext.annotations.columnar_json import read_annotations_body
from cvat_ext.annotations.cvat_json import dump_job_annotations, parse_job_annotations
from cvat_ext.consensus.settings import ConsensusSettings
from cvat_ext.sidecar.engines import ConsensusEngineRunner
from cvat_ext.sidecar.interface import ConsensusOutcome, ReplicaInput

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from consensus_generator import Kind, Scenario, generate


def _plain(outcome: ConsensusOutcome) -> object:
    assert outcome.merged is not None
    return (
        outcome.agreement,
        sorted(outcome.replica_agreement.items()),
        [(f.job_id, f.frame, f.code, f.xyxy, f.message) for f in outcome.findings],
        dump_job_annotations(outcome.merged),
        dict(outcome.detail),
    )


@pytest.mark.parametrize(("kind", "seed"), [("rectangle", 1), ("mask", 2), ("polygon", 3)])
def test_columns_and_objects_give_the_same_outcome(kind: Kind, seed: int) -> None:
    g = generate(Scenario(kind=kind, frames=8, objects_per_frame=6, seed=seed))
    bodies = {10 + i: dump_job_annotations(ann) for i, ann in enumerate(g.replicas.values())}
    runner = ConsensusEngineRunner(ConsensusSettings(iou_thr=0.5))
    objects = [ReplicaInput(j, None, parse_job_annotations(b)) for j, b in bodies.items()]
    columns = [
        ReplicaInput(j, None, columns=read_annotations_body(b, where=f"job {j}", last_frame=g.meta.stop_frame))
        for j, b in bodies.items()
    ]
    want = runner.score(1, objects, g.labels, g.meta)
    assert want.findings
    assert _plain(runner.score(1, columns, g.labels, g.meta)) == _plain(want)


def test_a_replica_needs_objects_or_columns() -> None:
    with pytest.raises(ValueError, match="replica job 7"):
        ReplicaInput(7, None)

"""The sidecar's consensus runner: columns and objects give the same outcome, and the columnar
outcome (findings per replica as columns, the merge as JSON text) publishes what the per-object
outcome published: the same issues, the same counts, the same PUT body."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from cvat_ext.annotations.columnar_json import read_annotations_body
from cvat_ext.annotations.cvat_json import dump_job_annotations, parse_job_annotations
from cvat_ext.consensus.replica_findings import ReplicaFindings, at_fault, on_replica
from cvat_ext.consensus.report import CLUSTER_FINDING_KINDS, FindingBlock
from cvat_ext.consensus.settings import ConsensusSettings
from cvat_ext.consensus.table_source import score_tables
from cvat_ext.qa.decision import Agreement, Policy, decide, replica_is_sloppy
from cvat_ext.qa.findings import SEVERITY_RANK, Finding, Severity
from cvat_ext.sidecar.engines import ConsensusEngineRunner
from cvat_ext.sidecar.interface import ConsensusOutcome, ReplicaInput
from cvat_ext.sidecar.publish import publishable

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from consensus_generator import Kind, Scenario, generate


def _plain(outcome: ConsensusOutcome) -> object:
    merged = outcome.merged_annotations()
    assert merged is not None
    return (
        outcome.agreement,
        sorted(outcome.replica_agreement.items()),
        [(f.job_id, f.frame, f.code, f.xyxy, f.message) for f in outcome.all_findings()],
        dump_job_annotations(merged),
        dict(outcome.detail),
    )


def _bodies(kind: Kind, seed: int, frames: int = 8, objects: int = 6) -> tuple[dict[int, dict], object]:
    g = generate(Scenario(kind=kind, frames=frames, objects_per_frame=objects, seed=seed))
    return {10 + i: dump_job_annotations(ann) for i, ann in enumerate(g.replicas.values())}, g


@pytest.mark.parametrize(("kind", "seed"), [("rectangle", 1), ("mask", 2), ("polygon", 3)])
def test_columns_and_objects_give_the_same_outcome(kind: Kind, seed: int) -> None:
    bodies, g = _bodies(kind, seed)
    runner = ConsensusEngineRunner(ConsensusSettings(iou_thr=0.5))
    objects = [ReplicaInput(j, None, parse_job_annotations(b)) for j, b in bodies.items()]
    columns = [
        ReplicaInput(j, None, columns=read_annotations_body(b, where=f"job {j}", last_frame=g.meta.stop_frame))
        for j, b in bodies.items()
    ]
    want = runner.score(1, objects, g.labels, g.meta)
    assert want.all_findings()
    assert _plain(runner.score(1, columns, g.labels, g.meta)) == _plain(want)


# findings are compared by repr: a cluster's min similarity may be NaN, and NaN != NaN


def _per_object(result: object, job_of: dict[str, int]) -> tuple[list[Finding], dict[int, float]]:
    """What the sidecar built before the columnar outcome: every consensus finding as an object,
    copied onto each replica at fault."""
    agreement = {
        job_of[a.annotator]: a.vs_consensus_f1 if a.vs_consensus_f1 == a.vs_consensus_f1 else 0.0
        for a in result.annotators
    }
    found = [
        on_replica(f, job_of[n], n, f"replica agreement {agreement.get(job_of[n], 0.0):.2f}")
        for f in result.findings  # type: ignore[attr-defined]
        for n in at_fault(f)
        if n in job_of
    ]
    return found, agreement


@pytest.mark.parametrize(
    ("kind", "seed", "frames", "objects"),
    [("rectangle", 4, 30, 12), ("rectangle", 5, 12, 40), ("mask", 6, 10, 8), ("polygon", 7, 10, 8)],
)
def test_columnar_findings_publish_what_the_objects_published(kind: Kind, seed: int, frames: int, objects: int) -> None:
    bodies, g = _bodies(kind, seed, frames, objects)
    tables = {
        f"job{j}": read_annotations_body(b, where=f"job {j}", last_frame=g.meta.stop_frame) for j, b in bodies.items()
    }
    result = score_tables(tables, g.labels, g.meta, ConsensusSettings(iou_thr=0.5))
    job_of = {f"job{j}": j for j in bodies}
    found, agreement = _per_object(result, job_of)
    names = result.summary.annotators
    table = ReplicaFindings.from_blocks(
        result.finding_blocks,
        names,
        [job_of[n] for n in names],
        [f"replica agreement {agreement[job_of[n]]:.2f}" for n in names],
        result.label_name,
    )
    tags = [f for f in found if f.code == "tag_disagreement"]
    # every copy, in the same order, equal field for field (votes and messages included)
    assert repr(list(table.materialise())) == repr([f for f in found if f.code != "tag_disagreement"])
    assert len(table) > 50

    for min_replica in (0.0, 0.8, 1.01):
        policy = Policy(min_replica_agreement=min_replica)
        agree = Agreement(0.5, agreement)
        decided = decide(found, policy, job_id=1, agreement=agree)
        rows = table.on_jobs([j for j in bodies if replica_is_sloppy(j, agree, policy)])
        counts = Counter(f.severity for f in decided.issues if f.code != "tag_disagreement")
        assert table.severity_counts(rows) == {s: n for s, n in counts.items() if n}
        for floor in ("warning", "error"):
            for per_job in (0, 1, 3, 50, 10_000):
                want = publishable(decided.issues, min_rank=SEVERITY_RANK[floor], max_per_job=per_job)
                got = publishable(
                    [f for f in decided.issues if f.code == "tag_disagreement"] if tags else [],
                    min_rank=SEVERITY_RANK[floor],
                    max_per_job=per_job,
                    table=table,
                    rows=rows,
                )
                assert repr(got) == repr(want), (min_replica, floor, per_job)


def _block(
    xyxy: np.ndarray, frame: np.ndarray, label: np.ndarray, labels: np.ndarray, kinds: np.ndarray
) -> FindingBlock:
    k = xyxy.shape[0]
    flags = np.zeros((k, len(CLUSTER_FINDING_KINDS)), dtype=bool)
    flags[np.arange(k), kinds] = True
    return FindingBlock(
        frame=frame.astype(np.int64),
        type_code=np.zeros(k, dtype=np.int64),
        label=label.astype(np.int64),
        labels=labels.astype(np.int64),
        xyxy=xyxy,
        min_similarity=np.full(k, 0.4),
        score=np.full(k, 0.6),
        kept=np.ones(k, dtype=bool),
        flags=flags,
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fingerprint_twins_and_grid_halves_are_kept_once(seed: int) -> None:
    """Clusters crowded on one frame with boxes on half-cent values around the 8 px grid's halves
    (where NumPy's and Python's rounding part ways) and two label ids sharing a name: the table
    keeps the first of each fingerprint, as the publisher does with objects."""
    rng = np.random.default_rng(seed)
    k = 400
    base = rng.integers(0, 3, size=(k, 4)) * 8.0 + 4.0  # a grid half ...
    xyxy = base + rng.choice([-0.015, -0.005, 0.0, 0.005, 0.015, 0.0049999, 1.0], size=(k, 4))  # ... and nearby
    frame = np.sort(rng.integers(0, 3, size=k))
    label = rng.integers(1, 4, size=k)  # ids 2 and 3 are both "car"
    labels = np.where(rng.random((k, 3)) < 0.6, rng.integers(1, 4, size=(k, 3)), -1)
    kinds = rng.integers(0, len(CLUSTER_FINDING_KINDS), size=k)
    names_of = {1: "person", 2: "car", 3: "car"}
    blocks = [_block(xyxy[:200], frame[:200], label[:200], labels[:200], kinds[:200])]
    blocks.append(_block(xyxy[200:], frame[200:], label[200:], labels[200:], kinds[200:]))
    names = ("a", "b", "c")
    said = ["a: 0.3", "b: 0.5", "c: 0.7"]
    table = ReplicaFindings.from_blocks(blocks, names, [11, 12, 13], said, names_of.__getitem__)
    every = list(table.materialise())
    twins = len(every) - len({f.fingerprint for f in every})
    assert twins > 0  # the scene does hold findings sharing a fingerprint
    rows = np.arange(len(table))
    for per_job in (2, 10**6):
        want = publishable(every, min_rank=1, max_per_job=per_job)
        assert repr(publishable([], min_rank=1, max_per_job=per_job, table=table, rows=rows)) == repr(want)
    # the ident columns say "same fingerprint" exactly when the fingerprints are equal
    _, first = np.unique(table.ident, axis=0, return_index=True)
    seen: dict[str, int] = {}
    for i, f in enumerate(every):
        seen.setdefault(f.fingerprint, i)
    assert sorted(first.tolist()) == sorted(seen.values())


def test_replicas_without_a_job_are_left_out() -> None:
    xyxy = np.array([[0.0, 0.0, 10.0, 10.0]])
    block = _block(xyxy, np.array([0]), np.array([1]), np.array([[1, -1]]), np.array([0]))  # missing from "b"
    table = ReplicaFindings.from_blocks([block], ("a", "b"), [5, -1], ["a: 1.00", "b: 0.00"], lambda i: f"label{i}")
    assert len(table) == 0 and table.severity_counts(np.arange(0)) == {}
    table = ReplicaFindings.from_blocks(
        [block], ("a", "b"), [5, 6], ["a: F1 0.98", "replica agreement 0.25"], lambda i: f"label{i}"
    )
    (f,) = table.materialise()
    assert (f.job_id, f.annotator, f.severity) == (6, "b", Severity.ERROR)
    assert f.message.endswith("(replica agreement 0.25)")


def test_the_merge_is_sent_as_the_objects_would_be() -> None:
    bodies, g = _bodies("rectangle", 9, 20, 10)
    runner = ConsensusEngineRunner(ConsensusSettings(iou_thr=0.5))
    columns = [
        ReplicaInput(j, None, columns=read_annotations_body(b, where=f"job {j}", last_frame=g.meta.stop_frame))
        for j, b in bodies.items()
    ]
    outcome = runner.score(1, columns, g.labels, g.meta)
    assert outcome.merged is None and outcome.merged_json is not None
    tables = {
        f"job{j}": read_annotations_body(b, where=f"job {j}", last_frame=g.meta.stop_frame) for j, b in bodies.items()
    }
    result = score_tables(tables, g.labels, g.meta, ConsensusSettings(iou_thr=0.5))
    assert json.loads(outcome.merged_json()) == dump_job_annotations(result.merged)


def test_a_replica_needs_objects_or_columns() -> None:
    with pytest.raises(ValueError, match="replica job 7"):
        ReplicaInput(7, None)


def test_named_rows_read_as_the_object_path_words_them() -> None:
    """The columnar findings worded with each annotator's figures equal the per-object copies
    worded by :func:`on_replica`, row for row."""
    bodies, g = _bodies("rectangle", 8, 12, 10)
    tables = {f"ann{j}": read_annotations_body(b, where=f"job {j}", last_frame=g.meta.stop_frame)
              for j, b in bodies.items()}
    result = score_tables(tables, g.labels, g.meta, ConsensusSettings(iou_thr=0.5))
    job_of = {f"ann{j}": j for j in bodies}
    names = result.summary.annotators
    said = tuple(f"{n}: figures of {n}" for n in names)
    table = ReplicaFindings.from_blocks(result.finding_blocks, names, [job_of[n] for n in names], said,
                                        result.label_name)
    want = [on_replica(f, job_of[n], n, f"{n}: figures of {n}") for f in result.findings for n in at_fault(f)
            if f.code != "tag_disagreement"]
    assert len(table) > 10 and repr(list(table.materialise())) == repr(want)
    assert all(f.message.endswith(f"({f.annotator}: figures of {f.annotator})") for f in want)
    with pytest.raises(ValueError, match="expected figures for 3 annotators, got 2"):
        ReplicaFindings.from_blocks(result.finding_blocks, names, [job_of[n] for n in names], said[:2],
                                    result.label_name)

"""Consensus on replicas read as columns gives what the per-object path gives."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cvat_ext.annotations.columnar_json import read_annotations_bytes
from cvat_ext.annotations.cvat_json import dump_job_annotations, parse_job_annotations
from cvat_ext.annotations.model import JobMeta
from cvat_ext.consensus import table_source as table_source_module
from cvat_ext.consensus.batch import build_batches
from cvat_ext.consensus.engine import iter_chunks, score_replicas
from cvat_ext.consensus.settings import ConsensusSettings
from cvat_ext.consensus.table_source import score_tables, table_chunks
from tests.consensus.test_streaming import _plain

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from consensus_generator import Kind, Scenario, generate

BATCH_COLUMNS = ("frames", "index", "annotator", "frame_pos", "slot", "label", "xyxy", "rotation", "occluded")


def _shuffled_bodies(kind: Kind, frames: int, seed: int) -> tuple[dict[str, Any], Any, JobMeta]:
    g = generate(Scenario(kind=kind, frames=frames, objects_per_frame=6, seed=seed))
    rng = np.random.default_rng(seed)
    bodies = {}
    for name, ann in g.replicas.items():
        body = dump_job_annotations(ann)
        rng.shuffle(body["shapes"])  # files need not be in frame order
        bodies[name] = body
    return bodies, g.labels, g.meta


@pytest.mark.parametrize(("kind", "seed"), [("rectangle", 1), ("polygon", 2), ("mask", 3), ("rectangle", 4)])
@pytest.mark.parametrize("across", [True, False])
def test_batches_equal_the_per_object_batches(kind: Kind, seed: int, across: bool) -> None:
    bodies, _labels, meta = _shuffled_bodies(kind, 9, seed)
    meta = JobMeta(meta.start_frame, meta.stop_frame, meta.frames, deleted_frames=(2, 5))
    parsed = [parse_job_annotations(b) for b in bodies.values()]
    columns = [read_annotations_bytes(json.dumps(b).encode(), where=n) for n, b in bodies.items()]
    expected = [(c.frames, build_batches(c, match_across_labels=across)) for c in iter_chunks(parsed, meta, 4)]
    got = [(c.frames, b) for c, b in table_chunks(columns, meta, 4, match_across_labels=across)]
    assert [f for f, _ in got] == [f for f, _ in expected] and len(got) == 2  # 7 frames left, chunks of 4
    for (_, want), (_, have) in zip(expected, got, strict=True):
        assert want.keys() == have.keys()
        for key, batch in want.items():
            for name in BATCH_COLUMNS:
                assert np.array_equal(getattr(batch, name), getattr(have[key], name)), (key, name)
            assert batch.shapes is not None and have[key].shapes is not None
            assert [s.type for s in batch.shapes] == [s.type for s in have[key].shapes]


@pytest.mark.parametrize("cache_objects", [0, None, 10**9])
@pytest.mark.parametrize("kind", ["rectangle", "mask"])
def test_score_tables_equals_score_replicas(kind: Kind, cache_objects: int | None) -> None:
    bodies, labels, meta = _shuffled_bodies(kind, 10, 5)
    settings = ConsensusSettings(chunk_frames=3)
    expected = score_replicas({n: parse_job_annotations(b) for n, b in bodies.items()}, labels, meta, settings)
    tables = {n: read_annotations_bytes(json.dumps(b).encode(), where=n) for n, b in bodies.items()}
    passes: list[str] = []
    got = score_tables(
        tables, labels, meta, settings, cache_objects=cache_objects, progress=lambda s, _n: passes.append(s)
    )
    assert _plain(got) == _plain(expected)
    assert passes.count("match") == passes.count("merge") == 4


@pytest.mark.parametrize("numbers_budget", [0, 10**9])
def test_chunks_are_kept_for_pass_two_only_within_the_coordinate_budget(
    monkeypatch: pytest.MonkeyPatch, numbers_budget: int
) -> None:
    """The default budget counts coordinate numbers too (a job of masks holds ~140 an object):
    over it, pass 2 cuts the chunks again from the columns; the result is the same either way."""
    bodies, labels, meta = _shuffled_bodies("mask", 10, 5)
    settings = ConsensusSettings(chunk_frames=3)
    tables = {n: read_annotations_bytes(json.dumps(b).encode(), where=n) for n, b in bodies.items()}
    expected = score_tables(tables, labels, meta, settings, cache_objects=0)
    calls: list[int] = []
    make_source = table_source_module.table_source

    def counted(*args: Any, **kwargs: Any) -> Any:
        source = make_source(*args, **kwargs)

        def again() -> Any:
            calls.append(1)
            return source()

        return again

    monkeypatch.setattr(table_source_module, "table_source", counted)
    monkeypatch.setattr(table_source_module, "TABLE_CACHE_NUMBERS", numbers_budget)
    got = score_tables(tables, labels, meta, settings)
    assert _plain(got) == _plain(expected)
    assert len(calls) == (2 if numbers_budget == 0 else 1)

"""Row runs decoded once per polygon/mask batch: taking rows gives what decoding them gives."""

from __future__ import annotations

import dataclasses
from unittest import mock

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cvat_ext.consensus import engine, merge, segments
from cvat_ext.consensus.batch import ReplicaBatch
from cvat_ext.consensus.engine import score_replicas
from cvat_ext.consensus.settings import ConsensusSettings
from cvat_ext.geometry import RowRuns, SimilarityParams, segment_runs
from tests.consensus.test_matching import PARAMS, segment_batches


def _segments(runs: RowRuns) -> list[set[tuple[int, int, int]]]:
    out: list[set[tuple[int, int, int]]] = [set() for _ in range(runs.count)]
    for r, s, e, o in zip(runs.row.tolist(), runs.start.tolist(), runs.end.tolist(), runs.owner.tolist(), strict=True):
        out[o].add((r, s, e))
    return out


@settings(max_examples=100, deadline=None)
@given(batch=segment_batches(), data=st.data(), block_frames=st.sampled_from([1, 2, 8]))
def test_taken_runs_equal_decoded_runs(batch: ReplicaBatch, data: st.DataObject, block_frames: int) -> None:
    m = batch.label.shape[0]
    assume(batch.shapes is not None and m > 0)  # the strategy falls back to box batches
    rows = np.array(data.draw(st.lists(st.integers(0, m - 1), max_size=12)), dtype=np.int64)
    with mock.patch.object(segments, "SEGMENT_FRAMES", block_frames):
        cached = segments.segment_rows_runs(batch, PARAMS)
    got = cached.take(rows)
    want = segment_runs([batch.shape(i) for i in rows.tolist()], PARAMS)
    assert got.count == rows.size
    assert _segments(got) == _segments(want)
    np.testing.assert_array_equal(got.area, want.area)
    np.testing.assert_array_equal(got.ltrb, want.ltrb)
    # grouped by owner, as take_runs and the vote expect
    assert not np.any(np.diff(got.owner) < 0)


@given(batch=segment_batches())
@settings(max_examples=30, deadline=None)
def test_each_frame_is_clipped_to_its_own_size(batch: ReplicaBatch) -> None:
    assume(batch.shapes is not None)
    sizes = np.array([[40 - 10 * (f % 2), 30] for f in range(batch.n_frames)], dtype=np.int64)
    cached = segments.segment_rows_runs(batch, PARAMS, sizes)
    for row in range(batch.label.shape[0]):
        w, h = sizes[batch.frame_pos[row]]
        params = dataclasses.replace(PARAMS, image_wh=(int(w), int(h)))
        assert _segments(cached.take(np.array([row]))) == _segments(segment_runs([batch.shape(row)], params))


def test_runs_are_decoded_once_per_batch() -> None:
    batch = _mask_batch()
    first = segments.segment_rows_runs(batch, SimilarityParams(image_wh=(1280, 720)))
    assert segments.segment_rows_runs(batch, SimilarityParams(image_wh=(1280, 720))) is first
    # other frame sizes: decoded again
    assert segments.segment_rows_runs(batch, SimilarityParams(image_wh=(640, 360))) is not first


def _mask_batch() -> ReplicaBatch:
    from cvat_ext.consensus.batch import build_batches
    from cvat_ext.consensus.engine import iter_chunks
    from tests.consensus.test_accuracy import Scenario, generate

    g = generate(Scenario(kind="mask", frames=3, objects_per_frame=5, seed=2))
    (chunk,) = iter_chunks(list(g.replicas.values()), g.meta, 16)
    return build_batches(chunk)[("segment", None)]


def test_the_vote_reuses_the_matchings_runs_and_votes_the_same_masks(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.consensus.test_accuracy import MODERATE, Scenario, generate

    equals = tuple(dataclasses.replace(MODERATE, name=f"m{i}") for i in range(3))
    g = generate(Scenario(kind="mask", frames=12, seed=3, annotators=equals))
    decoded: list[int] = []
    decode, decode_columns = merge.rle_to_runs, merge.rle_columns_to_runs
    monkeypatch.setattr(merge, "rle_to_runs", lambda masks: decoded.append(len(masks)) or decode(masks))
    monkeypatch.setattr(
        merge, "rle_columns_to_runs", lambda counts, ltrb: decoded.append(len(counts)) or decode_columns(counts, ltrb)
    )
    reused = score_replicas(g.replicas, g.labels, g.meta, ConsensusSettings())
    assert decoded == []  # every member's runs came from the matching
    monkeypatch.setattr(engine, "CACHE_RUNS", 0)
    again = score_replicas(g.replicas, g.labels, g.meta, ConsensusSettings())
    assert sum(decoded) > 0
    assert len(reused.merged.shapes) == len(again.merged.shapes) > 0
    for got, want in zip(reused.merged.shapes, again.merged.shapes, strict=True):
        assert got.mask is not None and want.mask is not None
        assert got.mask.ltrb == want.mask.ltrb
        np.testing.assert_array_equal(got.mask.counts, want.mask.counts)

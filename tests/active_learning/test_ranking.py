"""Ranking: weighted order, deterministic ties, temporal NMS, per-job cap, weights parsing."""

from __future__ import annotations

import numpy as np
import pytest

from cvat_ext.active_learning.ranking import DEFAULT_WEIGHTS, RankParams, parse_weights, rank_frames
from cvat_ext.active_learning.signals import FrameSet, uncertainty_signal
from cvat_ext.errors import ConfigError
from tests.active_learning.helpers import detections, frames, signal


def test_weighted_order_and_contributions() -> None:
    u = signal("uncertainty", [0.1, 0.9, 0.5, 0.0])
    d = signal("disagreement", [0.8, 0.0, 0.5, 0.0])
    ranking = rank_frames(frames(4), [u, d], RankParams(weights={"uncertainty": 1, "disagreement": 3}, top_k=None))
    # scores (u + 3d) / 4: 0.625, 0.225, 0.5, 0.0
    assert ranking.frame_indices == [0, 2, 1, 3]
    assert ranking.score == pytest.approx([0.625, 0.225, 0.5, 0.0])
    top = ranking.picked[0]
    assert (top.rank, top.frame, top.job) == (1, 0, "job")
    assert dict(top.contributions) == pytest.approx({"uncertainty": 0.025, "disagreement": 0.6})
    assert sum(v for _, v in top.contributions) == pytest.approx(top.score)
    assert top.top_signal == "disagreement"
    assert top.why().startswith("disagreement 0.80")


def test_ties_break_by_lower_frame_index() -> None:
    # equal in exact arithmetic, different in float: 0.1 + 0.2 vs 0.3
    u = signal("uncertainty", [0.3, 0.1 + 0.2, 0.7, 0.3, 0.7])
    ranking = rank_frames(FrameSet.single_job([0, 2, 4, 6, 9]), [u], RankParams(top_k=None))
    assert ranking.frame_indices == [4, 9, 0, 2, 6]


def test_missing_signal_weights_are_ignored_and_zero_total_is_an_error() -> None:
    f = signal("findings", [0.5, 1.0])
    ranking = rank_frames(frames(2), [f], RankParams(top_k=1))
    assert ranking.frame_indices == [1]
    assert ranking.picked[0].score == pytest.approx(1.0)  # normalised by the supplied weights only
    with pytest.raises(ConfigError, match=r"every supplied signal \(findings\) has weight 0"):
        rank_frames(frames(2), [f], RankParams(weights={"uncertainty": 1, "findings": 0}))
    with pytest.raises(ConfigError, match="given twice"):
        rank_frames(frames(2), [f, f])
    with pytest.raises(ConfigError, match="3 values for 2 frames"):
        rank_frames(frames(2), [signal("uncertainty", [0, 0, 0])])


def _video(scores: list[float]) -> FrameSet:
    return frames(len(scores))


# a peak at frame 10 decaying slowly, a second smaller peak at 30
PEAKS = [max(1.0 - 0.04 * abs(i - 10), 0.7 - 0.04 * abs(i - 30), 0.0) for i in range(40)]


@pytest.mark.parametrize(
    ("window", "top_k", "expected"),
    [
        (0, 4, [10, 9, 11, 8]),  # without NMS: consecutive frames around the peak
        (2, 4, [10, 7, 13, 4]),  # |f - g| <= 2 suppressed
        (5, 4, [10, 4, 16, 30]),  # 4 and 16 tie at 0.76: the lower frame first
        (12, 4, [10, 30]),  # 10 suppresses 0..22, the second peak 18..39: fewer than K survive
        (100, 4, [10]),  # one window covers the video
    ],
)
def test_nms_window(window: int, top_k: int, expected: list[int]) -> None:
    ranking = rank_frames(_video(PEAKS), [signal("uncertainty", PEAKS)], RankParams(top_k=top_k, nms_window=window))
    picked = ranking.frame_indices
    assert picked == expected
    # no two picks within the window
    assert all(abs(a - b) > window for i, a in enumerate(picked) for b in picked[i + 1 :])


def test_nms_window_is_in_task_frames_not_positions() -> None:
    # a job with step 5: frames 0, 5, 10, ...; window 4 suppresses nothing, window 5 the neighbours
    fs = FrameSet.single_job(np.arange(0, 50, 5))
    u = signal("uncertainty", np.linspace(1.0, 0.1, 10))
    assert rank_frames(fs, [u], RankParams(top_k=3, nms_window=4)).frame_indices == [0, 5, 10]
    assert rank_frames(fs, [u], RankParams(top_k=3, nms_window=5)).frame_indices == [0, 10, 20]


def test_nms_top_k_none_keeps_every_survivor() -> None:
    u = signal("uncertainty", [0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    ranking = rank_frames(frames(6), [u], RankParams(top_k=None, nms_window=1))
    assert ranking.frame_indices == [0, 2, 4]
    assert ranking.order.tolist() == [0, 1, 2, 3, 4, 5]  # the full order before selection


def test_per_job_cap() -> None:
    fs = FrameSet(np.arange(8), np.array([0, 0, 0, 0, 1, 1, 1, 1]), ("a", "b"))
    u = signal("uncertainty", [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    ranking = rank_frames(fs, [u], RankParams(top_k=5, per_job_cap=2))
    assert ranking.frame_indices == [0, 1, 4, 5]
    assert [p.job for p in ranking.picked] == ["a", "a", "b", "b"]
    assert [p.rank for p in ranking.picked] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("text", "expected", "error"),
    [
        ("", dict(DEFAULT_WEIGHTS), None),
        ("uncertainty=2", {**DEFAULT_WEIGHTS, "uncertainty": 2.0}, None),
        (" disagreement = 0.25 , findings=0 ", {**DEFAULT_WEIGHTS, "disagreement": 0.25, "findings": 0.0}, None),
        ("uncertainty=1,", {**DEFAULT_WEIGHTS}, None),
        ("entropy=1", None, "unknown signal 'entropy'"),
        ("uncertainty", None, "expected NAME=NUMBER"),
        ("=1", None, "expected NAME=NUMBER"),
        ("uncertainty=high", None, "uncertainty='high' is not a number"),
        ("uncertainty=-1", None, "must be a finite number >= 0"),
        ("uncertainty=nan", None, "must be a finite number >= 0"),
        ("uncertainty=inf", None, "must be a finite number >= 0"),
        ("uncertainty=1,uncertainty=2", None, "'uncertainty' given twice"),
        ("uncertainty=0,disagreement=0,findings=0", None, "every weight is 0"),
    ],
)
def test_parse_weights(text: str, expected: dict[str, float] | None, error: str | None) -> None:
    if error is not None:
        with pytest.raises(ConfigError, match=error):
            parse_weights(text)
    else:
        assert parse_weights(text) == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"top_k": 0}, "top K"),
        ({"nms_window": -1}, "NMS window"),
        ({"per_job_cap": 0}, "per-job cap"),
        ({"weights": {"entropy": 1.0}}, "weight entropy"),
    ],
)
def test_rank_params_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RankParams(**kwargs)  # type: ignore[arg-type]


def _naive_select(frame_idx: list[int], score: list[float], window: int, top_k: int) -> list[int]:
    order = sorted(range(len(frame_idx)), key=lambda i: (-round(score[i], 12), frame_idx[i]))
    picked: list[int] = []
    for i in order:
        if len(picked) == top_k:
            break
        if all(abs(frame_idx[i] - p) > window for p in picked):
            picked.append(frame_idx[i])
    return picked


@pytest.mark.parametrize("seed", range(8))
def test_selection_matches_naive_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    fs = FrameSet.single_job(np.unique(rng.integers(0, 400, 150)))
    values = np.round(rng.random(len(fs)), 2)  # coarse values: many ties
    window, top_k = int(rng.integers(0, 6)), int(rng.integers(1, 40))
    ranking = rank_frames(fs, [signal("uncertainty", values)], RankParams(top_k=top_k, nms_window=window))
    assert ranking.frame_indices == _naive_select(fs.frame_idx.tolist(), values.tolist(), window, top_k)


def test_empty_job_and_no_detections() -> None:
    empty = FrameSet.single_job([])
    ranking = rank_frames(empty, [uncertainty_signal(empty, detections([(3, 0.5)]))], RankParams(nms_window=3))
    assert ranking.picked == () and ranking.score.shape == (0,)
    fs = frames(3)
    sig = uncertainty_signal(fs, detections([]))
    assert sig.value.tolist() == [0.5, 0.5, 0.5]
    assert rank_frames(fs, [sig], RankParams(top_k=2, per_job_cap=1)).frame_indices == [0]

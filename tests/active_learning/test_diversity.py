"""Score-weighted k-center selection and the image-statistics features."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvat_ext.active_learning.diversity import FEATURE_DIM, frame_features, select_diverse
from cvat_ext.errors import ConfigError
from tests.active_learning.pool import scene_frame


def naive_select(score: np.ndarray, feats: np.ndarray, k: int, diversity: float) -> list[int]:
    """The definition, one candidate at a time."""
    picked: list[int] = []
    for _ in range(min(k, len(score))):
        free = [i for i in range(len(score)) if i not in picked]
        if not picked:
            gains = {i: float(score[i]) for i in free}
        else:
            near = {i: min(float(np.linalg.norm(feats[i] - feats[j])) for j in picked) for i in free}
            others = [near[i] for i in free if i not in picked]
            d_max = max(others)
            gains = {i: (1 - diversity) * score[i] + diversity * (near[i] / d_max if d_max > 0 else 0.0)
                     for i in free}
        best = max(gains.values())
        picked.append(min(i for i in free if gains[i] == best))
    return picked


@settings(max_examples=150, deadline=None)
@given(n=st.integers(1, 25), k=st.integers(1, 8), d=st.integers(1, 5), diversity=st.sampled_from([0.0, 0.3, 0.5, 1.0]),
       seed=st.integers(0, 10_000))
def test_select_diverse_equals_the_definition(n: int, k: int, d: int, diversity: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    score = rng.random(n).round(3)
    feats = rng.normal(size=(n, d)).round(2)
    got = select_diverse(score, feats, k, diversity=diversity).tolist()
    assert got == naive_select(score, feats, k, diversity)


def test_diversity_zero_is_ranking_and_one_spreads_over_clusters() -> None:
    # two tight clusters; the higher scores all in the first
    feats = np.array([[0, 0], [0.01, 0], [0, 0.01], [5, 5], [5.01, 5]], float)
    score = np.array([0.9, 0.8, 0.7, 0.3, 0.2])
    assert select_diverse(score, feats, 3, diversity=0.0).tolist() == [0, 1, 2]
    assert select_diverse(score, feats, 2, diversity=0.5).tolist() == [0, 3]
    assert select_diverse(score, feats, 0).shape == (0,)


@pytest.mark.parametrize(("score", "feats", "kwargs", "message"), [
    (np.zeros(3), np.zeros((2, 4)), {}, "expected score"),
    (np.zeros(3), np.zeros(3), {}, "expected score"),
    (np.zeros(3), np.zeros((3, 2)), {"diversity": 1.5}, "diversity must be in"),
])
def test_select_diverse_refuses_bad_input(score: np.ndarray, feats: np.ndarray, kwargs: dict[str, float],
                                          message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        select_diverse(score, feats, 2, **kwargs)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_features_put_near_duplicates_closer_than_other_scenes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    feats = {(s, i): frame_features(scene_frame(s, 0.5, rng)) for s in range(4) for i in range(3)}
    assert all(f.shape == (FEATURE_DIM,) for f in feats.values())
    within = max(np.linalg.norm(feats[(s, 0)] - feats[(s, i)]) for s in range(4) for i in (1, 2))
    between = min(np.linalg.norm(feats[(s, 0)] - feats[(t, 0)]) for s in range(4) for t in range(4) if s != t)
    assert within < between / 3


def test_features_name_an_unreadable_frame() -> None:
    with pytest.raises(ConfigError, match="pool frame 3: not a readable image"):
        frame_features(b"not an image", where="pool frame 3")

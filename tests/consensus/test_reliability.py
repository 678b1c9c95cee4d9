"""Dawid–Skene, the noise separation and the existence model on data with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from cvat_ext.consensus.reliability import (
    fit_dawid_skene,
    fit_existence,
    fusion_weights,
    separate_noise,
)


def test_dawid_skene_finds_the_unreliable_annotator() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(1, 4, 600)
    given = np.stack([truth, truth, truth], axis=1)
    flip = rng.random((600, 2)) < 0.05
    given[:, :2] = np.where(flip, rng.integers(1, 4, (600, 2)), given[:, :2])
    given[:, 2] = rng.integers(1, 4, 600)  # a random labeller
    given[rng.random((600, 3)) < 0.1] = -1  # absent members
    model = fit_dawid_skene(given)
    acc = model.accuracy
    assert acc[0] > 0.9 and acc[1] > 0.9
    assert acc[2] < 0.5
    post = model.posterior(given)
    labelled = (given >= 0).sum(axis=1) >= 2
    recovered = model.classes[post.argmax(axis=1)] == truth
    assert recovered[labelled].mean() > 0.95


def test_dawid_skene_without_labels() -> None:
    model = fit_dawid_skene(np.full((3, 2), -1))
    assert model.classes.size == 0


@pytest.mark.parametrize(
    ("v", "expected_order"),
    [((0.01, 0.04, 0.09), (0, 1, 2)), ((0.05, 0.01, 0.02, 0.03), (1, 2, 3, 0))],
)
def test_noise_separation_recovers_variances(v: tuple[float, ...], expected_order: tuple[int, ...]) -> None:
    n = len(v)
    pairs = [(r, s) for r in range(n) for s in range(r + 1, n)]
    d = np.array([v[r] + v[s] for r, s in pairs])
    got = separate_noise(d, n)
    assert got == pytest.approx(v, abs=1e-12)
    weights = fusion_weights(got)
    assert tuple(np.argsort(-weights)) == expected_order
    assert weights.max() == pytest.approx(1.0)


def test_noise_separation_needs_three_annotators() -> None:
    assert separate_noise(np.array([0.1]), 2) == pytest.approx([0.05, 0.05])


def test_existence_model_weighs_singletons_by_who_drew_them() -> None:
    # 1000 real objects seen by annotators with sensitivity 0.99 / 0.95 / 0.6, plus false objects
    # invented mostly by annotator 2
    rng = np.random.default_rng(1)
    real = rng.random((1000, 3)) < np.array([0.99, 0.95, 0.6])
    real = real[real.any(axis=1)]
    fake = np.zeros((400, 3), dtype=bool)
    fake[np.arange(400), rng.choice(3, 400, p=[0.02, 0.08, 0.9])] = True
    model = fit_existence(np.concatenate([real, fake]))
    assert model.sensitivity == pytest.approx([0.99, 0.95, 0.6], abs=0.04)
    post = model.posterior(np.array([[1, 1, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=bool))
    assert post[0] == 1.0
    assert post[1] > 0.5  # the careful annotator alone: real
    assert post[3] < 0.1  # the one that invents objects alone: not real


def test_existence_strata_learn_where_singletons_are_real() -> None:
    # the careful annotator 0 draws singletons in both strata: in open space most are objects the
    # others missed, on top of better-supported clusters most are duplicates it invented
    rng = np.random.default_rng(2)
    real = rng.random((3000, 3)) < np.array([0.99, 0.9, 0.8])
    real = real[real.any(axis=1)]
    real_stratum = (rng.random(real.shape[0]) < 0.05).astype(np.int64)  # a few real objects overlap
    dup = np.zeros((60, 3), dtype=bool)
    dup[:, 0] = True
    sloppy = np.zeros((300, 3), dtype=bool)
    sloppy[:, 2] = True
    present = np.concatenate([real, dup, sloppy])
    stratum = np.concatenate([real_stratum, np.ones(60, dtype=np.int64), rng.integers(0, 2, 300)])
    model = fit_existence(present, stratum)
    assert model.prior.shape == (2,)
    single0 = np.array([[1, 0, 0]], dtype=bool)
    assert model.posterior(single0, np.array([0]))[0] > 0.5
    assert model.posterior(single0, np.array([1]))[0] < 0.5
    # one stratum for everything: the singletons of annotator 0 cannot be told apart
    pooled = fit_existence(present)
    assert pooled.posterior(single0)[0] == pytest.approx(pooled.posterior(single0, np.array([0]))[0])


def test_existence_strata_that_look_alike_change_nothing() -> None:
    # a crowd: whether a cluster is shadowed says nothing about whether it is real (any cluster not
    # drawn by everyone may be), so the strata must reach the pooled model's decisions
    rng = np.random.default_rng(3)
    real = rng.random((4000, 3)) < np.array([0.98, 0.9, 0.7])
    real = real[real.any(axis=1)]
    fake = np.zeros((500, 3), dtype=bool)
    fake[np.arange(500), rng.choice(3, 500, p=[0.05, 0.15, 0.8])] = True
    present = np.concatenate([real, fake])
    stratum = np.where(present.all(axis=1), 0, rng.integers(0, 2, present.shape[0]))
    split = fit_existence(present, stratum)
    pooled = fit_existence(present)
    patterns = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]], dtype=bool)
    want = pooled.posterior(patterns) >= 0.5
    for c in (0, 1):
        got = split.posterior(patterns, np.full(len(patterns), c)) >= 0.5
        assert got.tolist() == want.tolist() == [True, False, False, True, True, True]


def test_shadowed_pairs_of_object_inventing_annotators_are_not_real() -> None:
    # five annotators; the two sloppy ones (3, 4) often both draw something spurious next to a real
    # object: in the shadow of another object, their pair is not evidence of a real one
    rng = np.random.default_rng(4)
    real = rng.random((3000, 5)) < np.array([0.99, 0.95, 0.95, 0.8, 0.8])
    real = real[real.any(axis=1)]
    echo = rng.random((1500, 5)) < np.array([0.01, 0.05, 0.05, 0.5, 0.5])
    echo = echo[echo.any(axis=1)]
    present = np.concatenate([real, echo])
    # some real objects overlap others too (never those everyone drew: nothing has more support)
    real_stratum = np.where(real.all(axis=1), 0, rng.random(len(real)) < 0.3)
    stratum = np.concatenate([real_stratum, np.ones(len(echo))]).astype(np.int64)
    model = fit_existence(present, stratum)
    sloppy_pair = np.array([[0, 0, 0, 1, 1]], dtype=bool)
    assert model.posterior(sloppy_pair, np.array([1]))[0] < 0.5
    assert model.posterior(sloppy_pair, np.array([0]))[0] == 1.0  # in open space a pair is real
    careful_pair = np.array([[1, 1, 0, 0, 0]], dtype=bool)
    assert model.posterior(careful_pair, np.array([1]))[0] > 0.5

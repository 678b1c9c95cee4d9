"""Combining LF votes into probabilistic labels: a generative label model and the majority baseline.

The label model is the "one-coin" generative model (Dawid–Skene with one accuracy per source, the
model behind Snorkel's label model for independent LFs): the true label y ~ prior pi; each LF j,
when it votes, gives y with probability a_j and each other label with (1 - a_j) / (K - 1);
abstaining carries no information. EM from the majority vote, on the distinct vote patterns
weighted by their counts (a million candidates have a few thousand patterns).

Why not the consensus engine's full Dawid–Skene (:mod:`cvat_ext.consensus.reliability`, one K x K
confusion matrix per source): most LFs vote for a single label ("large rectangle -> vehicle"), so a
per-LF confusion matrix has one observed column and is not identifiable; on such votes that model
drifted every candidate to the most frequent label. The one-coin model needs only that LFs beat
chance (a_j > 1/K), which is what an LF is for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cvat_ext.rows import distinct_rows

__all__ = ["LabelModel", "fit_label_model", "majority_vote", "vote_posterior"]

_EPS = 1e-4


@dataclass(frozen=True)
class LabelModel:
    """``proba`` (N, K) over the label space (uniform where no LF voted); ``lf_accuracy`` (M,)
    estimated per LF (NaN for an LF that never voted); ``prior`` (K,)."""

    proba: npt.NDArray[np.float64]
    lf_accuracy: npt.NDArray[np.float64]
    prior: npt.NDArray[np.float64]

    @property
    def label(self) -> npt.NDArray[np.int64]:
        """(N,) most probable label, -1 where no LF voted."""
        out = np.argmax(self.proba, axis=1).astype(np.int64)
        out[np.ptp(self.proba, axis=1) == 0] = -1
        return out

    @property
    def confidence(self) -> npt.NDArray[np.float64]:
        return np.asarray(self.proba.max(axis=1), dtype=np.float64)


def _patterns(votes: npt.NDArray[np.int8]) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.int64], npt.NDArray[np.intp]]:
    """Distinct rows of (N, M) int8 votes, their counts, and each row's pattern index."""
    rows = distinct_rows(votes)
    return votes[rows.first], rows.counts, rows.inverse


def _posterior(
    patterns: npt.NDArray[np.int8], accuracy: npt.NDArray[np.float64], prior: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """(P, K) posterior of each vote pattern under the one-coin model."""
    p = patterns.shape[0]
    k = prior.shape[0]
    acc = np.clip(accuracy, _EPS, 1 - _EPS)
    # a vote for label v adds log a_j to v and log((1 - a_j) / (K - 1)) to every other label:
    # the same as adding the difference to v only (the constant cancels in the normalisation)
    weight = np.log(acc) - np.log((1 - acc) / max(k - 1, 1))
    rows, cols = np.nonzero(patterns >= 0)
    flat = rows * k + patterns[rows, cols].astype(np.int64)
    score = np.bincount(flat, weights=weight[cols], minlength=p * k).reshape(p, k) + np.log(prior)[None, :]
    score -= score.max(axis=1, keepdims=True)
    post = np.exp(score)
    return np.asarray(post / post.sum(axis=1, keepdims=True), dtype=np.float64)


def vote_posterior(matrix: npt.ArrayLike, accuracy: npt.ArrayLike, prior: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """(N, K) posterior of the one-coin model with given LF ``accuracy`` (M,) and label ``prior``
    (K,), no fitting: for a handful of candidates (one image) where EM has nothing to learn from."""
    votes = np.asarray(matrix, dtype=np.int8)
    patterns, _, inverse = _patterns(votes)
    post = _posterior(patterns, np.asarray(accuracy, dtype=np.float64), np.asarray(prior, dtype=np.float64))
    return np.asarray(post[inverse], dtype=np.float64)


def fit_label_model(
    matrix: npt.ArrayLike,
    n_labels: int,
    *,
    iterations: int = 100,
    tol: float = 1e-6,
    prior_accuracy: float = 0.7,
    prior_votes: float = 10.0,
) -> LabelModel:
    """Fit on the (N, M) vote matrix (-1 = abstain) over ``n_labels`` labels.

    Each LF's accuracy starts from a Beta prior worth ``prior_votes`` votes at ``prior_accuracy``
    (an LF is written to beat chance; with few votes EM alone can talk itself into "this LF is
    always wrong" and relabel everything as the most frequent label); the label prior gets 10 %
    of the candidates as uniform pseudo-counts. Stops when no accuracy moves by ``tol``.
    """
    votes = np.asarray(matrix, dtype=np.int8)
    m = votes.shape[1]
    patterns, counts, inverse = _patterns(votes)
    voted = patterns >= 0
    n_votes = (voted * counts[:, None]).sum(axis=0).astype(np.float64)
    # start: the majority vote as the posterior
    post = np.zeros((patterns.shape[0], n_labels))
    rows, cols = np.nonzero(voted)
    np.add.at(post, (rows, patterns[rows, cols].astype(np.int64)), 1.0)
    none = post.sum(axis=1) == 0
    post[none] = 1.0
    post /= post.sum(axis=1, keepdims=True)
    accuracy = np.full(m, 0.7)
    prior = np.full(n_labels, 1.0 / n_labels)
    weighted = counts[:, None].astype(np.float64)
    label_pseudo = max(0.1 * float(counts.sum()) / n_labels, 1.0)
    for _ in range(iterations):
        # M-step: how often each LF's vote matches the (soft) label, and the label prior
        safe = np.where(voted, patterns, 0).astype(np.int64)
        agree = np.take_along_axis(post, safe, axis=1) * voted
        new_accuracy = ((agree * weighted).sum(axis=0) + prior_accuracy * prior_votes) / (n_votes + prior_votes)
        prior = (post * weighted).sum(axis=0) + label_pseudo
        prior /= prior.sum()
        post = _posterior(patterns, new_accuracy, prior)
        moved = float(np.abs(new_accuracy - accuracy).max()) if m else 0.0
        accuracy = new_accuracy
        if moved < tol:
            break
    proba = post[inverse]
    proba[none[inverse]] = 1.0 / n_labels
    lf_accuracy = np.where(n_votes > 0, accuracy, np.nan)
    return LabelModel(np.asarray(proba, dtype=np.float64), lf_accuracy, np.asarray(prior, dtype=np.float64))


def majority_vote(matrix: npt.ArrayLike, n_labels: int, *, seed: int = 0) -> npt.NDArray[np.int64]:
    """(N,) plurality label, ties broken at random (seeded), -1 where every LF abstained."""
    votes = np.asarray(matrix, dtype=np.int64)
    n = votes.shape[0]
    rows, cols = np.nonzero(votes >= 0)
    flat = rows * n_labels + votes[rows, cols]
    counts = np.bincount(flat, minlength=n * n_labels).reshape(n, n_labels)
    noise = np.random.default_rng(seed).random((n, n_labels)) * 0.5  # < 1: breaks ties only
    out = np.argmax(counts + noise, axis=1).astype(np.int64)
    out[counts.sum(axis=1) == 0] = -1
    return out

"""Per-member hit posteriors (:mod:`cvat_ext.consensus.member_hit`): calibrated against the
realised hits of drawings whose truth is known, and sharper than the annotator's rate; and on a
generated job, two annotators of one profile ordered as their true F1."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from cvat_ext.consensus import annotator_model
from cvat_ext.consensus.engine import score_replicas
from cvat_ext.consensus.matching import annotator_pairs
from cvat_ext.consensus.member_hit import (
    SPREAD_GRID,
    X_BINS,
    member_hit,
    member_ratios,
    pair_hit_table,
    pooled_spread2,
)
from cvat_ext.consensus.noise_model import template
from cvat_ext.consensus.settings import ConsensusSettings
from cvat_ext.geometry import box_iou_pairs

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from annotator_truth import params_for, truth_scores
from consensus_generator import generate, preset_scenario

IOU_THR = 0.5


def _drawings(rng: np.random.Generator, spreads: list[float], n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` truth boxes of sides 20-200 px, each drawn by every annotator with corner jitter
    ``spreads[r] * side``: (n, R, 4) drawings and (n, R) their IoU with the truth."""
    side = np.exp(rng.uniform(np.log(20.0), np.log(200.0), n))
    xy = rng.uniform(0.0, 1000.0, (n, 2))
    truth = np.column_stack([xy, xy + side[:, None]])
    noise = rng.normal(0.0, 1.0, (n, len(spreads), 4)) * np.asarray(spreads)[None, :, None] * side[:, None, None]
    drawn = truth[:, None, :] + noise
    drawn = np.concatenate([np.minimum(drawn[..., :2], drawn[..., 2:]), np.maximum(drawn[..., :2], drawn[..., 2:])], -1)
    iou = np.stack([box_iou_pairs(drawn[:, r], truth) for r in range(len(spreads))], axis=1)
    return drawn, iou


@pytest.mark.parametrize(
    ("spreads", "seed"),
    [([0.05, 0.15, 0.3], 0), ([0.12, 0.12, 0.12], 1), ([0.03, 0.1, 0.1, 0.25, 0.25], 2), ([0.2, 0.2, 0.35], 3)],
)
def test_posteriors_are_calibrated_and_sharper_than_the_rate(spreads: list[float], seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_annot = len(spreads)
    drawn, iou = _drawings(rng, spreads, 3000)
    hit = iou >= IOU_THR
    # the cluster table as pass 1 sees it: every pair's similarity where it matched, else NaN
    pair_sim = np.column_stack([box_iou_pairs(drawn[:, a], drawn[:, b]) for a, b in annotator_pairs(n_annot)])
    pair_sim = np.where(pair_sim >= IOU_THR, pair_sim, np.nan)
    present = np.ones_like(hit)
    spread2 = np.square(spreads)[None, :]  # one size bin: the spreads are relative
    rate = template().at_threshold(spread2.ravel(), IOU_THR)[0][None, :]
    bins = np.zeros(hit.shape[0], dtype=np.int64)
    table = pair_hit_table(IOU_THR, IOU_THR)
    post = member_hit(table, present, pair_sim, bins, spread2, rate, None)
    ratios = member_ratios(table, spread2, rate, None)  # rows are independent: blocks give the same
    blocks = [ratios.posterior(present[sl], pair_sim[sl], bins[sl]) for sl in (slice(0, 700), slice(700, None))]
    assert np.array_equal(np.concatenate(blocks), post)
    rate = np.broadcast_to(rate, hit.shape)
    # calibrated: the posteriors sum to the realised hits (within 4 % of the drawings)
    assert np.all(np.abs(post.sum(axis=0) - hit.sum(axis=0)) <= 0.04 * hit.shape[0]), (post.sum(0), hit.sum(0))
    # and they tell the members that hit from those that miss better than the rate does
    brier_post = ((post - hit) ** 2).mean(axis=0)
    brier_rate = ((rate - hit) ** 2).mean(axis=0)
    noisy = rate.mean(axis=0) < 0.95  # a rate near 1 leaves nothing to tell apart
    assert np.all(brier_post[noisy] < 0.95 * brier_rate[noisy]), (brier_post, brier_rate)


def test_absent_partners_speak_only_through_their_draw_rate() -> None:
    # a lone drawing: a precise partner that draws everything and is absent says "misfit"; one
    # that draws nothing says nothing
    table = pair_hit_table(IOU_THR, IOU_THR)
    present = np.array([[True, False]])
    pair_sim = np.array([[np.nan]])
    spread2 = np.array([[0.3**2, 0.02**2]])
    rate = np.array([[0.4, 1.0]])
    bins = np.zeros(1, dtype=np.int64)
    certain = member_hit(table, present, pair_sim, bins, spread2, rate, np.array([1.0, 0.999]))
    never = member_hit(table, present, pair_sim, bins, spread2, rate, np.array([1.0, 0.0]))
    assert certain[0, 0] < 0.05
    assert never[0, 0] == pytest.approx(0.4, abs=1e-6)
    assert certain[0, 1] == never[0, 1] == 0.0  # absent members hit nothing


def test_equally_precise_annotators_share_a_spread() -> None:
    # each with the annotators within a variance ratio of 1.6 of its own (not transitively: 2.2 / 1.0)
    spread2 = np.array([[1.0, 1.5, 2.2, 8.0, 0.1], [0.0, 0.0, 1.0, 1.0, 1.0]])
    pooled = pooled_spread2(spread2)
    assert pooled[0] == pytest.approx([1.25, 4.7 / 3, 1.85, 8.0, 0.1])
    assert pooled[1] == pytest.approx([0.0, 0.0, 1.0, 1.0, 1.0])  # a spread fitted at 0 stays 0


class _RateOnly:
    """Stands in for :func:`~cvat_ext.consensus.member_hit.member_ratios`' result: no member
    posterior, so the truth estimates sum each annotator's hit rate over its clusters."""

    def __init__(self, *args: object) -> None:
        pass

    def posterior(self, *args: object) -> None:
        return None


def test_two_annotators_of_one_profile_are_ordered_as_their_true_f1(monkeypatch: pytest.MonkeyPatch) -> None:
    # five with two sloppy, polygons, seed 4: moderate1 and moderate2 (6 px, 10 % missed) differ
    # by 0.034 in true F1 by chance. Summing the annotator's hit rate over its clusters puts them
    # about 0.013 apart; what each drew in its clusters (the member posteriors) puts them closer to
    # the true gap. The rate's gap is computed here on the same job, by the same engine with the
    # member posteriors turned off, so the test compares the two mechanisms, not a recorded figure
    g = generate(preset_scenario("five-two-sloppy", "polygon", frames=30, seed=4))
    settings = ConsensusSettings()
    params = params_for(settings, g.meta)
    true_f1 = {n: truth_scores(g.replicas[n], g.truth, params=params).f1 for n in ("moderate1", "moderate2")}
    true_gap = true_f1["moderate2"] - true_f1["moderate1"]

    def estimated_gap() -> tuple[float, dict[str, float]]:
        result = score_replicas(g.replicas, g.labels, g.meta, settings)
        est = {a.annotator: a.truth_estimate["f1"] for a in result.annotators}
        return est["moderate2"] - est["moderate1"], est

    est_gap, est = estimated_gap()
    monkeypatch.setattr(annotator_model, "member_ratios", _RateOnly)
    rate_gap, rate_est = estimated_gap()
    assert true_gap >= 0.03
    assert est_gap > 0
    assert rate_gap != est_gap  # the patch reached the rate path
    assert abs(est_gap - true_gap) < abs(rate_gap - true_gap) - 0.005, (true_f1, est, rate_est)


def test_the_job_sums_do_not_depend_on_the_block_of_clusters(monkeypatch: pytest.MonkeyPatch) -> None:
    """The member hits are summed a block of clusters at a time (memory on long jobs): blocks of a
    few chunks' clusters give the estimates one block gives, up to the summation order."""
    g = generate(preset_scenario("precise-moderate-sloppy", "rectangle", frames=24, seed=2))
    settings = ConsensusSettings(chunk_frames=4)

    def estimates() -> list[dict[str, float]]:
        result = score_replicas(g.replicas, g.labels, g.meta, settings)
        return [dict(a.truth_estimate) for a in result.annotators]

    whole = estimates()
    monkeypatch.setattr(annotator_model, "HIT_BLOCK_ROWS", 50)
    blocks = list(annotator_model._row_blocks([np.zeros((30, 3)), np.zeros((30, 3)), np.zeros((7, 3))]))
    assert [(sl.start, sl.stop, len(rows)) for sl, rows in blocks] == [(0, 60, 60), (60, 67, 7)]
    for got, want in zip(estimates(), whole, strict=True):
        assert got.keys() == want.keys()
        for key, value in want.items():
            assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_table_rows_are_bilinear_in_log_spread() -> None:
    """``matched`` gives every bin's row at once: at the grid's spreads the table's own rows, and
    between them what a scalar bilinear interpolation in log spread gives, bin by bin."""
    table = pair_hit_table(0.5, 0.05)
    grid = SPREAD_GRID
    np.testing.assert_array_equal(table.matched(grid[[3, 7]] ** 2, grid[[5, 0]] ** 2), table.hit[[3, 7], [5, 0]])
    rng = np.random.default_rng(3)
    spread_r, spread_s = np.exp(rng.uniform(np.log(grid[0]), np.log(grid[-1]), (2, 40)))
    got = table.matched(spread_r**2, spread_s**2)
    assert got.shape == (40, X_BINS)
    log_grid = np.log(grid)
    for n in range(40):
        i, j = (int(np.searchsorted(log_grid, np.log(s), side="right")) - 1 for s in (spread_r[n], spread_s[n]))
        wi = (np.log(spread_r[n]) - log_grid[i]) / (log_grid[i + 1] - log_grid[i])
        wj = (np.log(spread_s[n]) - log_grid[j]) / (log_grid[j + 1] - log_grid[j])
        for b in (0, 17, X_BINS - 1):
            corners = table.hit[i : i + 2, j : j + 2, b]
            want = (1 - wi) * ((1 - wj) * corners[0, 0] + wj * corners[0, 1]) + wi * (
                (1 - wj) * corners[1, 0] + wj * corners[1, 1]
            )
            assert got[n, b] == pytest.approx(want, rel=1e-12)
    absent = table.unmatched(spread_r**2, spread_s**2, True, True)
    assert absent.shape == (40,)

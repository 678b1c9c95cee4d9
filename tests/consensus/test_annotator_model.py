"""The annotator model: truth estimates pinned against a ground-truth evaluation on generated jobs
with a known truth, the GT anchor, priors, the size-scaled noise fit and the noise-weighted merge."""

from __future__ import annotations

import csv
import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from cvat_ext.consensus.engine import score_replicas
from cvat_ext.consensus.noise_model import PairEvidence, fit_noise, template
from cvat_ext.consensus.report import ConsensusResult
from cvat_ext.consensus.settings import ConsensusSettings
from cvat_ext.consensus.writers import write_outputs
from cvat_ext.errors import ConfigError
from cvat_ext.geometry import box_iou_pairs

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from annotator_truth import TruthScores, params_for, truth_scores
from consensus_generator import Generated, Kind, Scenario, generate, gt_sample, preset_scenario

SETTINGS = ConsensusSettings()


def _truth(g: Generated, result: ConsensusResult) -> dict[str, TruthScores]:
    params = params_for(SETTINGS, g.meta)
    return {a.annotator: truth_scores(g.replicas[a.annotator], g.truth, params=params) for a in result.annotators}


def _errors(g: Generated, result: ConsensusResult, metric: str) -> dict[str, float]:
    truth = _truth(g, result)
    return {a.annotator: abs(a.truth_estimate[metric] - truth[a.annotator].get(metric)) for a in result.annotators}


# ---------------------------------------------------------------------------------------------
# the estimator against a ground-truth evaluation


@pytest.mark.parametrize(
    ("kind", "seed", "f1_tol", "iou_tol"),
    [
        ("rectangle", 1, 0.03, 0.03),
        ("rectangle", 4, 0.03, 0.03),
        ("mask", 2, 0.08, 0.03),
        ("polygon", 3, 0.08, 0.03),
    ],
)
def test_estimates_track_a_gt_evaluation(kind: Kind, seed: int, f1_tol: float, iou_tol: float) -> None:
    # relative jitter (the old generator): precise / moderate / sloppy. Masks and polygons: the
    # sloppy annotator's F1 is overestimated by 0.05-0.07 (its drawings that miss the truth by a
    # little still join a cluster: docs/developers/annotator-model.md, "Known gaps")
    g = generate(Scenario(kind=kind, frames=40, seed=seed))
    result = score_replicas(g.replicas, g.labels, g.meta, SETTINGS)
    f1_err, iou_err = _errors(g, result, "f1"), _errors(g, result, "mean_iou")
    assert max(f1_err.values()) <= f1_tol, f1_err
    assert max(iou_err.values()) <= iou_tol, iou_err
    assert max(_errors(g, result, "label_accuracy").values()) <= 0.03
    # the vs-consensus F1 of the sloppy annotator is far from the truth; the estimate is not
    sloppy = next(a for a in result.annotators if a.annotator == "sloppy")
    true_f1 = _truth(g, result)["sloppy"].f1
    assert abs(sloppy.truth_estimate["f1"] - true_f1) < abs(sloppy.vs_consensus_f1 - true_f1)


@pytest.mark.parametrize(
    ("preset", "frames", "seed"),
    [
        ("precise-moderate-sloppy", 60, 4),
        ("precise-moderate-sloppy", 60, 6),
        ("five-two-sloppy", 40, 4),
        ("five-two-sloppy", 40, 6),
    ],
)
def test_one_precise_annotator_in_pixels(preset: str, frames: int, seed: int) -> None:
    # issue 11's jobs: one precise annotator (2 px jitter) beside 6 px and 15 px ones. The
    # estimator before the truncation-corrected noise fit and the split-object count (main at
    # 89ff8c2) was off by 0.05-0.19 in F1 on these jobs: the precise annotator's F1 too low, the
    # others' too high. The precise annotator's own mean IoU is not pinned on the three-replica
    # preset: its 4 px^2 variance rests on a covariance with a standard error of the same size
    # beside the others' (docs/developers/annotator-model.md, "Known gaps")
    g = generate(preset_scenario(preset, "rectangle", frames=frames, seed=seed))
    result = score_replicas(g.replicas, g.labels, g.meta, SETTINGS)
    f1_err, iou_err = _errors(g, result, "f1"), _errors(g, result, "mean_iou")
    assert max(f1_err.values()) <= 0.03, f1_err
    pinned = {name: err for name, err in iou_err.items() if preset != "precise-moderate-sloppy" or name != "precise"}
    assert max(pinned.values()) <= 0.03, iou_err
    # and the order of the true F1
    truth = _truth(g, result)
    by_truth = sorted(truth, key=lambda n: truth[n].f1)
    estimate = {a.annotator: a.truth_estimate["f1"] for a in result.annotators}
    for low, high in itertools.pairwise(by_truth):
        if truth[high].f1 - truth[low].f1 >= 0.02:
            assert estimate[high] > estimate[low], (low, high, estimate)


def test_skeletons_whose_visible_keypoints_collapse_do_not_enter_the_noise_fit() -> None:
    # three equal annotators, relative jitter, seed 7: 8 skeleton clusters have one visible
    # keypoint or two on one line, so their extent (and size) collapsed to 1 px. Read against that
    # size, their offsets put one annotator's noise at 3,689 (relative units) where the others'
    # are ~0.004, and its F1 was estimated 0.001 for a true 0.92 (the p90 hid it)
    g = generate(preset_scenario("three-equal", "skeleton", frames=40, seed=7, sizes="uniform", noise="relative"))
    result = score_replicas(g.replicas, g.labels, g.meta, SETTINGS)
    f1_err, iou_err = _errors(g, result, "f1"), _errors(g, result, "mean_iou")
    assert max(f1_err.values()) <= 0.03, f1_err
    assert max(iou_err.values()) <= 0.03, iou_err


@pytest.mark.parametrize("seed", [1, 2])
def test_equal_annotators_estimates_and_merge(seed: int) -> None:
    g = generate(preset_scenario("three-equal", "rectangle", frames=30, seed=seed))
    result = score_replicas(g.replicas, g.labels, g.meta, SETTINGS)
    iou_err = _errors(g, result, "mean_iou")
    assert max(iou_err.values()) <= 0.03, iou_err
    truth = _truth(g, result)
    merged = truth_scores(result.merged, g.truth, params=params_for(SETTINGS, g.meta))
    # three equally good annotators: the fusion beats each of them
    assert merged.mean_iou >= max(t.mean_iou for t in truth.values()) + 0.03
    assert merged.f1 >= max(t.f1 for t in truth.values())


def test_standard_errors_shrink_with_evidence() -> None:
    small = generate(Scenario(kind="rectangle", frames=5, seed=3))
    large = generate(Scenario(kind="rectangle", frames=60, seed=3))
    se_small = score_replicas(small.replicas, small.labels, small.meta).annotators[2].truth_estimate["se"]
    se_large = score_replicas(large.replicas, large.labels, large.meta).annotators[2].truth_estimate["se"]
    for metric in ("precision", "recall", "f1", "mean_iou"):
        assert 0 < se_large[metric] < se_small[metric], metric


# ---------------------------------------------------------------------------------------------
# ground truth


def test_gt_anchors_improve_the_estimates_and_count_gt_objects() -> None:
    # masks, one precise annotator in pixels: without GT this job's precise F1 is 0.14 low (the
    # mask noise template's known gap); the GT frames show and remove it
    g = generate(preset_scenario("precise-moderate-sloppy", "mask", frames=30, seed=2))
    gt, frames = gt_sample(g, 0.1, seed=2)
    plain = score_replicas(g.replicas, g.labels, g.meta, SETTINGS)
    anchored = score_replicas(g.replicas, g.labels, g.meta, SETTINGS, ground_truth=(gt, frames))
    for metric in ("f1", "recall"):
        assert sum(_errors(g, anchored, metric).values()) < sum(_errors(g, plain, metric).values()), metric
    assert max(_errors(g, anchored, "f1").values()) <= 0.06
    # every annotator was measured on every GT object
    assert {a.truth_estimate["gt_objects"] for a in anchored.annotators} == {len(gt.shapes)}
    assert {a.truth_estimate["gt_objects"] for a in plain.annotators} == {0}
    report = anchored.to_json()["ground_truth"]
    assert (report["frames"], report["objects"]) == (len(frames), len(gt.shapes))
    assert set(report["model_error"]) == set(g.replicas)
    assert set(report["model_error"]["sloppy"]) == {"precision", "recall", "f1", "mean_iou", "label_accuracy"}
    assert "ground_truth" not in plain.to_json()


def test_gt_without_frames_is_refused() -> None:
    g = generate(Scenario(kind="rectangle", frames=3, seed=0))
    with pytest.raises(ConfigError, match="ground truth: no frames"):
        score_replicas(g.replicas, g.labels, g.meta, SETTINGS, ground_truth=(g.truth, ()))


# ---------------------------------------------------------------------------------------------
# priors


def test_priors_shift_a_small_jobs_fit() -> None:
    small = generate(Scenario(kind="rectangle", frames=3, seed=9))
    alone = score_replicas(small.replicas, small.labels, small.meta)
    big = generate(Scenario(kind="rectangle", frames=60, seed=10))
    earlier = score_replicas(big.replicas, big.labels, big.meta)
    # what an earlier job says, with a sloppy annotator far worse than this small job suggests:
    # its noise enters the fit (the F1 follows from it), its label accuracy the estimate
    prior = {a.annotator: json.loads(json.dumps(a.model)) for a in earlier.annotators}
    noise = prior["sloppy"]["noise"]["rectangle"]
    noise["alpha"], noise["beta"] = 10 * noise["alpha"], 10 * noise["beta"]
    # as stored before the corner cells were carried: the parameters are the prior (the cells'
    # path: tests/consensus/test_clique_cells.py)
    del noise["corner_cells"]
    prior["sloppy"]["truth_estimate"]["label_accuracy"] = 0.5
    pooled = score_replicas(small.replicas, small.labels, small.meta, priors=prior)
    by = {a.annotator: a.truth_estimate for a in pooled.annotators}
    before = {a.annotator: a.truth_estimate for a in alone.annotators}
    assert by["sloppy"]["f1"] < before["sloppy"]["f1"] - 0.05
    assert by["sloppy"]["mean_iou"] < before["sloppy"]["mean_iou"] - 0.05
    assert by["sloppy"]["label_accuracy"] < before["sloppy"]["label_accuracy"] - 0.05
    assert by["sloppy"]["se"]["label_accuracy"] < before["sloppy"]["se"]["label_accuracy"]
    # a prior for someone who did not work on this job changes nothing
    other = score_replicas(small.replicas, small.labels, small.meta, priors={"nobody": prior["sloppy"]})
    assert [a.truth_estimate for a in other.annotators] == [a.truth_estimate for a in alone.annotators]


def test_a_chained_prior_makes_the_next_jobs_estimates_no_worse() -> None:
    """As the sidecar pools a person's jobs: job 2 scored with the models job 1 stored. A prior
    that replaced the job's corner evidence split the pairs by one job's fit (the precise
    annotator's box F1 read 0.2-0.3 low); pooled after the job's own fit it is no worse."""
    errors: dict[tuple[bool, str], list[float]] = {}
    for seed in (0, 2, 4):
        first = generate(preset_scenario("precise-moderate-sloppy", "rectangle", 60, seed))
        earlier = score_replicas(first.replicas, first.labels, first.meta, SETTINGS)
        priors = {a.annotator: a.model for a in earlier.annotators}
        g = generate(preset_scenario("precise-moderate-sloppy", "rectangle", 60, seed + 1))
        for with_prior in (False, True):
            result = score_replicas(g.replicas, g.labels, g.meta, SETTINGS, priors=priors if with_prior else None)
            for metric in ("f1", "mean_iou"):
                errors.setdefault((with_prior, metric), []).extend(_errors(g, result, metric).values())
    for metric in ("f1", "mean_iou"):
        alone, chained = np.array(errors[False, metric]), np.array(errors[True, metric])
        assert chained.mean() <= alone.mean() + 0.003, (metric, alone, chained)
        assert chained.max() <= alone.max() + 0.01, (metric, alone, chained)


def test_a_prior_of_another_layout_is_refused() -> None:
    g = generate(Scenario(kind="rectangle", frames=3, seed=0))
    with pytest.raises(ConfigError, match="annotator 'precise': not a model dict"):
        score_replicas(g.replicas, g.labels, g.meta, priors={"precise": {"f1": 0.9}})


# ---------------------------------------------------------------------------------------------
# the noise fit


def test_noise_fit_recovers_absolute_and_relative_jitter() -> None:
    rng = np.random.default_rng(0)
    jitter_px, jitter_rel = np.array([1.0, 4.0, 10.0]), np.array([0.01, 0.03, 0.02])
    n = 20_000
    size = np.exp(rng.uniform(np.log(20), np.log(200), n))
    truth = np.stack([np.zeros(n), np.zeros(n), size, size], axis=1)
    sd = np.sqrt(jitter_px[None, :] ** 2 + (jitter_rel[None, :] * size[:, None]) ** 2)  # (n, R)
    drawn = truth[:, None, :] + rng.normal(0, 1, (n, 3, 4)) * sd[:, :, None]
    ev = PairEvidence(3)
    sim = np.stack([box_iou_pairs(drawn[:, r], drawn[:, s]) for r, s in ((0, 1), (0, 2), (1, 2))], axis=1)
    ev.add(np.where(sim >= 0.5, sim, np.nan), size)
    fit = fit_noise(ev, 0.5, template())
    # the fit's units: squared spread = alpha / s^2 + beta, i.e. alpha ~ px^2, beta ~ relative^2
    spread_fit = np.sqrt(fit.mean_square(np.array([30.0, 150.0])))
    spread_true = np.sqrt(jitter_px[None, :] ** 2 / np.array([[30.0], [150.0]]) ** 2 + jitter_rel[None, :] ** 2)
    # the precise annotator on small objects is the hardest: a small difference of larger pairs
    np.testing.assert_allclose(spread_fit, spread_true, rtol=0.3)
    assert np.argsort(spread_fit[0]).tolist() == [0, 1, 2]


def test_a_noise_prior_pools_the_jobs_own_fit_by_matched_pairs() -> None:
    rng = np.random.default_rng(1)
    n = 3000
    size = np.exp(rng.uniform(np.log(20), np.log(200), n))
    truth = np.stack([np.zeros(n), np.zeros(n), size, size], axis=1)
    drawn = truth[:, None, :] + rng.normal(0, 1, (n, 3, 4)) * np.array([1.0, 4.0, 10.0])[None, :, None]
    ev = PairEvidence(3)
    sim = np.stack([box_iou_pairs(drawn[:, r], drawn[:, s]) for r, s in ((0, 1), (0, 2), (1, 2))], axis=1)
    ev.add(np.where(sim >= 0.5, sim, np.nan), size)
    alone = fit_noise(ev, 0.5, template())
    pooled = fit_noise(ev, 0.5, template(), {0: (50.0, 0.01, 200.0), 2: (7.0, 0.0, 0.0)})
    own = alone.pairs[0]
    assert pooled.alpha[0] == pytest.approx((alone.alpha[0] * own + 50.0 * 200) / (own + 200))
    assert pooled.beta[0] == pytest.approx((alone.beta[0] * own + 0.01 * 200) / (own + 200))
    # the job's own fit is untouched by a prior (its other annotators, a prior of no weight)
    assert pooled.alpha[1:].tolist() == alone.alpha[1:].tolist()
    assert pooled.beta[1:].tolist() == alone.beta[1:].tolist()


def test_template_threshold_share_falls_with_spread() -> None:
    hit, mean_iou = template().at_threshold(np.array([0.0, 0.02**2, 0.1**2, 0.3**2]), 0.5)
    assert hit[0] == 1.0 and mean_iou[0] == pytest.approx(1.0)
    assert np.all(np.diff(hit) <= 0) and np.all(np.diff(mean_iou) < 0)
    assert np.all(mean_iou >= 0.5)


# ---------------------------------------------------------------------------------------------
# the merge


@pytest.mark.parametrize(("kind", "seed"), [("mask", 2), ("polygon", 3), ("rectangle", 3), ("rectangle", 1)])
def test_merge_with_one_precise_annotator_stays_near_it(kind: Kind, seed: int) -> None:
    g = generate(Scenario(kind=kind, frames=30, seed=seed))
    result = score_replicas(g.replicas, g.labels, g.meta, SETTINGS)
    params = params_for(SETTINGS, g.meta)
    precise = truth_scores(g.replicas["precise"], g.truth, params=params)
    merged = truth_scores(result.merged, g.truth, params=params)
    assert merged.mean_iou >= precise.mean_iou - 0.01
    assert merged.f1 >= precise.f1


# ---------------------------------------------------------------------------------------------
# the report


def test_rename_and_truth_estimate_reach_every_output(tmp_path: Path) -> None:
    g = generate(Scenario(kind="rectangle", frames=4, seed=0))
    gt, frames = gt_sample(g, 0.5, seed=0)
    result = score_replicas(g.replicas, g.labels, g.meta, SETTINGS, ground_truth=(gt, frames))
    write_outputs(result, report_out=tmp_path / "report.json", csv_dir=tmp_path / "tables")
    report = json.loads((tmp_path / "report.json").read_text())
    renamed = {"precision", "recall", "f1", "mean_iou", "consensus_iou", "label_accuracy"}
    for row in report["annotators"]:
        assert not renamed & set(row)
        assert {f"vs_consensus_{k}" for k in ("precision", "recall", "f1", "mean_iou", "label_accuracy")} <= set(row)
        assert "vs_consensus_iou" in row
        est = row["truth_estimate"]
        assert set(est) == {"precision", "recall", "f1", "mean_iou", "label_accuracy", "se", "gt_objects"}
        assert all(0.0 <= est[k] <= 1.0 for k in ("precision", "recall", "f1", "mean_iou"))
        assert row["model"]["version"] == 1 and row["model"]["annotator"] == row["annotator"]
    assert report["ground_truth"]["frames"] == len(frames)
    with (tmp_path / "tables" / "annotators.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert not renamed & set(rows[0])
    assert {"vs_consensus_f1", "truth_f1", "truth_f1_se", "gt_objects", "model"} <= set(rows[0])
    for row, a in zip(rows, result.annotators, strict=True):
        assert float(row["truth_f1"]) == pytest.approx(a.truth_estimate["f1"], abs=1e-6)
        assert json.loads(row["model"])["annotator"] == a.annotator


@pytest.mark.parametrize(
    ("kind", "seed", "margin"),
    [
        # the split pairs (engine: split_pairs) already give the job-wide posterior the small objects
        # here: merged F1 0.965 both ways (0.909 size-aware, 0.899 job-wide before them; the precise
        # annotator alone 0.954)
        ("rectangle", 5, 0.0),
        ("mask", 6, 0.005),
    ],
)
def test_size_aware_keep_raises_merged_f1_with_one_precise_annotator(
    kind: Kind, seed: int, margin: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the precise annotator's lone small objects are real: the size-aware keep decision keeps them,
    # the job-wide existence posterior (what keep falls back to) drops them
    from cvat_ext.consensus.annotator_model import AnnotatorModel

    g = generate(preset_scenario("precise-moderate-sloppy", kind, frames=24, seed=seed))
    params = params_for(SETTINGS, g.meta)
    sized = truth_scores(score_replicas(g.replicas, g.labels, g.meta, SETTINGS).merged, g.truth, params=params)
    monkeypatch.setattr(AnnotatorModel, "keep_probability", lambda *_a, **_k: None)
    job_wide = truth_scores(score_replicas(g.replicas, g.labels, g.meta, SETTINGS).merged, g.truth, params=params)
    assert sized.f1 >= job_wide.f1 + margin, (sized.f1, job_wide.f1)
    assert sized.precision >= job_wide.precision - 0.02  # kept more, not at the cost of inventions


@pytest.mark.parametrize("seed", [2, 6])
def test_keep_existence_keeps_a_precise_annotators_lone_skeletons(seed: int) -> None:
    # precise/moderate/sloppy skeletons: the precise annotator invents ~1 % of its drawings, so its
    # lone clusters (the others missed the object, or drew it apart) are mostly real. The
    # capture-recapture model per size group (independent annotators) read them 0.27-0.46 real, and
    # the merge lost 30 / 37 of the objects the precise annotator found (2.5 / 3.2 %; merged F1
    # -0.006 / -0.013 under it); the size-aware existence with spurious shares per size bin loses
    # 11 / 15 here
    g = generate(preset_scenario("precise-moderate-sloppy", "skeleton", frames=40, seed=seed))
    params = params_for(SETTINGS, g.meta)
    precise = truth_scores(g.replicas["precise"], g.truth, params=params)
    merged = truth_scores(score_replicas(g.replicas, g.labels, g.meta, SETTINGS).merged, g.truth, params=params)
    lost = np.isfinite(precise.truth_iou) & ~np.isfinite(merged.truth_iou)
    assert lost.sum() <= 0.015 * precise.matched, (int(lost.sum()), precise.matched)
    assert merged.precision >= precise.precision - 0.005  # not kept at the cost of inventions


# ---------------------------------------------------------------------------------------------
# the keep threshold: the merge's expected F1 at its most


@pytest.mark.parametrize(
    ("p_tp", "n_true", "want"),
    [
        ([], 10.0, 0.5),  # nothing to keep
        ([0.9, 0.8], 0.0, 0.5),  # no true object: F1 not defined
        ([1.0] * 9, 9.0, 0.5),  # a perfect merge: the cap
        ([1.0] * 8 + [0.45], 10.0, 2 * 8.45 / 19 / 2),  # 0.45 raises F1 (8/9 -> 0.889): kept
        ([1.0] * 8 + [0.40], 10.0, 8 / 18),  # 0.40 does not (F1 0.889 > 2 * 8.40 / 19): dropped
    ],
)
def test_f1_keep_threshold_table(p_tp: list[float], n_true: float, want: float) -> None:
    from cvat_ext.consensus.annotator_model import f1_keep_threshold

    assert f1_keep_threshold(np.asarray(p_tp), n_true) == pytest.approx(want)


@pytest.mark.parametrize("seed", range(6))
def test_f1_keep_threshold_keeps_the_set_of_the_largest_expected_f1(seed: int) -> None:
    from cvat_ext.consensus.annotator_model import f1_keep_threshold

    rng = np.random.default_rng(seed)
    p = rng.beta(2.0, 1.0, rng.integers(1, 40))
    n_true = float(rng.uniform(0.5, 1.5) * p.size)
    thr = f1_keep_threshold(p, n_true)
    expected_f1 = lambda kept: 2 * p[kept].sum() / (kept.sum() + n_true)  # noqa: E731
    # naive: every threshold at a probability (and keep-all / keep-none) against the decision
    best = max(expected_f1(p >= t) for t in [*p.tolist(), 2.0])
    assert expected_f1(p >= thr) == pytest.approx(best)
    assert thr <= 0.5


@pytest.mark.parametrize(("kind", "seed"), [("mask", 6), ("polygon", 2)])
def test_f1_keep_threshold_raises_merged_f1_with_one_precise_annotator(
    kind: Kind, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the precise annotator's small objects are kept at a hit probability under 0.5 when that
    # raises the merge's expected F1 (the Bayes decision at 0.5 dropped them: coin flips worth
    # more than the F1 the merge reaches)
    from cvat_ext.consensus import engine

    g = generate(preset_scenario("precise-moderate-sloppy", kind, frames=30, seed=seed))
    params = params_for(SETTINGS, g.meta)
    f1_thr = truth_scores(score_replicas(g.replicas, g.labels, g.meta, SETTINGS).merged, g.truth, params=params)
    monkeypatch.setattr(engine, "_keep_thresholds", lambda *_a: {})  # 0.5 for every family
    at_half = truth_scores(score_replicas(g.replicas, g.labels, g.meta, SETTINGS).merged, g.truth, params=params)
    assert f1_thr.f1 >= at_half.f1 + 0.005, (f1_thr.f1, at_half.f1)
    assert f1_thr.recall > at_half.recall

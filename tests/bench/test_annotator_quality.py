"""bench/annotator_quality: where its estimates come from, how it judges a ranking, and a real job."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import annotator_quality as aq
from annotator_truth import TruthScores


def _stats(name: str, **fields: Any) -> SimpleNamespace:
    return SimpleNamespace(annotator=name, **fields)


def _result(*annotators: SimpleNamespace) -> Any:
    return SimpleNamespace(annotators=list(annotators))


def _baseline_fields(prefix: str, value: float) -> dict[str, float]:
    return {f"{prefix}{m}": value for m in ("precision", "recall", "f1", "mean_iou", "label_accuracy")}


def test_truth_estimate_is_read_as_a_mapping_or_an_object() -> None:
    estimate = {"precision": 0.9, "recall": 0.8, "f1": 0.85, "mean_iou": 0.7, "label_accuracy": 0.95, "gt_objects": 12}
    as_object = SimpleNamespace(**estimate)
    result = _result(_stats("ann", truth_estimate=estimate), _stats("bob", truth_estimate=as_object))
    source, est, gt = aq.read_estimates(result)
    assert source == "model"
    assert est["ann"] == est["bob"] == {k: v for k, v in estimate.items() if k != "gt_objects"}
    assert gt == {"ann": 12, "bob": 12}


@pytest.mark.parametrize("prefix", ["vs_consensus_", ""])
def test_without_truth_estimates_the_consensus_figures_are_the_baseline(prefix: str) -> None:
    source, est, gt = aq.read_estimates(_result(_stats("ann", truth_estimate=None, **_baseline_fields(prefix, 0.6))))
    assert source == "baseline" and est["ann"]["f1"] == 0.6 and gt == {}
    if prefix:  # after the rename: the new name wins over an old one of another meaning
        both = _stats("ann", **_baseline_fields(prefix, 0.6), f1=0.1, mean_iou=0.1)
        assert aq.read_estimates(_result(both))[1]["ann"]["f1"] == 0.6


def _scores(f1: float, mean_iou: float = 0.8) -> TruthScores:
    return TruthScores(f1, f1, f1, mean_iou, 1.0, 1, 1, 1, np.zeros(0))


def _job(true_f1: dict[str, float], est_f1: dict[str, float]) -> aq.Job:
    truth = {n: _scores(v) for n, v in true_f1.items()}
    est = {n: {"f1": v, "mean_iou": 0.8} for n, v in est_f1.items()}
    return aq.Job("p", "rectangle", 0, truth, _scores(1.0), "model", est, None)


@pytest.mark.parametrize(
    ("true_f1", "est_f1", "right"),
    [
        ({"a": 0.9, "b": 0.6, "c": 0.3}, {"a": 0.8, "b": 0.7, "c": 0.6}, True),  # far off, right order
        ({"a": 0.9, "b": 0.6, "c": 0.3}, {"a": 0.6, "b": 0.7, "c": 0.5}, False),
        ({"a": 0.71, "b": 0.70, "c": 0.3}, {"a": 0.6, "b": 0.7, "c": 0.5}, True),  # a, b: a tie
        ({"a": 0.73, "b": 0.70, "c": 0.3}, {"a": 0.6, "b": 0.7, "c": 0.5}, False),
    ],
)
def test_ranking_judges_only_pairs_apart_by_more_than_a_tie(
    true_f1: dict[str, float], est_f1: dict[str, float], right: bool
) -> None:
    assert aq.ranked_right(_job(true_f1, est_f1), gt=False) is right


def test_errors_pool_annotators_and_skip_what_matched_nothing() -> None:
    job = _job({"a": 0.9, "b": 0.5}, {"a": 0.8, "b": 0.8})
    job.truth["b"] = _scores(0.5, float("nan"))
    np.testing.assert_allclose(np.sort(aq.errors([job], "f1", gt=False)), [0.1, 0.3])
    np.testing.assert_allclose(aq.errors([job], "mean_iou", gt=False), [0.0])
    assert aq.errors([job], "f1", gt=True).size == 0  # no GT run


def test_one_real_job() -> None:
    job = aq.run_job("precise-moderate-sloppy", "rectangle", frames=8, seed=1, with_gt=aq.accepts_ground_truth())
    assert set(job.truth) == set(job.estimates) == {"precise", "moderate", "sloppy"}
    assert job.truth["precise"].f1 > job.truth["moderate"].f1 > job.truth["sloppy"].f1
    assert 0 < job.merged.f1 <= 1 and job.merged.truth == job.truth["precise"].truth
    assert job.source in ("model", "baseline")


def test_a_chain_scores_each_seed_with_the_models_the_previous_one_stored(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[object] = []
    score = aq.engine.score_replicas

    def spy(*args: Any, **kw: Any) -> Any:
        seen.append(kw.get("priors"))
        return score(*args, **kw)

    monkeypatch.setattr(aq.engine, "score_replicas", spy)
    jobs = aq.run_chain("precise-moderate-sloppy", "rectangle", frames=6, seeds=3, with_gt=False, chained=True)
    assert [j.chained_estimates is None for j in jobs] == [True, False, False]
    # seed 0: one run without priors; seeds 1, 2: without, then with the previous seed's stored models
    assert seen[0] is None and seen[1] is None and seen[3] is None
    assert seen[2] == jobs[0].models and seen[4] == jobs[1].models
    assert set(jobs[1].models) == {"precise", "moderate", "sloppy"}
    assert aq.errors(jobs, "f1", gt=False, chained=True).size == 6
    assert [j.chained_merged is None for j in jobs] == [True, False, False]
    results = aq.BenchResults(aq.__file__)
    aq.report_merge(jobs[1:], results, chained=True, mode="chained")
    rows = {f.name: f.value for f in results.figures}
    chained_f1 = np.mean([j.chained_merged.f1 - j.truth[aq.best(j, "f1")].f1 for j in jobs[1:]])  # type: ignore[union-attr]
    assert rows["chained, precise-moderate-sloppy, rectangle: merged F1 minus the best annotator's"] == pytest.approx(
        chained_f1, rel=1e-5  # results keep 6 significant digits
    )
    unchained = aq.run_chain("precise-moderate-sloppy", "rectangle", 6, 2, False)
    assert [j.chained_estimates for j in unchained] == [None, None]


def test_a_chain_of_one_seed_is_refused_with_one_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    # seed i is scored with seed i - 1's models: one seed has no chain, and printing no chained
    # rows without a word would read as "nothing to report"
    with pytest.raises(SystemExit) as exc:
        aq.main(["--chained", "--seeds", "1", "--kinds", "rectangle", "--no-throughput"])
    assert exc.value.code == 2
    assert "--chained needs at least 2 seeds" in capsys.readouterr().err


def test_no_seeds_is_refused_with_one_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        aq.main(["--seeds", "0", "--kinds", "rectangle", "--no-throughput"])
    assert exc.value.code == 2
    assert "--seeds must be at least 1, got 0" in capsys.readouterr().err

"""Annotator quality benchmark (issue 11): are the report's per-annotator figures what a
ground-truth evaluation says, and is the merge as precise as the best annotator?

For each preset of ``consensus_generator.PRESETS`` (precise-moderate-sloppy, three-equal,
five-two-sloppy) x shape kind (boxes, masks, polygons, skeletons) x seed, a job with a hidden
truth is generated and scored by the engine, without and with a 10 % ground-truth sample
(``ground_truth=(gt_annotations, gt_frames)``, when the engine accepts it). Measured:

1. per annotator, |estimate - truth| for F1 and mean IoU (OKS for skeletons): median and 90th
   percentile over seeds and annotators, per preset x kind and pooled. The truth is
   ``annotator_truth.truth_scores`` (optimal per-frame matching at the job's threshold, the
   engine's own similarity kernels); the estimate is ``annotators[i].truth_estimate`` of the
   engine's result or, while the engine has none, today's consensus-relative figures
   (``vs_consensus_f1`` / ``f1``, ``vs_consensus_mean_iou`` / ``mean_iou``), reported under
   "baseline: vs consensus" and written to ``bench/results/annotator_quality-baseline.json``;
2. ranking: the share of jobs whose annotators the estimate orders as their true F1 does (pairs
   whose true F1 differ by less than ``RANK_TIE`` are ties and not judged: equal annotators have
   no true order);
3. the merge against the truth: mean IoU minus the best annotator's (target >= -0.01 where one
   annotator is >= 3x more precise, >= +0.03 for three equal ones), F1 minus the best
   annotator's (>= 0), mean over seeds per preset x kind (the worst seed is printed). The mean
   IoU of the issue is over each side's own matches, which favours a merge that drops the small,
   hard objects; the paired gain (the same truth objects, found by both) is printed and
   recorded beside it, without a target;
4. ``--chained`` (the per-person pooling of the sidecar, ``cvat_ext/sidecar/pooling.py``): per
   preset x kind the seeds are scored in order, seed i also with ``priors`` = the model dicts seed
   i - 1 stored (``annotators[r].model`` of its chained run, by annotator name: a chain, each job
   scored with the previous one's posterior). Rows ``chained priors, as the sidecar pools, no GT``
   (the seeds that had a prior: 1..n-1) beside ``no GT, single job, the chained seeds`` (the same
   seeds without priors), same targets, and the merge of those runs (rows ``chained priors, as the
   sidecar pools, <preset>, <kind>: merged ...`` beside ``single job, the chained seeds, ...``): the
   sidecar merges a person's next job with the noise its model carries; one more engine run per job;
5. engine throughput, 3 annotators x 20 objects per frame, one core: this checkout against the
   engine before issue 11 (``--baseline-ref``, exported with ``git archive`` and measured in
   alternating subprocesses, best of each), target >= 90 % of it.

Usage: ``python3 bench/annotator_quality.py [--seeds 8] [--frames-scale 1.0] [--no-throughput]
[--baseline-ref REF] [--sizes uniform] [--noise relative] [--chained] [--kinds K ...] [--presets P ...]``.
About 3-5 minutes on one core. ``--kinds``/``--presets`` subsets are development runs (nothing
written). ``--sizes``/``--noise`` run the same measurements on a second generator (uniform object sizes, jitter
proportional to the object size), so no estimator is tuned to one; their results files carry the
variant in their name. Figures only; nothing is asserted.
"""

from __future__ import annotations

# ruff: noqa: E402  (thread limits must be set before numpy loads; the repo root joins sys.path first)
import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core

import argparse
import inspect
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
sys.path.insert(0, str(ROOT / "bench"))

from annotator_truth import TruthScores, params_for, truth_scores
from consensus_generator import PRESETS, Kind, NoiseLaw, SizeDist, generate, gt_sample, preset_scenario
from results_io import BenchResults, machine_facts

from cvat_ext.consensus import engine
from cvat_ext.consensus.report import ConsensusResult
from cvat_ext.consensus.settings import ConsensusSettings

KINDS: tuple[Kind, ...] = ("rectangle", "mask", "polygon", "skeleton")
#: frames per job (objects: 5-60 per frame, about 32 on average)
FRAMES: dict[Kind, int] = {"rectangle": 60, "mask": 30, "polygon": 30, "skeleton": 40}
#: metrics of a ground-truth evaluation, as named in ``truth_estimate``
METRICS = ("precision", "recall", "f1", "mean_iou", "label_accuracy")
#: the targets' metrics
TARGET_METRICS = ("f1", "mean_iou")
#: today's consensus-relative field per metric: (name after issue 11's rename, name before)
BASELINE_FIELDS = {
    "precision": ("vs_consensus_precision", "precision"),
    "recall": ("vs_consensus_recall", "recall"),
    "f1": ("vs_consensus_f1", "f1"),
    "mean_iou": ("vs_consensus_mean_iou", "mean_iou"),
    "label_accuracy": ("vs_consensus_label_accuracy", "label_accuracy"),
}
#: true F1 closer than this is a tie the ranking does not judge
RANK_TIE = 0.02
GT_SHARE = 0.1
#: presets with one annotator >= 3x more precise than the others (the rest: equal annotators)
ONE_PRECISE = frozenset({"precise-moderate-sloppy", "five-two-sloppy"})
#: the engine before issue 11 (main at the start of the work): the throughput baseline
BASELINE_REF = "88bb4a46c71e91b74bc4f5cfc1af7b91ac94d55c"
#: issue 11's throughput figures of today's engine (frames/s, one core, 3 x 20 objects per frame)
ISSUE_THROUGHPUT = {"rectangle": 10_300.0, "mask": 1_300.0}
THROUGHPUT_FRAMES = {"rectangle": 2000, "mask": 300}

Estimates = dict[str, dict[str, float]]


@dataclass
class Job:
    """One generated job: the truth per annotator and merged, the estimates without and with GT."""

    preset: str
    kind: Kind
    seed: int
    truth: dict[str, TruthScores]
    merged: TruthScores
    source: str  # "model" or "baseline"
    estimates: Estimates
    gt_estimates: Estimates | None
    gt_objects: dict[str, int] = field(default_factory=dict)
    #: the GT run's report ``ground_truth.model_error``: annotator -> metric -> the model's own
    #: error on the GT frames, as a manager reads it
    model_error: dict[str, dict[str, float]] = field(default_factory=dict)
    #: ``--chained``: the estimates without GT scored with the previous seed's stored models as
    #: ``priors`` (None for the first seed of a chain, or without ``--chained``)
    chained_estimates: Estimates | None = None
    #: annotator -> the model dict the sidecar would store for this job's person (``--chained``:
    #: of the chained run where there was one, else of the run without priors)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: ``--chained``: the merge of the run with priors against the truth (None without a prior)
    chained_merged: TruthScores | None = None


def _field(obj: Any, key: str) -> Any:
    return obj[key] if isinstance(obj, Mapping) else getattr(obj, key)


def read_estimates(result: ConsensusResult) -> tuple[str, Estimates, dict[str, int]]:
    """("model" | "baseline", annotator -> metric -> estimate, annotator -> GT objects used).

    "model": ``annotators[i].truth_estimate`` (issue 11's contract; a mapping or an object);
    "baseline": today's consensus-relative figures, under either of their names."""
    out: Estimates = {}
    gt_objects: dict[str, int] = {}
    sources = set()
    for a in result.annotators:
        te = getattr(a, "truth_estimate", None)
        if te:  # issue 11's engine leaves it empty where it fits no model
            sources.add("model")
            out[a.annotator] = {m: float(_field(te, m)) for m in METRICS}
            se = _field(te, "se") if _has(te, "se") else {}
            out[a.annotator].update({f"{m}_se": float(se[m]) for m in TARGET_METRICS if se.get(m) is not None})
            gt_objects[a.annotator] = int(_field(te, "gt_objects")) if _has(te, "gt_objects") else 0
        else:
            sources.add("baseline")
            out[a.annotator] = {m: float(_first(a, names)) for m, names in BASELINE_FIELDS.items()}
    if len(sources) != 1:
        raise RuntimeError(f"annotators mix truth estimates and consensus figures: {sorted(sources)}")
    return sources.pop(), out, gt_objects


def _has(obj: Any, key: str) -> bool:
    return key in obj if isinstance(obj, Mapping) else hasattr(obj, key)


def _first(obj: Any, names: Iterable[str]) -> Any:
    for name in names:
        if hasattr(obj, name):
            return getattr(obj, name)
    raise AttributeError(f"annotator stats have none of {list(names)}")


def accepts_ground_truth() -> bool:
    """True when ``engine.score_replicas`` takes ``ground_truth=`` (issue 11's engine API)."""
    return "ground_truth" in inspect.signature(engine.score_replicas).parameters


def run_job(
    preset: str,
    kind: Kind,
    frames: int,
    seed: int,
    with_gt: bool,
    sizes: SizeDist = "log-uniform",
    noise: NoiseLaw = "absolute",
    priors: Mapping[str, Mapping[str, Any]] | None = None,
) -> Job:
    """Generate one job, score it without (and, ``with_gt``, with) a GT sample, measure the truth.

    ``priors`` (``--chained``): also scored without GT with these model dicts as priors, as the
    sidecar scores a person's next job with the model its last job stored."""
    g = generate(preset_scenario(preset, kind, frames, seed, sizes=sizes, noise=noise))
    settings = ConsensusSettings()
    params = params_for(settings, g.meta)
    truth = {
        name: truth_scores(ann, g.truth, iou_thr=settings.iou_thr, params=params) for name, ann in g.replicas.items()
    }
    result = engine.score_replicas(g.replicas, g.labels, g.meta, settings)
    source, estimates, _ = read_estimates(result)
    merged = truth_scores(result.merged, g.truth, iou_thr=settings.iou_thr, params=params)
    gt_estimates, gt_objects, model_error = None, {}, {}
    if with_gt:
        gt = gt_sample(g, GT_SHARE, seed=seed)
        score: Any = engine.score_replicas  # the keyword exists only on issue 11's engine
        gt_result = score(g.replicas, g.labels, g.meta, settings, ground_truth=gt)
        _, gt_estimates, gt_objects = read_estimates(gt_result)
        reported = (getattr(gt_result, "ground_truth", None) or {}).get("model_error") or {}
        model_error = {n: {m: float(v) for m, v in errs.items() if m in METRICS} for n, errs in reported.items()}
    chained_estimates, chained_merged = None, None
    stored = result
    if priors is not None:
        stored = engine.score_replicas(g.replicas, g.labels, g.meta, settings, priors=priors)
        chained_estimates = read_estimates(stored)[1]
        chained_merged = truth_scores(stored.merged, g.truth, iou_thr=settings.iou_thr, params=params)
    models = {a.annotator: dict(a.model) for a in stored.annotators if getattr(a, "model", None)}
    return Job(preset, kind, seed, truth, merged, source, estimates, gt_estimates, gt_objects, model_error,
               chained_estimates, models, chained_merged)


def run_chain(
    preset: str,
    kind: Kind,
    frames: int,
    seeds: int,
    with_gt: bool,
    sizes: SizeDist = "log-uniform",
    noise: NoiseLaw = "absolute",
    chained: bool = False,
) -> list[Job]:
    """The seeds of one preset x kind in order; ``chained``: seed i also scored with the models
    seed i - 1 stored (its chained run's: the sidecar's per-person chain; the generator's annotator
    names are the same across seeds)."""
    jobs: list[Job] = []
    for seed in range(seeds):
        priors = jobs[-1].models if chained and jobs and jobs[-1].models else None
        jobs.append(run_job(preset, kind, frames, seed, with_gt, sizes, noise, priors))
    return jobs


# ---------------------------------------------------------------------------------------------
# aggregation


def chosen(job: Job, gt: bool, chained: bool = False) -> Estimates | None:
    """The estimates of one run of ``job``: with the GT sample, with the previous seed's models as
    priors (``chained``), or the single job's without either."""
    return job.chained_estimates if chained else job.gt_estimates if gt else job.estimates


def _estimated(jobs: Iterable[Job], metric: str, gt: bool, chained: bool) -> Iterator[tuple[float, float, float]]:
    """(truth, estimate, standard error or NaN) of every annotator of ``jobs`` in the run
    :func:`chosen` picks, where both the truth and the estimate are finite."""
    for job in jobs:
        est = chosen(job, gt, chained)
        if est is None:
            continue
        for name, scores in job.truth.items():
            true, guess = scores.get(metric), est[name][metric]
            if np.isfinite(true) and np.isfinite(guess):
                yield true, guess, est[name].get(f"{metric}_se", np.nan)


def errors(jobs: Iterable[Job], metric: str, gt: bool, chained: bool = False) -> np.ndarray:
    """|estimate - truth| of every annotator of ``jobs``; a NaN on either side (nothing matched,
    nothing estimated) is left out and counted by :func:`missing_estimates`."""
    return np.asarray([abs(guess - true) for true, guess, _ in _estimated(jobs, metric, gt, chained)], dtype=np.float64)


#: a two-sided 95 % normal interval: estimate +- this many standard errors
INTERVAL_Z = 1.96


def interval_coverage(jobs: Iterable[Job], metric: str, gt: bool, chained: bool = False) -> float:
    """The share of annotators whose truth lies within the reported estimate +- 1.96 standard
    errors (a calibrated 95 % interval holds ~0.95); NaN where no standard error is reported."""
    held = [abs(guess - true) <= INTERVAL_Z * se
            for true, guess, se in _estimated(jobs, metric, gt, chained) if np.isfinite(se)]
    return float(np.mean(held)) if held else float("nan")


def missing_estimates(jobs: Iterable[Job], metric: str, gt: bool, chained: bool = False) -> int:
    """Annotators whose truth is a number but whose estimate is not (NaN)."""
    count = 0
    for job in jobs:
        est = chosen(job, gt, chained)
        if est is not None:
            count += sum(np.isfinite(s.get(metric)) and not np.isfinite(est[n][metric]) for n, s in job.truth.items())
    return count


def calibration_gaps(jobs: Iterable[Job], metric: str) -> np.ndarray:
    """|reported GT-frame model error - the no-GT estimate's real error| per annotator: how well
    the report's calibration check tells a manager how far the estimate without GT is off."""
    out = []
    for job in jobs:
        for name, scores in job.truth.items():
            reported = job.model_error.get(name, {}).get(metric, float("nan"))
            real = job.estimates[name][metric] - scores.get(metric)
            if np.isfinite(reported) and np.isfinite(real):
                out.append(abs(reported - real))
    return np.asarray(out, dtype=np.float64)


def ranked_right(job: Job, gt: bool, chained: bool = False) -> bool:
    """True when every annotator pair whose true F1 differ by >= RANK_TIE is ordered so by the estimate."""
    est = chosen(job, gt, chained)
    assert est is not None
    names = list(job.truth)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            gap = job.truth[a].f1 - job.truth[b].f1
            if abs(gap) >= RANK_TIE and np.sign(est[a]["f1"] - est[b]["f1"]) != np.sign(gap):
                return False
    return True


def best(job: Job, metric: str) -> str:
    """The annotator with the highest true ``metric``."""
    return max((n for n, s in job.truth.items() if np.isfinite(s.get(metric))), key=lambda n: job.truth[n].get(metric))


def merged_of(job: Job, chained: bool = False) -> TruthScores:
    """The job's merge against the truth: of its run with priors (``chained``) or without."""
    out = job.chained_merged if chained else job.merged
    if out is None:
        raise ValueError(f"{job.preset}, {job.kind}, seed {job.seed}: no chained run")
    return out


def paired_iou_gain(job: Job, chained: bool = False) -> float:
    """Mean of merged minus best annotator's IoU over the truth objects both matched."""
    merged, single = merged_of(job, chained).truth_iou, job.truth[best(job, "mean_iou")].truth_iou
    both = np.isfinite(merged) & np.isfinite(single)
    return float(np.mean(merged[both] - single[both])) if both.any() else float("nan")


# ---------------------------------------------------------------------------------------------
# throughput: this checkout against the engine before issue 11, in alternating subprocesses

_THROUGHPUT_CODE = """
import json, sys
sys.path[:0] = [{root!r}, {root!r} + "/bench"]
import consensus_bench as cb
import cvat_ext
assert cvat_ext.__file__.startswith({root!r}), cvat_ext.__file__
cb._one_core()
print(json.dumps({{k: cb.throughput(k, n, 20)[0] for k, n in {frames!r}.items()}}))
"""


def _throughput(root: Path, frames: Mapping[str, int]) -> dict[str, float]:
    code = _THROUGHPUT_CODE.format(root=str(root), frames=dict(frames))
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=root)
    return {k: float(v) for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}


def throughput_vs_baseline(
    ref: str, frames: Mapping[str, int], rounds: int = 3
) -> dict[str, tuple[float, float]] | None:
    """kind -> (this checkout's core frames/s, ``ref``'s), best of ``rounds`` alternating runs each;
    None when ``ref`` cannot be exported."""
    with tempfile.TemporaryDirectory(prefix="annotator-quality-") as tmp:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "cvat_ext", "bench"], capture_output=True)
        if archive.returncode != 0:
            print(f"baseline {ref}: git archive failed: {archive.stderr.decode().strip()}")
            return None
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        ours: dict[str, float] = {}
        theirs: dict[str, float] = {}
        for _ in range(rounds):
            for into, root in ((theirs, Path(tmp)), (ours, ROOT)):
                for kind, fps in _throughput(root, frames).items():
                    into[kind] = max(into.get(kind, 0.0), fps)
    return {kind: (ours[kind], theirs[kind]) for kind in frames}


# ---------------------------------------------------------------------------------------------
# report


def _presets(jobs: list[Job]) -> list[str]:
    """The presets that were run (``--presets``), in :data:`PRESETS` order."""
    return [p for p in PRESETS if any(j.preset == p for j in jobs)]


def _kinds(jobs: list[Job]) -> list[Kind]:
    """The kinds that were run (``--kinds``), in :data:`KINDS` order."""
    return [k for k in KINDS if any(j.kind == k for j in jobs)]


def _q(values: np.ndarray) -> tuple[float, float]:
    return (float(np.median(values)), float(np.quantile(values, 0.9))) if values.size else (float("nan"),) * 2


def report_estimates(
    jobs: list[Job], gt: bool, tag: str, results: BenchResults, chained: bool = False, mode: str | None = None
) -> None:
    """|estimate - truth| median / p90 per preset x kind and pooled, and the ranking, of the run
    :func:`chosen` picks; ``mode`` names the rows (default: "no GT" or "10 % GT sample")."""
    mode = mode or ("10 % GT sample" if gt else "no GT")
    med_target, p90_target = (0.02, 0.06) if gt else (0.03, 0.06)
    print(f"\n[{tag}] {mode}: |estimate - truth| per annotator, median / p90 / worst over seeds and annotators")
    heads = ("F1 med", "F1 p90", "F1 max", "IoU med", "IoU p90", "IoU max", "F1 in95", "IoU in95")
    print(f"{'preset':26s} {'kind':10s} " + " ".join(f"{h:>7s}" for h in heads))
    cells = [(p, k) for p in PRESETS for k in KINDS] + [("pooled", "all")]
    for preset, kind in cells:
        sel = [j for j in jobs if preset in (j.preset, "pooled") and kind in (j.kind, "all")]
        if not sel:
            continue
        row = []
        for metric in TARGET_METRICS:
            err = errors(sel, metric, gt, chained)
            med, p90 = _q(err)
            # the worst annotator of any seed: a p90 over 24 errors does not see one estimate far off
            worst = float(err.max()) if err.size else float("nan")
            row += [med, p90, worst]
            if not np.isfinite(med):
                continue
            name = f"[{tag}] {mode}, {preset}, {kind}: |{metric} estimate - truth|"
            results.add(f"{name} median", med, metric, f"<= {med_target}", med <= med_target)
            results.add(f"{name} p90", p90, metric, f"<= {p90_target}", p90 <= p90_target)
            results.add(f"{name} worst", worst, metric)
        for metric in TARGET_METRICS:
            # the reported standard errors: does estimate +- 1.96 se hold the truth ~95 % of the time
            held = interval_coverage(sel, metric, gt, chained)
            row.append(held)
            if np.isfinite(held):
                results.add(f"[{tag}] {mode}, {preset}, {kind}: truth within the {metric} estimate +- 1.96 se",
                            held, "share of annotators")
        print(f"{preset:26s} {kind:10s} " + " ".join(f"{v:7.3f}" for v in row))
    for metric in TARGET_METRICS:
        missing = missing_estimates(jobs, metric, gt, chained)
        if missing:
            print(f"[{tag}] {mode}: {missing} annotator {metric} estimates are NaN (left out above)")
            results.add(f"[{tag}] {mode}: annotators without a {metric} estimate", missing, "annotators", "0", False)
    print(f"[{tag}] {mode}: other metrics, pooled median |estimate - truth|: " + ", ".join(
        f"{m} {_q(errors(jobs, m, gt, chained))[0]:.3f}" for m in METRICS if m not in TARGET_METRICS
    ))
    wrong = Counter(j.kind for j in jobs if not ranked_right(j, gt, chained))
    if wrong:
        print(f"[{tag}] {mode}: jobs ranked wrong by kind: " + ", ".join(f"{k} {n}" for k, n in wrong.items()))
    for preset in [*_presets(jobs), "pooled"]:
        sel = [j for j in jobs if preset in (j.preset, "pooled")]
        share = float(np.mean([ranked_right(j, gt, chained) for j in sel]))
        results.add(f"[{tag}] {mode}, {preset}: annotators ranked as their true F1", share, "share of jobs",
                    ">= 0.95", share >= 0.95)
        print(f"[{tag}] {mode}, {preset}: ranked as the true F1 in {share:.0%} of {len(sel)} jobs")


def report_chained(jobs: list[Job], tag: str, results: BenchResults) -> None:
    """The chained-priors rows (the seeds that had a prior) beside the single-job rows of the same
    seeds: what the sidecar's per-person pooling does to the estimates."""
    chain = [j for j in jobs if j.chained_estimates is not None]
    if not chain:
        return
    report_estimates(chain, False, tag, results, mode="no GT, single job, the chained seeds")
    report_estimates(chain, False, tag, results, chained=True, mode="chained priors, as the sidecar pools, no GT")
    report_merge(chain, results, mode="single job, the chained seeds")
    report_merge(chain, results, chained=True, mode="chained priors, as the sidecar pools")


def report_annotators(jobs: list[Job], tag: str) -> None:
    """Mean truth and estimate per annotator (no GT): what the report says next to what is true."""
    print(f"\n[{tag}] per annotator, mean over seeds: true F1 / estimated F1, true mean IoU / estimated")
    for preset in _presets(jobs):
        for kind in _kinds(jobs):
            sel = [j for j in jobs if j.preset == preset and j.kind == kind]
            parts = []
            for name in sel[0].truth:
                figures = [
                    np.nanmean(values)
                    for metric in TARGET_METRICS
                    for values in ([j.truth[name].get(metric) for j in sel], [j.estimates[name][metric] for j in sel])
                ]
                parts.append("{} {:.2f}/{:.2f} {:.2f}/{:.2f}".format(name, *figures))
            print(f"{preset:26s} {kind:10s} " + "; ".join(parts))


def report_merge(jobs: list[Job], results: BenchResults, chained: bool = False, mode: str | None = None) -> None:
    """Merged vs the best annotator per preset x kind; ``chained``: the merges of the runs with
    the previous seed's models as priors (the sidecar's path), rows labelled ``mode``."""
    print("\nmerged vs the best annotator (truth), mean over seeds (worst seed); paired: on objects both found"
          + (f" [{mode}]" if mode else ""))
    heads = ("IoU gain", "(worst)", "paired", "F1 gain", "(worst)")
    print(f"{'preset':26s} {'kind':10s} " + " ".join(f"{h:>8s}" for h in heads))
    for preset in _presets(jobs):
        iou_target = -0.01 if preset in ONE_PRECISE else 0.03
        for kind in _kinds(jobs):
            sel = [j for j in jobs if j.preset == preset and j.kind == kind]
            iou_gain = np.array([merged_of(j, chained).mean_iou - j.truth[best(j, "mean_iou")].mean_iou for j in sel])
            paired = float(np.nanmean([paired_iou_gain(j, chained) for j in sel]))
            f1_gain = np.array([merged_of(j, chained).f1 - j.truth[best(j, "f1")].f1 for j in sel])
            iou_m, f1_m = float(np.nanmean(iou_gain)), float(np.mean(f1_gain))
            print(
                f"{preset:26s} {kind:10s} {iou_m:+8.3f} {np.nanmin(iou_gain):+8.3f} {paired:+8.3f} "
                f"{f1_m:+8.3f} {f1_gain.min():+8.3f}"
            )
            label = (f"{mode}, " if mode else "") + f"{preset}, {kind}: merged"
            results.add(f"{label} mean IoU minus the best annotator's", iou_m, "IoU", f">= {iou_target:+.2f}",
                        iou_m >= iou_target)
            results.add(f"{label} mean IoU minus the best annotator's, paired objects", paired, "IoU")
            results.add(f"{label} F1 minus the best annotator's", f1_m, "F1", ">= 0", f1_m >= 0)
            results.add(f"{label} F1 minus the best annotator's, worst seed", float(f1_gain.min()), "F1")


def report_throughput(ref: str, scale: float, results: BenchResults) -> None:
    frames = {k: max(20, int(n * scale)) for k, n in THROUGHPUT_FRAMES.items()}
    print(f"\nengine throughput, 3 annotators x 20 objects/frame, one core: this checkout vs {ref[:12]}")
    measured = throughput_vs_baseline(ref, frames)
    if measured is None:
        results.add("engine throughput baseline available", 0, "bool", "1", False)
        return
    for kind, (ours, theirs) in measured.items():
        ratio = ours / theirs
        print(f"{kind:10s} {ours:9.0f} frames/s vs {theirs:9.0f} before issue 11: {ratio:.0%} "
              f"(issue's figure: {ISSUE_THROUGHPUT[kind]:.0f})")
        results.add(f"{kind}s, {frames[kind]} frames: core frames/s, this checkout", ours, "frames/s")
        results.add(f"{kind}s, {frames[kind]} frames: core frames/s, engine before issue 11", theirs, "frames/s")
        results.add(f"{kind}s: throughput relative to the engine before issue 11", ratio, "ratio", ">= 0.90",
                    ratio >= 0.90)


def throughput_only(ref: str, scale: float) -> None:
    """The throughput rows alone, written over those of the last full run (its other figures and
    its note kept, the note saying which rows are newer)."""
    fresh = BenchResults(__file__)
    report_throughput(ref, scale, fresh)
    path = ROOT / "bench" / "results" / "annotator_quality.json"
    if not path.exists():
        print(f"\n{path} missing: run the full bench first; throughput rows not written")
        return
    last = json.loads(path.read_text())
    names = {f.name for f in fresh.figures}
    note = last.get("note", "").split("; throughput rows:")[0]
    results = BenchResults(__file__, note=f"{note}; throughput rows: python3 bench/annotator_quality.py "
                           f"--throughput-only at {_head_commit()}, other figures: {last['command']}",
                           machine=last.get("machine", machine_facts()))
    results.add_all([f for f in last["figures"] if f["name"] not in names])
    results.figures.extend(fresh.figures)
    results.write()


def _head_commit() -> str:
    """The checkout's commit (with ``+`` when the working tree has changes): the engine measured."""
    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "cvat_ext"], capture_output=True, text=True
    )
    return rev.stdout.strip() + ("+" if dirty.stdout.strip() else "") if rev.returncode == 0 else "unknown"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8, help="seeds per preset and kind (default 8)")
    parser.add_argument("--frames-scale", type=float, default=1.0, help="scale the frames per job (a smoke run: 0.2)")
    parser.add_argument("--no-throughput", action="store_true", help="skip the throughput comparison")
    parser.add_argument("--throughput-only", action="store_true",
                        help="only the throughput rows (a few minutes): they replace those of "
                             "bench/results/annotator_quality.json, every other figure is kept")
    parser.add_argument("--baseline-ref", default=BASELINE_REF, help="git ref of the throughput baseline")
    parser.add_argument("--sizes", choices=("log-uniform", "uniform"), default="log-uniform",
                        help="truth side distribution over 10-200 px (a cross-check variant: uniform)")
    parser.add_argument("--noise", choices=("absolute", "relative"), default="absolute",
                        help="annotator jitter law (a cross-check variant: relative to the object size)")
    parser.add_argument("--chained", action="store_true",
                        help="also score each seed with the previous seed's models as priors, as the sidecar "
                             "pools a person's jobs (one more engine run per job)")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS),
                        help="shape kinds to run (default all; a subset is a development run: nothing is written)")
    parser.add_argument("--presets", nargs="+", choices=list(PRESETS), default=list(PRESETS),
                        help="presets to run (default all; a subset is a development run: nothing is written)")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1, got {args.seeds}")
    if args.chained and args.seeds < 2:
        parser.error(f"--chained needs at least 2 seeds (seed i is scored with seed i - 1's models), "
                     f"got --seeds {args.seeds}")
    if args.throughput_only:
        throughput_only(args.baseline_ref, args.frames_scale)
        return
    partial = set(args.kinds) != set(KINDS) or set(args.presets) != set(PRESETS)
    with_gt = accepts_ground_truth()
    t0 = time.process_time()
    jobs = [
        job
        for preset in args.presets
        for kind in args.kinds
        for job in run_chain(preset, kind, max(5, int(FRAMES[kind] * args.frames_scale)), args.seeds, with_gt,
                             args.sizes, args.noise, args.chained)
    ]
    source = jobs[0].source
    tag = "model: truth_estimate" if source == "model" else "baseline: vs consensus"
    note = (
        f"{args.seeds} seeds x {len(args.presets)} presets x {len(args.kinds)} kinds, "
        f"frames per job {FRAMES} x {args.frames_scale}; one core, CPU time"
    )
    generator = [v for v, default in ((args.sizes, "log-uniform"), (args.noise, "absolute")) if v != default]
    if generator:
        note += f"; generator variant: {', '.join(f'{v} sizes' if v == 'uniform' else f'{v} noise' for v in generator)}"
    variant = "-".join(([] if source == "model" else ["baseline"]) + generator) or None
    results = BenchResults(__file__, variant=variant, note=note, machine=machine_facts(commit=_head_commit()))
    print(f"{len(jobs)} jobs scored in {time.process_time() - t0:.0f} s CPU; estimates: {tag}")
    report_annotators(jobs, tag)
    report_estimates(jobs, False, tag, results)
    if with_gt:
        report_estimates(jobs, True, tag, results)
        used = [sum(j.gt_objects.values()) for j in jobs]
        print(f"GT objects informing the estimates per job: median {np.median(used):.0f}")
        for metric in TARGET_METRICS:
            gaps = calibration_gaps(jobs, metric)
            if gaps.size:
                med, p90 = _q(gaps)
                print(f"report's GT-frame model error vs the no-GT {metric} estimate's real error: "
                      f"median gap {med:.3f}, p90 {p90:.3f} ({gaps.size} annotators)")
                results.add(f"[{tag}] GT calibration check, {metric}: |reported model error - real no-GT error| "
                            "median", med, metric)
            else:
                print(f"report's GT-frame model error for {metric}: not in the report")
    else:
        print("\n10 % GT sample: not available (engine.score_replicas takes no ground_truth=)")
        results.add("ground-truth path available", 0, "bool", "1", False)
    if args.chained:
        report_chained(jobs, tag, results)
    report_merge(jobs, results)
    if not args.no_throughput:
        report_throughput(args.baseline_ref, args.frames_scale, results)
    if partial:
        print("\n--kinds/--presets subset: a development run, bench/results not written")
    else:
        results.write()


if __name__ == "__main__":
    main()

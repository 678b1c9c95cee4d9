"""Consensus benchmark: throughput of matching + agreement + merge, and merged-vs-truth accuracy.

(a) frames/s for 3 annotators x 20 objects per frame, per shape kind, one core, measured two ways:
    ``core`` = the engine on columnar chunks (match, cluster, agreement, reliability, merge);
    ``end-to-end`` = from ``JobAnnotations`` objects (adds the object -> column conversion), without
    building the merged Python objects; plus the growth with objects per frame for boxes.
(b) accuracy against the hidden truth on the precise / moderate / sloppy scenario, for each single
    annotator, our merge, and CVAT's documented rule re-implemented (member nearest the mean box,
    majority label, every cluster kept, CVAT's default iou threshold 0.4); then our F1 margin over
    the best single annotator on three more seeds (a few thousand objects each: one seed's figure
    moves by a few 0.001).

Times are CPU seconds of this process (``time.process_time``) with BLAS limited to one thread, so
a shared, busy machine still gives one-core figures; ``--wall`` uses wall-clock time instead.

Usage: ``python3 bench/consensus_bench.py [--quick] [--wall]``. Figures only; nothing is asserted.
"""

from __future__ import annotations

# ruff: noqa: E402  (thread limits must be set before numpy loads; the repo root joins sys.path first)
import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core

import argparse
import contextlib
import dataclasses
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))

from annotator_truth import truth_scores
from consensus_generator import MODERATE, PRECISE, SCENARIO_PMS, SLOPPY, AnnotatorProfile, Kind, Scenario, generate
from results_io import BenchResults

from cvat_ext.annotations.model import JobAnnotations
from cvat_ext.consensus.batch import ChunkInput, GroupKey, ReplicaBatch, build_batches
from cvat_ext.consensus.engine import iter_chunks, score_chunks, score_replicas
from cvat_ext.consensus.settings import ConsensusSettings
from cvat_ext.geometry import SimilarityParams

CLOCK = time.process_time
FRAMES = {"rectangle": 4000, "polygon": 150, "mask": 600, "skeleton": 400}


def _one_core() -> None:
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


#: three equally reliable annotators: no one's weight decides a mask vote alone
EQUALS = tuple(dataclasses.replace(MODERATE, name=f"moderate{i}") for i in range(3))
#: five replicas: the two sloppy annotators' inventions next to real objects often coincide
FIVE = (PRECISE, *(dataclasses.replace(p, name=f"{p.name}{i}") for p in (MODERATE, SLOPPY) for i in (1, 2)))


def throughput(
    kind: Kind, frames: int, objects: int, repeat: int = 5, annotators: tuple[AnnotatorProfile, ...] = SCENARIO_PMS
) -> tuple[float, float]:
    """(core frames/s, end-to-end frames/s), best of ``repeat`` (this shared machine varies by ±10 %)."""
    g = generate(Scenario(kind=kind, frames=frames, objects_per_frame=objects, seed=1, annotators=annotators))
    settings = ConsensusSettings()
    names = tuple(g.replicas)
    anns = [g.replicas[n] for n in names]
    prepared: list[tuple[ChunkInput, dict[GroupKey, ReplicaBatch]]] = [
        (chunk, build_batches(chunk)) for chunk in iter_chunks(anns, g.meta, settings.chunk_frames)
    ]

    def source() -> Iterator[tuple[ChunkInput, dict[GroupKey, ReplicaBatch]]]:
        return iter(prepared)

    core = e2e = np.inf
    for _ in range(repeat):
        t0 = CLOCK()
        score_chunks(names, source, g.labels, g.meta, settings)
        t1 = CLOCK()
        score_replicas(g.replicas, g.labels, g.meta, settings)
        t2 = CLOCK()
        core, e2e = min(core, t1 - t0), min(e2e, t2 - t1)
    return frames / core, frames / e2e


# ---------------------------------------------------------------------------------------------
# accuracy


def evaluate(pred: JobAnnotations, truth: JobAnnotations, iou_thr: float = 0.5) -> tuple[float, float, float]:
    """(F1, mean IoU of matched objects, label accuracy of matched objects) against the truth."""
    scores = truth_scores(pred, truth, iou_thr=iou_thr, params=SimilarityParams(image_wh=(1280, 720)))
    return scores.f1, scores.mean_iou, scores.label_accuracy if scores.matched else 0.0


def accuracy(kind: Kind, frames: int, results: BenchResults, seeds: tuple[int, ...] = (7, 1, 2, 3)) -> None:
    """The full table for the first seed; then, per seed, our F1 margin over the best annotator."""
    g = generate(Scenario(kind=kind, frames=frames, seed=seeds[0]))
    rows: list[tuple[str, tuple[float, float, float]]] = []
    for name, ann in g.replicas.items():
        rows.append((f"annotator {name}", evaluate(ann, g.truth)))
    ours = score_replicas(g.replicas, g.labels, g.meta, ConsensusSettings())
    rows.append(("ours (wbf, auto quorum)", evaluate(ours.merged, g.truth)))
    if kind in ("mask", "polygon"):
        staple = score_replicas(g.replicas, g.labels, g.meta, ConsensusSettings(method="staple"))
        rows.append(("ours (staple, auto quorum)", evaluate(staple.merged, g.truth)))
    base = score_replicas(
        g.replicas, g.labels, g.meta, ConsensusSettings(method="nearest", quorum=1, iou_thr=0.4, rejoin_share=0)
    )
    rows.append(("CVAT rule (nearest, keep all)", evaluate(base.merged, g.truth)))
    alpha = ours.summary.alpha_lol
    print(f"\n[{kind}] {frames} frames, seed {seeds[0]}, precise/moderate/sloppy, alpha_lol={alpha:.3f}")
    print(f"{'':32s} {'F1':>7s} {'meanIoU':>8s} {'labelAcc':>8s}")
    for name, (f1, miou, lacc) in rows:
        print(f"{name:32s} {f1:7.4f} {miou:8.3f} {lacc:8.3f}")
    best_single = max(r[1][0] for r in rows[:3])
    (f1, miou, lacc), (_bf1, bmiou, blacc) = rows[3][1], rows[-1][1]
    print(
        f"targets: F1 {f1:.4f} >= best single {best_single:.4f} and >= 0.95: {f1 >= best_single and f1 >= 0.95}; "
        f"mean IoU gain {miou - bmiou:+.3f} (>= 0.03: {miou - bmiou >= 0.03}); "
        f"label acc {lacc:.3f} vs {blacc:.3f} (no worse: {lacc >= blacc})"
    )
    label = f"{kind}, {frames} frames, seed {seeds[0]}"
    results.add(f"{label}: F1 ours", f1, "F1", f">= best single ({best_single:.4f}) and >= 0.95",
                f1 >= best_single and f1 >= 0.95)
    results.add(f"{label}: F1 best single annotator", best_single, "F1")
    results.add(f"{label}: F1 CVAT rule", rows[-1][1][0], "F1")
    results.add(f"{label}: mean IoU gain over the CVAT rule", miou - bmiou, "IoU", ">= 0.03", miou - bmiou >= 0.03)
    results.add(f"{label}: label accuracy ours", lacc, "share", f">= CVAT rule ({blacc:.3f})", lacc >= blacc)
    margins = [f"seed {seeds[0]}: {f1 - best_single:+.4f}"]
    for seed in seeds[1:]:
        g = generate(Scenario(kind=kind, frames=frames, seed=seed))
        best = max(evaluate(ann, g.truth)[0] for ann in g.replicas.values())
        ours_f1 = evaluate(score_replicas(g.replicas, g.labels, g.meta, ConsensusSettings()).merged, g.truth)[0]
        margins.append(f"seed {seed}: {ours_f1 - best:+.4f}")
        results.add(f"{kind}, {frames} frames, seed {seed}: F1 ours minus best single", ours_f1 - best, "F1",
                    "> 0", ours_f1 - best > 0)
    print("F1 ours minus best single annotator: " + ", ".join(margins))


def five_replicas(kind: Kind, frames: int, results: BenchResults) -> None:
    """F1 of every annotator and of our merge with five replicas (two of them sloppy)."""
    g = generate(Scenario(kind=kind, frames=frames, seed=3, annotators=FIVE))
    singles = {name: evaluate(ann, g.truth)[0] for name, ann in g.replicas.items()}
    ours = evaluate(score_replicas(g.replicas, g.labels, g.meta, ConsensusSettings()).merged, g.truth)[0]
    shown = ", ".join(f"{name} {f1:.4f}" for name, f1 in singles.items())
    print(f"[{kind}] {frames} frames: ours {ours:.4f}; {shown}")
    best = max(singles.values())
    results.add(f"five replicas, {kind}, {frames} frames, seed 3: F1 ours", ours, "F1",
                f">= best single ({best:.4f})", ours >= best)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer frames (a smoke run)")
    parser.add_argument("--wall", action="store_true", help="wall-clock instead of CPU time")
    args = parser.parse_args()
    global CLOCK
    if args.wall:
        CLOCK = time.perf_counter
    _one_core()
    scale = 0.1 if args.quick else 1.0
    clock = "wall-clock" if args.wall else "CPU"
    results = BenchResults(__file__, note=f"one core, {clock} time, best of 5"
                           + ("; --quick: a tenth of the frames" if args.quick else ""))
    print("(a) throughput, 3 annotators x 20 objects/frame, one core (frames/s)")
    print(f"{'kind':36s} {'frames':>7s} {'core':>9s} {'end-to-end':>11s}")
    for kind, frames in FRAMES.items():
        n = max(20, int(frames * scale))
        core, e2e = throughput(kind, n, 20)  # type: ignore[arg-type]
        print(f"{kind + ' (precise/moderate/sloppy)':36s} {n:7d} {core:9.0f} {e2e:11.0f}")
        results.add(f"{kind}s, precise/moderate/sloppy, {n} frames: core", core, "frames/s")
        results.add(f"{kind}s, precise/moderate/sloppy, {n} frames: end-to-end", e2e, "frames/s")
    for kind in ("rectangle", "mask"):
        n = max(20, int(FRAMES[kind] * scale))
        core, e2e = throughput(kind, n, 20, annotators=EQUALS)  # type: ignore[arg-type]
        print(f"{kind + ' (3 equal annotators)':36s} {n:7d} {core:9.0f} {e2e:11.0f}")
        target, met = (">= 1,000", core >= 1000) if kind == "mask" else (None, None)
        results.add(f"{kind}s, 3 equally reliable annotators, {n} frames: core", core, "frames/s", target, met)
        results.add(f"{kind}s, 3 equally reliable annotators, {n} frames: end-to-end", e2e, "frames/s")
    print("\ngrowth with objects per frame (rectangles)")
    print(f"{'objects':>7s} {'core f/s':>9s} {'e2e f/s':>8s} {'core objects/s':>15s}")
    for objects in (5, 10, 20, 40, 80):
        n = max(20, int(80_000 * scale) // objects)
        core, e2e = throughput("rectangle", n, objects)
        print(f"{objects:7d} {core:9.0f} {e2e:8.0f} {core * objects * 3:15.0f}")
        results.add(f"rectangles, {objects} objects/frame: core", core, "frames/s")
    print("\n(b) merged-vs-truth accuracy (IoU >= 0.5 to the hidden truth)")
    for kind, frames in (("rectangle", 500), ("mask", 100), ("polygon", 100), ("skeleton", 200)):
        accuracy(kind, max(10, int(frames * scale)), results)  # type: ignore[arg-type]
    print("\n(c) five replicas (precise, two moderate, two sloppy), F1 against the truth")
    for kind, frames in (("rectangle", 300), ("mask", 60)):
        five_replicas(kind, max(10, int(frames * scale)), results)  # type: ignore[arg-type]
    results.write()


if __name__ == "__main__":
    main()

"""Active-learning ranking throughput on a synthetic 100,000-frame video job.

Prints frames ranked per second for: the readers (predictions / consensus report / findings JSON
-> columnar), the signals (vectorised), the ranking (top K with temporal NMS, and every frame with
NMS), the whole ``cvat-ext al rank`` path, and a naive per-object Python loop computing the same
uncertainty signal (the ratio is the point; absolute times depend on the machine).

    python3 bench/al_rank.py [--frames 100000] [--per-frame 3] [--top 50] [--nms-window 10]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from results_io import BenchResults  # bench/ is on sys.path as the script's own folder

from cvat_ext.active_learning import sources
from cvat_ext.active_learning.ranking import RankParams, rank_frames
from cvat_ext.active_learning.signals import (
    FrameSet,
    UncertaintyParams,
    disagreement_signal,
    findings_signal,
    uncertainty_signal,
)
from cvat_ext.cli import main as cli_main
from cvat_ext.inputs.files import read_meta


def _timed(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    best, out = math.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _files(root: Path, n_frames: int, per_frame: float, rng: np.random.Generator) -> dict[str, Path]:
    counts = rng.poisson(per_frame, n_frames)
    frame = np.repeat(np.arange(n_frames), counts)
    # detector scores: mostly confident, a tail of ambiguous ones; smooth in time like video
    score = np.clip(rng.beta(5, 1.5, frame.shape[0]), 0.05, 1.0)
    shapes = [
        {"type": "rectangle", "frame": int(f), "label_id": 1, "points": [10.0, 10.0, 60.0, 80.0],
         "score": round(float(s), 4), "source": "auto", "occluded": False, "outside": False, "z_order": 0,
         "rotation": 0.0, "group": 0, "attributes": [], "elements": []}
        for f, s in zip(frame.tolist(), score.tolist(), strict=True)
    ]
    paths = {"pred": root / "pred.json", "report": root / "report.json", "findings": root / "findings.json",
             "meta": root / "meta.json"}
    paths["pred"].write_text(json.dumps({"version": 0, "tags": [], "shapes": shapes, "tracks": []}))
    annotated = np.flatnonzero(rng.random(n_frames) < 0.6)
    kept = rng.integers(1, 8, annotated.shape[0])
    missing = rng.binomial(kept * 3, 0.05)
    extra = rng.binomial(3, 0.1, annotated.shape[0])
    rows = [{"frame": int(f), "clusters": int(k + e), "kept": int(k), "mean_iou": 0.8,
             "f1": round(float(1 - m / (3 * k)), 4), "missing": int(m), "extra": int(e),
             "label_disagreements": int(rng.binomial(k, 0.03)), "findings": int(m + e)}
            for f, k, m, e in zip(annotated.tolist(), kept.tolist(), missing.tolist(), extra.tolist(), strict=True)]
    paths["report"].write_text(json.dumps({"summary": {"annotators": ["a", "b", "c"]}, "frames": rows}))
    bad = rng.choice(n_frames, n_frames // 50, replace=False)
    findings = [{"frame": int(f), "severity": "error" if f % 3 else "warning", "rule_id": "min_size"} for f in bad]
    paths["findings"].write_text(json.dumps({"summary": {}, "findings": findings}))
    meta = {"start_frame": 0, "stop_frame": n_frames - 1, "frame_filter": "", "deleted_frames": [],
            "frames": [{"width": 1920, "height": 1080, "name": ""}] * n_frames}
    paths["meta"].write_text(json.dumps(meta))
    return paths


def _naive_uncertainty(frame_idx: list[int], det: list[tuple[int, float]], params: UncertaintyParams) -> list[float]:
    """Per-object Python loop: the baseline the columnar signal replaces."""
    per_frame: dict[int, list[float]] = {}
    for f, s in det:
        per_frame.setdefault(f, []).append(s)
    out = []
    lo, hi = params.band
    for f in frame_idx:
        scores = per_frame.get(f)
        if not scores:
            out.append(params.empty_prior)
            continue
        hs = [0.0 if s in (0.0, 1.0) else -(s * math.log2(s) + (1 - s) * math.log2(1 - s)) for s in scores]
        amb = sum(lo <= s <= hi for s in scores) / len(scores)
        out.append((max(hs) + sum(hs) / len(hs) + amb) / 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--per-frame", type=float, default=3.0, help="mean detections per frame")
    ap.add_argument("--top", type=int, default=50)
    ap.add_argument("--nms-window", type=int, default=10)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n = args.frames
    with tempfile.TemporaryDirectory() as tmp:
        paths = _files(Path(tmp), n, args.per_frame, rng)
        t_read, (det, table, counts, meta) = _timed(lambda: (
            sources.read_predictions(paths["pred"]), sources.read_consensus_report(paths["report"]),
            sources.read_findings(paths["findings"]), read_meta(paths["meta"])), repeat=1)
        frames: FrameSet = sources.frames_from_metas([("job", meta)])
        params = UncertaintyParams()
        t_sig, signals = _timed(lambda: [uncertainty_signal(frames, det, params), disagreement_signal(frames, table),
                                         findings_signal(frames, counts)])
        t_top, top = _timed(lambda: rank_frames(frames, signals, RankParams(top_k=args.top,
                                                                               nms_window=args.nms_window)))
        t_all, full = _timed(lambda: rank_frames(frames, signals, RankParams(top_k=None,
                                                                                nms_window=args.nms_window)))
        det_rows = list(zip(det.frame_idx.tolist(), det.score.tolist(), strict=True))
        frame_list = frames.frame_idx.tolist()
        t_naive, naive = _timed(lambda: _naive_uncertainty(frame_list, det_rows, params), repeat=1)
        t_unc, unc = _timed(lambda: uncertainty_signal(frames, det, params))
        assert np.allclose(naive, unc.value), "columnar and naive uncertainty differ"
        cli_args = ["al", "rank", "--predictions", str(paths["pred"]), "--consensus-report", str(paths["report"]),
                    "--findings", str(paths["findings"]), "--meta", str(paths["meta"]), "--top", str(args.top),
                    "--nms-window", str(args.nms_window), "--format", "json", "-o", str(Path(tmp) / "out.json")]
        t_cli, code = _timed(lambda: cli_main(cli_args), repeat=1)
        assert code == 0

    print(f"job: {n:,} frames, {len(det):,} detections, {len(table.frame_idx):,} consensus frames, "
          f"{len(counts.frame_idx):,} findings; top {args.top}, NMS window {args.nms_window}")
    rows = [
        ("read files (JSON -> columnar)", t_read),
        ("signals (uncertainty + disagreement + findings)", t_sig),
        (f"rank, top {args.top} with NMS", t_top),
        (f"rank, every frame with NMS ({len(full.picked):,} survive)", t_all),
        ("signals + rank top K (in memory)", t_sig + t_top),
        ("cvat-ext al rank end to end (CLI, files)", t_cli),
    ]
    results = BenchResults(__file__, note=f"{n:,} frames, {len(det):,} detections; best of 3 except the reader, "
                                          "the naive loop and the CLI (one run each)")
    print(f"{'stage':<56} {'seconds':>9} {'frames/s':>14}")
    for name, t in rows:
        print(f"{name:<56} {t:>9.4f} {n / t:>14,.0f}")
        results.add(name, n / t, "frames/s")
    print(f"uncertainty signal: columnar {t_unc * 1e3:.1f} ms vs per-object Python loop {t_naive * 1e3:.1f} ms "
          f"({t_naive / t_unc:.0f}x)")
    results.add("uncertainty signal: columnar vs per-object Python loop", t_naive / t_unc, "x faster")
    results.write()
    print(f"top frames: {top.frame_indices[:10]}")


if __name__ == "__main__":
    main()

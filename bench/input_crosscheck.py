"""Benchmark: the offline commands' input cross-check on a large job, and what it costs them.

Builds one synthetic CVAT annotations file (rectangles with an attribute, skeletons of 5
keypoints, 10-keyframe tracks) and measures, side by side in one run:

* the column checks alone (``check_frames`` + ``check_labels`` on :class:`AnnotationIds`)
  against a plain Python loop doing the same checks over the parsed JSON (the naive reference);
* the whole cross-check (reading the id columns from the file + the checks) against what
  ``qa consensus`` already spends reading the same replica into a :class:`FrameStore`;
* the kind sniff (reads the first keys only) against the file size.

    python3 bench/input_crosscheck.py                  # 200,000 shapes (about 60 MB)
    python3 bench/input_crosscheck.py --shapes 20000   # quicker

Prints the figures and writes them to ``bench/results/input_crosscheck.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from results_io import BenchResults

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from cvat_ext.annotations.cvat_json import parse_labels
from cvat_ext.annotations.frame_store import FrameStore
from cvat_ext.annotations.model import FrameInfo, JobMeta, LabelSet
from cvat_ext.inputs.columns import ids_from_file
from cvat_ext.inputs.crosscheck import check_frames, check_labels
from cvat_ext.inputs.kinds import sniff_kind

FRAMES = 5000


def labels() -> LabelSet:
    attr = {"id": 7, "name": "kind", "input_type": "text", "mutable": False, "default_value": "", "values": []}
    return parse_labels([
        {"id": 1, "name": "car", "attributes": [attr]},
        {"id": 2, "name": "person", "attributes": []},
        {"id": 10, "name": "pose", "type": "skeleton", "attributes": [],
         "sublabels": [{"id": 11 + k, "name": f"kp{k}", "type": "points", "attributes": []} for k in range(5)]},
    ])


def synthetic_job(shapes: int, seed: int) -> dict[str, Any]:
    """90% rectangles (label 1 with attribute 7, or label 2), 10% skeletons; one track per 100 shapes."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, FRAMES, size=shapes)
    out: list[dict[str, Any]] = []
    for i, frame in enumerate(frames.tolist()):
        common = {"frame": frame, "occluded": False, "outside": False, "z_order": 0, "rotation": 0.0, "group": 0,
                  "source": "manual"}
        if i % 10 == 9:
            elements = [{"type": "points", "frame": frame, "label_id": 11 + k, "points": [1.0 * k, 2.0],
                         "occluded": False, "outside": False, "attributes": []} for k in range(5)]
            out.append({**common, "type": "skeleton", "label_id": 10, "points": [], "attributes": [],
                        "elements": elements})
        else:
            label = 1 if i % 2 else 2
            out.append({**common, "type": "rectangle", "label_id": label, "points": [10.0, 20.0, 40.5, 60.25],
                        "attributes": [{"spec_id": 7, "value": "van"}] if label == 1 else [], "elements": []})
    tracks = [{"frame": int(f), "label_id": 1, "group": 0, "source": "manual", "attributes": [],
               "shapes": [{"type": "rectangle", "frame": int(f) + k, "points": [1.0, 2.0, 30.0, 40.0],
                           "occluded": False, "outside": False, "z_order": 0, "rotation": 0.0,
                           "attributes": [{"spec_id": 7, "value": "sedan"}]} for k in range(10)],
               "elements": []} for f in rng.integers(0, FRAMES - 10, size=max(1, shapes // 100))]
    return {"version": 0, "tags": [], "shapes": out, "tracks": tracks}


def naive_check(data: dict[str, Any], meta: JobMeta, label_set: LabelSet) -> int:
    """The same checks as a plain loop over the JSON objects (frames, labels, keypoints, attributes)."""
    frames = set(range(meta.start_frame, meta.stop_frame + 1))
    specs = {lb.id: {a.id for a in lb.attributes} for lb in label_set.by_id.values()}
    subs = {lb.id: {s.id for s in lb.sublabels} for lb in label_set}
    seen = 0
    for s in data["shapes"]:
        assert s["frame"] in frames and s["label_id"] in specs
        assert all(a["spec_id"] in specs[s["label_id"]] for a in s["attributes"])
        for e in s["elements"]:
            assert e["label_id"] in subs[s["label_id"]]
        seen += 1 + len(s["elements"])
    for t in data["tracks"]:
        assert t["label_id"] in specs
        for k in t["shapes"]:
            assert k["frame"] in frames
            assert all(a["spec_id"] in specs[t["label_id"]] for a in k["attributes"])
            seen += 1
    return seen


def best_of(repeat: int, fn: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    data = synthetic_job(args.shapes, args.seed)
    meta = JobMeta(0, FRAMES - 1 + 10, (FrameInfo(640, 480),) * (FRAMES + 10))
    label_set = labels()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "job.json"
        path.write_text(json.dumps(data))
        size_mb = path.stat().st_size / 1e6
        ids = ids_from_file(path)

        def checks() -> None:
            check_frames(ids, meta, "meta.json")
            check_labels(ids, label_set, "labels.json")

        t_checks = best_of(args.repeat, checks)
        t_naive = best_of(args.repeat, lambda: naive_check(data, meta, label_set))
        t_cross = best_of(args.repeat, lambda: (ids_from_file(path), checks()))
        t_store = best_of(1, lambda: FrameStore(path).close())
        t_sniff = best_of(args.repeat, lambda: sniff_kind(path))
    rows = len(ids)
    figures = [
        {"name": "file size", "value": round(size_mb, 1), "unit": "MB", "target": None, "met": None},
        {"name": "rows checked (shapes, keypoints, keyframes)", "value": rows, "unit": "rows", "target": None,
         "met": None},
        {"name": "column checks", "value": round(rows / t_checks / 1e6, 2), "unit": "M rows/s", "target": None,
         "met": None},
        {"name": "column checks vs naive loop", "value": round(t_naive / t_checks, 1), "unit": "x faster",
         "target": ">= 10", "met": t_naive / t_checks >= 10},
        {"name": "whole cross-check (ids read from the file + checks)", "value": round(t_cross, 3), "unit": "s",
         "target": None, "met": None},
        {"name": "cross-check cost relative to reading the replica into a FrameStore",
         "value": round(100 * t_cross / t_store, 1), "unit": "%", "target": "<= 50", "met": t_cross / t_store <= 0.5},
        {"name": "kind sniff", "value": round(t_sniff * 1e3, 3), "unit": "ms", "target": "<= 5",
         "met": t_sniff <= 5e-3},
    ]
    print(f"input cross-check, {args.shapes} shapes ({size_mb:.1f} MB), best of {args.repeat}:")
    print(f"  column checks {t_checks * 1e3:.1f} ms vs naive loop {t_naive * 1e3:.1f} ms")
    print(f"  cross-check {t_cross:.2f} s vs FrameStore load {t_store:.2f} s; kind sniff {t_sniff * 1e3:.3f} ms")
    for f in figures:
        target = f" (target {f['target']}: {'met' if f['met'] else 'NOT met'})" if f["target"] else ""
        print(f"  {f['name']}: {f['value']} {f['unit']}{target}")
    results = BenchResults(__file__, note=f"{args.shapes} shapes, best of {args.repeat}")
    for f in figures:
        results.add(**f)
    results.write()


if __name__ == "__main__":
    main()

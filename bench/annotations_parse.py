"""Benchmark: CVAT JSON -> our types -> CVAT JSON for a large synthetic job.

Prints shapes/s for ``parse_job_annotations`` and ``dump_job_annotations`` (and for the json
module on the same body, as a yardstick measured in the same run), and frames/s for
``iter_frames`` over a job with tracks.

    python3 bench/annotations_parse.py                    # 10,000 frames x 50 objects
    python3 bench/annotations_parse.py --frames 1000      # quicker
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from results_io import BenchResults

from cvat_ext.annotations.cvat_json import dump_job_annotations, parse_job_annotations
from cvat_ext.annotations.tracks import iter_frames


def synthetic_job(frames: int, objects: int, seed: int = 0) -> dict[str, Any]:
    """A CVAT LabeledData body: per frame ``objects`` shapes (60% rectangles, 20% polygons of
    8-24 vertices, 10% 30x20 blob masks, 10% skeletons of 5 keypoints), plus one 10-keyframe track per 1,000 frames."""
    rng = np.random.default_rng(seed)
    shapes: list[dict[str, Any]] = []
    next_id = 1

    def base(kind: str, frame: int, points: list[float]) -> dict[str, Any]:
        nonlocal next_id
        next_id += 1
        return {
            "id": next_id, "label_id": 1, "type": kind, "frame": frame, "group": 0, "source": "manual",
            "score": 1.0, "occluded": False, "outside": False, "z_order": 0, "rotation": 0.0,
            "points": points, "attributes": [{"spec_id": 1, "value": "x"}], "elements": [],
        }  # fmt: skip

    kinds = rng.choice(4, size=(frames, objects), p=[0.6, 0.2, 0.1, 0.1])
    for frame in range(frames):
        for kind in kinds[frame]:
            x, y = (float(v) for v in np.round(rng.uniform(0, 600, 2), 2))
            if kind == 0:
                shapes.append(base("rectangle", frame, [x, y, x + 30.5, y + 20.25]))
            elif kind == 1:
                k = int(rng.integers(8, 25))
                shapes.append(base("polygon", frame, np.round(rng.uniform(0, 640, 2 * k), 2).tolist()))
            elif kind == 2:
                yy, xx = np.mgrid[0:20, 0:30]
                cy, cx, ry, rx = rng.uniform(6, 14), rng.uniform(8, 22), rng.uniform(3, 9), rng.uniform(4, 14)
                bits = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1  # a blob, as real masks are
                flat = bits.ravel()
                change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
                runs = np.diff(np.concatenate(([0], change, [flat.size]))).tolist()
                counts = ([0] if flat[0] else []) + runs
                shapes.append(base("mask", frame, [*counts, int(x), int(y), int(x) + 29, int(y) + 19]))
            else:
                skeleton = base("skeleton", frame, [])
                for label_id in range(2, 7):
                    element = base("points", frame, [x + label_id, y + label_id])
                    del element["elements"]
                    element["label_id"] = label_id
                    skeleton["elements"].append(element)
                shapes.append(skeleton)
    tracks = []
    for start in range(0, frames, 1000):
        keyframes = [
            {"id": start + k, "type": "rectangle", "frame": start + 100 * k, "occluded": False, "outside": k == 9,
             "z_order": 0, "rotation": 0.0, "points": [10.0 * k, 5.0, 10.0 * k + 40, 45.0], "attributes": []}
            for k in range(10) if start + 100 * k < frames
        ]  # fmt: skip
        tracks.append({"id": start, "label_id": 1, "frame": start, "group": 0, "source": "manual",
                       "shapes": keyframes, "attributes": [], "elements": []})  # fmt: skip
    return {"version": 0, "tags": [], "shapes": shapes, "tracks": tracks, "intervals": []}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--objects", type=int, default=50)
    args = parser.parse_args()

    body = synthetic_job(args.frames, args.objects)
    n_shapes = len(body["shapes"])
    text = json.dumps(body)
    print(f"job: {args.frames} frames x {args.objects} objects = {n_shapes} shapes, {len(text) / 1e6:.1f} MB JSON")

    t0 = time.perf_counter()
    reloaded = json.loads(text)
    t_json = time.perf_counter() - t0

    t0 = time.perf_counter()
    ann = parse_job_annotations(reloaded, where="bench job")
    t_parse = time.perf_counter() - t0

    t0 = time.perf_counter()
    dumped = dump_job_annotations(ann)
    t_dump = time.perf_counter() - t0
    assert dumped == body, "round trip changed the body"

    t0 = time.perf_counter()
    n_frames = n_expanded = 0
    for fa in iter_frames(ann, last_frame=args.frames - 1):
        n_frames += 1
        n_expanded += len(fa.shapes)
    t_iter = time.perf_counter() - t0

    results = BenchResults(__file__, note=f"{args.frames:,} frames x {args.objects} objects = {n_shapes:,} shapes")

    def row(name: str, seconds: float, count: int, unit: str, note: str) -> None:
        print(f"{name:<22} {seconds:7.2f} s {count / seconds:12,.0f} {unit}/s  {note}")
        results.add(name, count / seconds, f"{unit}/s")

    row("json.loads", t_json, n_shapes, "shapes", "(yardstick)")
    row("parse_job_annotations", t_parse, n_shapes, "shapes", f"({t_parse / t_json:.1f}x json.loads)")
    row("dump_job_annotations", t_dump, n_shapes, "shapes", f"({t_dump / t_json:.1f}x json.loads)")
    row("iter_frames", t_iter, n_frames, "frames", f"({n_expanded} shapes incl. tracks)")
    results.add("parse_job_annotations time / json.loads time", t_parse / t_json, "x")
    results.add("dump_job_annotations time / json.loads time", t_dump / t_json, "x")
    results.write()


if __name__ == "__main__":
    main()

"""Benchmark: tracks expanded into the object table, per expanded frame as ``Shape`` objects or straight into columns.

For each kind of track (rectangles; polygons of 8 vertices moving a few pixels, which CVAT
interpolates vertex by vertex; polygons re-drawn with 5-11 vertices at every keyframe, which it
matches by arc length and reduces frame by frame; 30x20 masks), a job of ``--tracks`` tracks over
``--frames`` frames (a keyframe every 5-15 frames, about one in ten ``outside``) is written as
CVAT's JSON. Both paths read the same bytes with the columnar reader (``read_annotations_bytes``,
tracks checked by ``parse_track``) and differ only in the expansion, timed side by side (best of
``--repeat``, CPU time of one core, the whole read included):

* ``shapes``: ``expand_track`` per track (a ``Shape`` per expanded frame), then
  ``ShapeTable.from_shapes`` (the reader before this change);
* ``columns``: ``track_columns.track_table``.

The script checks that both give the same rows, prints rows per second and the speed-up per kind,
and writes ``bench/results/track_columns.json``. No target: issue 12 asks for tracks in the same
table without a Python object per shape.

    python3 bench/track_columns.py [--tracks 100] [--frames 1000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from results_io import BenchResults

from cvat_ext.annotations import track_columns
from cvat_ext.annotations.columnar_json import read_annotations_bytes
from cvat_ext.annotations.table import ShapeTable
from cvat_ext.annotations.tracks import expand_track


def _keyframe(rng: np.random.Generator, kind: str, frame: int, base: list[float]) -> dict[str, Any]:
    if kind == "rectangle":
        x, y = rng.uniform(0, 1000, 2)
        points = [float(x), float(y), float(x + rng.uniform(20, 80)), float(y + rng.uniform(20, 80))]
    elif kind == "polygon-moving":
        points = [float(v) for v in np.asarray(base) + rng.uniform(-3, 3, len(base))]
    elif kind == "polygon":
        k = int(rng.integers(5, 12))
        angle = np.sort(rng.uniform(0, 2 * np.pi, k))
        cx, cy, r = rng.uniform(100, 900), rng.uniform(100, 900), rng.uniform(20, 60)
        points = [float(v) for v in np.column_stack([cx + r * np.cos(angle), cy + r * np.sin(angle)]).ravel()]
    else:  # a 30x20 mask of 4 runs
        left, top = int(rng.integers(0, 900)), int(rng.integers(0, 900))
        points = [100.0, 200.0, 150.0, 150.0, left, top, left + 29, top + 19]
    return {"type": kind.removesuffix("-moving"), "frame": frame, "points": points,
            "outside": bool(rng.random() < 0.1), "occluded": False, "z_order": 0, "rotation": 0.0,
            "attributes": []}  # fmt: skip


KINDS = {"rectangle": "rectangles", "polygon-moving": "polygons, vertex-wise", "polygon": "polygons, re-drawn",
         "mask": "masks"}  # fmt: skip


def job(kind: str, n_tracks: int, n_frames: int, seed: int = 0) -> bytes:
    """A LabeledData body of ``n_tracks`` tracks of ``kind`` over ``n_frames`` frames (see the module docstring)."""
    rng = np.random.default_rng(seed)
    tracks = []
    for i in range(n_tracks):
        start = int(rng.integers(0, n_frames // 2))
        frames = np.cumsum(rng.integers(5, 16, size=n_frames // 5)) + start
        frames = frames[frames < n_frames]
        base = [float(v) for v in rng.uniform(100, 900, 2 * 8)]
        tracks.append({"id": i, "frame": start, "label_id": 1, "group": 0, "source": "manual", "attributes": [],
                       "shapes": [_keyframe(rng, kind, int(f), base) for f in frames], "elements": []})  # fmt: skip
    return json.dumps({"version": 0, "tags": [], "shapes": [], "tracks": tracks}).encode()


def by_shapes(tracks: Any, *, last_frame: int | None = None) -> ShapeTable:
    """The expansion before this change: a ``Shape`` per expanded frame."""
    return ShapeTable.from_shapes([s for t in tracks for s in expand_track(t, last_frame=last_frame)])


def timed_reads(raw: bytes, last_frame: int, repeat: int) -> tuple[dict[str, float], dict[str, ShapeTable]]:
    """Best CPU seconds of reading ``raw`` with each expansion, and the tables read."""
    expansions: dict[str, Callable[..., ShapeTable]] = {"shapes": by_shapes, "columns": track_columns.track_table}
    timings: dict[str, float] = {}
    tables: dict[str, ShapeTable] = {}
    for _ in range(repeat):
        for name, expand in expansions.items():
            track_columns.track_table = expand  # the reader looks it up on each call
            try:
                t0 = time.process_time()
                tables[name] = read_annotations_bytes(raw, where="bench", last_frame=last_frame).shapes
                timings[name] = min(timings.get(name, float("inf")), time.process_time() - t0)
            finally:
                track_columns.track_table = expansions["columns"]
    return timings, tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=100)
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    results = BenchResults(__file__)
    print(f"tracks into columns: {args.tracks} tracks x {args.frames} frames per kind "
          f"(CPU, best of {args.repeat}; the read of the JSON included)")  # fmt: skip
    for kind, title in KINDS.items():
        raw = job(kind, args.tracks, args.frames)
        timings, tables = timed_reads(raw, args.frames - 1, args.repeat)
        rows = len(tables["columns"])
        same = all(
            np.array_equal(getattr(tables["shapes"], c), getattr(tables["columns"], c))
            for c in ("frame", "label_id", "type_code", "occluded", "z_order", "rotation", "coords", "coord_start")
        )
        speedup = timings["shapes"] / timings["columns"]
        print(f" {title} ({len(raw) / 1e6:.1f} MB, {rows} rows):")
        stem = f"{args.tracks} tracks x {args.frames} frames, {title}"
        for name, seconds in timings.items():
            print(f"  {name:>8}: {seconds:6.3f} s  ({rows / seconds:9.0f} rows/s)")
            results.add(f"{stem}: read, tracks expanded as {name}", round(seconds, 4), "s")
        print(f"  speed-up {speedup:.1f}x; same rows: {same}")
        results.add(f"{stem}: speed-up", round(speedup, 2), "x")
        results.add(f"{stem}: same rows", float(same), "bool", "1", same)
    results.write()


if __name__ == "__main__":
    main()

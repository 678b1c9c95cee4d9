"""Benchmark: the rule engine on a long job (default 10,000 frames x 50 objects per frame).

Prints frames/s and objects/s (per CPU second; the machine may be shared) for the shipped packs,
next to the floor (streaming the frames without rules) and to the same pack run one frame per
batch. The job is synthetic but shaped like a driving job: mostly rectangles of several labels, a
few polygons, a mask and a skeleton per frame, tags, and rectangle tracks; ~1% of objects carry a
defect so findings are produced and formatted too.

Then, from CVAT's body (the decoded JSON of a job of ``--body-frames`` frames, the same objects
without tracks and skeletons: the columnar reader sends bodies with either to its per-object slow
path, so they gain nothing yet), each pack per object (``parse_job_annotations`` + the rules: the path before
issue 12) and over columns (``read_annotations_body`` + the rules over the table), side by side,
with a check that both give the same findings.

    python3 bench/rules_engine.py [--frames 10000] [--objects 50] [--body-frames 2000] [--packs ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from results_io import BenchResults

from cvat_ext.annotations.columnar_json import read_annotations_body
from cvat_ext.annotations.cvat_json import dump_job_annotations, parse_job_annotations
from cvat_ext.annotations.model import (
    Attribute,
    AttributeInputType,
    AttributeSpec,
    FrameInfo,
    JobAnnotations,
    JobMeta,
    Label,
    LabelSet,
    MaskRle,
    Shape,
    ShapeType,
    Tag,
    Track,
    TrackShape,
)
from cvat_ext.annotations.tracks import iter_frames
from cvat_ext.rules import check_job, iter_findings, load_packs
from cvat_ext.rules.engine import DEFAULT_BATCH_ROWS

ROOT = Path(__file__).resolve().parents[1]
KP = ("head", "l_hand", "r_hand", "l_foot", "r_foot")
SVG = "".join(f'<line data-node-from="1" data-node-to="{n}"></line>' for n in range(2, 6)) + "".join(
    f'<circle data-node-id="{n}" data-label-id="{30 + n}"></circle>' for n in range(1, 6)
)
LABELS = LabelSet(
    (
        Label(1, "car", "rectangle"),
        Label(2, "truck", "any"),
        Label(3, "person", "any"),
        Label(4, "rider", "rectangle"),
        Label(5, "bicycle", "rectangle"),
        Label(
            7,
            "sign",
            "rectangle",
            attributes=(AttributeSpec(70, "kind", AttributeInputType.SELECT, values=("stop", "yield", "other")),),
        ),
        Label(9, "pose", "skeleton", sublabels=tuple(Label(31 + i, n, "points") for i, n in enumerate(KP)), svg=SVG),
        Label(10, "day", "tag"),
    )
)
W, H = 1920, 1080


def make_job(frames: int, objects: int, seed: int = 0) -> JobAnnotations:
    rng = np.random.default_rng(seed)
    rect_labels = np.array([1, 1, 1, 2, 3, 3, 4, 7])
    n_rect = max(objects - 6, 1)
    shapes: list[Shape] = []
    blob = np.zeros((24, 24), dtype=bool)
    blob[2:22, 2:22] = True
    mask = MaskRle.from_bitmap(blob, 100, 100)
    kind = (Attribute(70, "stop"),)
    for f in range(frames):
        xy = rng.uniform([0, 0], [W - 200, H - 200], size=(n_rect, 2))
        wh = rng.uniform(10, 180, size=(n_rect, 2))
        wh[rng.random(n_rect) < 0.01] = 2.0  # ~1% impossible 2x2 boxes
        labels = rng.choice(rect_labels, size=n_rect)
        wh[labels == 3, 1] = np.maximum(wh[labels == 3, 0] * 2.5, 2.0)  # people stand upright
        for (x, y), (w, h), label in zip(xy, wh, labels, strict=True):
            attrs = kind if label == 7 else ()
            shapes.append(Shape(ShapeType.RECTANGLE, f, int(label), np.array([x, y, x + w, y + h]), attributes=attrs))
            if label == 4:  # every rider sits on a bicycle
                bike = np.array([x - 5, y + h / 2, x + w + 5, y + h * 1.2])
                shapes.append(Shape(ShapeType.RECTANGLE, f, 5, bike))
        for k in range(4):
            cx, cy = rng.uniform(200, W - 200), rng.uniform(200, H - 200)
            angles = np.sort(rng.uniform(0, 2 * np.pi, 6))
            poly = np.stack([cx + 60 * np.cos(angles), cy + 60 * np.sin(angles)], axis=1)
            shapes.append(Shape(ShapeType.POLYGON, f, 3, poly, id=f * 100 + k))
        shapes.append(Shape(ShapeType.MASK, f, 3, np.zeros((0, 2)), mask=mask))
        base = rng.uniform(300, 800, 2)
        offsets = np.array([[30, 10], [5, 70], [55, 70], [20, 150], [40, 150]], dtype=float)
        elements = tuple(Shape(ShapeType.POINTS, f, 31 + i, (base + o)[None, :]) for i, o in enumerate(offsets))
        shapes.append(Shape(ShapeType.SKELETON, f, 9, np.zeros((0, 2)), elements=elements))
    tracks = []
    span = max(frames // 20, 2)
    for t in range(20):
        start = t * span
        keyframes = [
            TrackShape(
                ShapeType.RECTANGLE,
                f,
                np.array([100.0 + 2 * (f - start), 40.0 * t, 200 + 2 * (f - start), 40 * t + 30]),
            )
            for f in range(start, start + span - 1, 10)
        ]
        end = keyframes[-1]
        keyframes.append(TrackShape(ShapeType.RECTANGLE, start + span - 1, end.points, outside=True))
        tracks.append(Track(frame=start, label_id=1, shapes=tuple(keyframes), id=t + 1))
    tags = tuple(Tag(f, 10) for f in range(frames))
    return JobAnnotations(shapes=tuple(shapes), tags=tags, tracks=tuple(tracks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--objects", type=int, default=50)
    parser.add_argument("--body-frames", type=int, default=2000)
    parser.add_argument(
        "--packs", nargs="+", default=[str(ROOT / "qa_rules" / "default.yaml"), str(ROOT / "qa_rules" / "driving.yaml")]
    )
    args = parser.parse_args()
    t0 = time.perf_counter()
    ann = make_job(args.frames, args.objects)
    meta = JobMeta(start_frame=0, stop_frame=args.frames - 1, frames=(FrameInfo(W, H),) * args.frames)
    build_s = time.perf_counter() - t0
    n_objects = len(ann.shapes)
    print(f"job: {args.frames} frames, {n_objects} shapes + {len(ann.tracks)} tracks (built in {build_s:.1f} s)")
    # the floor: streaming the frames with tracks expanded, no rule at all
    frames = range(args.frames)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for _ in iter_frames(ann, frames=frames, last_frame=args.frames - 1):
        pass
    floor_s = time.process_time() - cpu0
    print(f"{'iter_frames only':>34}: {time.perf_counter() - wall0:6.2f} s wall {floor_s:6.2f} s cpu")
    results = BenchResults(__file__, note=f"{args.frames:,} frames, {n_objects:,} shapes + {len(ann.tracks)} tracks; "
                                          "CPU seconds of this process")
    results.add("streaming the frames only (the floor)", floor_s, "CPU s")
    cpu_by_run: dict[str, float] = {}
    runs = [(p, DEFAULT_BATCH_ROWS) for p in args.packs] + [(args.packs[0], 1)]
    for pack_path, batch_rows in runs:
        pack = load_packs([pack_path])
        wall0, cpu0 = time.perf_counter(), time.process_time()
        count = 0
        for _ in iter_findings(ann, LABELS, meta, pack, job_id=1, annotator="bench", batch_rows=batch_rows):
            count += 1
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        name = f"{Path(pack_path).name} ({'one frame per batch' if batch_rows == 1 else 'batched'})"
        print(
            f"{name:>34}: {wall:6.2f} s wall {cpu:6.2f} s cpu ({cpu / floor_s:4.1f}x the floor)  "
            f"{args.frames / cpu:7.0f} frames/s  {n_objects / cpu:8.0f} objects/s  {len(pack.rules):2d} rules  "
            f"{count} findings"
        )
        results.add(f"{name}: CPU time", cpu, "CPU s")
        results.add(f"{name}: frames/s", args.frames / cpu, "frames/s")
        results.add(f"{name}: objects/s", n_objects / cpu, "objects/s")
        cpu_by_run[name] = cpu
    first = Path(args.packs[0]).name
    batched, single = cpu_by_run[f"{first} (batched)"], cpu_by_run[f"{first} (one frame per batch)"]
    print(f"batching makes {first} {single / batched:.1f}x faster than one frame per batch (same run)")
    results.add(f"{first}: batched vs one frame per batch", single / batched, "x faster")
    _from_body(args, results)
    results.write()


def _from_body(args: argparse.Namespace, results: BenchResults) -> None:
    """Each pack from CVAT's body, per object and over columns (CPU time, side by side)."""
    frames = args.body_frames
    ann = make_job(frames, args.objects, seed=1)
    shapes = tuple(sh for sh in ann.shapes if sh.type is not ShapeType.SKELETON)
    body = dump_job_annotations(JobAnnotations(shapes=shapes, tags=ann.tags))
    meta = JobMeta(start_frame=0, stop_frame=frames - 1, frames=(FrameInfo(W, H),) * frames)
    print(f"from CVAT's body: {frames} frames, {len(body['shapes'])} shapes, no tracks, no skeletons")
    for pack_path in args.packs:
        pack = load_packs([pack_path])
        name = Path(pack_path).name
        cpu0 = time.process_time()
        want = check_job(parse_job_annotations(body, where="bench"), LABELS, meta, pack, job_id=1, annotator="bench")
        per_object = time.process_time() - cpu0
        cpu0 = time.process_time()
        columns = read_annotations_body(body, where="bench", last_frame=frames - 1)
        got = check_job(columns, LABELS, meta, pack, job_id=1, annotator="bench")
        columnar = time.process_time() - cpu0
        same = [repr(f) for f in got] == [repr(f) for f in want]
        print(
            f"{name:>34}: per object {per_object:6.2f} s cpu, columns {columnar:6.2f} s cpu "
            f"({per_object / columnar:4.1f}x)  {len(got)} findings, same: {same}"
        )
        results.add(f"{name} from the body, per object: CPU time", per_object, "CPU s")
        results.add(f"{name} from the body, columns: CPU time", columnar, "CPU s")
        results.add(f"{name} from the body: columns vs per object", per_object / columnar, "x faster")
        results.add(f"{name} from the body: same findings", float(same), "bool", "1", same)


if __name__ == "__main__":
    main()

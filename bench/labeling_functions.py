"""Labeling functions at scale: 1,000,000 candidates x 20 LFs (target < 10 s on one core), and the
label model against the majority vote on LF outputs with known accuracies.

1. **Throughput**: ``--n`` random candidates (boxes, shape areas, detector classes and scores,
   colours; several frame sizes), 20 LFs: the 6 YAML heuristics of
   ``cvat_ext/labeling_functions/packs/vehicles.yaml``, the 3 Python LFs of ``street_python.py``
   and 11 more generated YAML heuristics; time of building the candidate table, applying the LFs
   (vote matrix) and fitting the label model, measured as process CPU time and wall time. Run it
   with ``taskset -c 0`` (or ``OMP_NUM_THREADS=1``) to pin it to one core.
2. **Label model vs majority vote** on generated votes: 20 LFs whose accuracies (0.55-0.95) and
   coverages (0.1-0.6) are known, 3 labels, for several seeds.
3. **Colour features per frame**: :func:`~cvat_ext.labeling_functions.pixels.pixel_stats` on a
   1920x1080 frame (scikit-image photos tiled) for 10, 100 and 1000 boxes, and with 20 polygon
   masks among 100 candidates (what ``lf apply`` pays per frame after the download).
4. **Region proposals of the pre-label detector**: recall at IoU >= 0.5 of the hand-made boxes
   of ``tests/data/labeling_functions/objects.json`` (24 objects on 5 scikit-image photos), the
   proposals per photo and the time per photo after the superpixels, for the colour regions
   (the previous method) and the hierarchical grouping at several contrast floors, scales and
   strategies; and the whole pre-label call (superpixels, proposals, colour features, 11 LFs) on
   a 1920x1080 frame.

    python3 bench/labeling_functions.py [--n 1000000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from results_io import BenchResults  # noqa: E402

from cvat_ext.labeling_functions.apply import apply_lfs, load_lfs  # noqa: E402
from cvat_ext.labeling_functions.candidates import Candidates  # noqa: E402
from cvat_ext.labeling_functions.label_model import fit_label_model, majority_vote  # noqa: E402

PACKS = ROOT / "cvat_ext" / "labeling_functions" / "packs"
FEATURE_RULES = [
    ("area", "gt", 20000), ("area", "lt", 400), ("aspect", "gt", 2.5), ("aspect", "lt", 0.4), ("cy", "gt", 0.8),
    ("cx", "lt", 0.1), ("brightness", "gt", 200), ("brightness", "lt", 40), ("det_score", "ge", 0.9),
    ("rel_area", "gt", 0.1), ("fill", "lt", 0.5),
]  # fmt: skip


def _figure(name: str, value: float, unit: str, target: str | None = None, met: bool | None = None) -> dict[str, Any]:
    return {"name": name, "value": round(float(value), 4), "unit": unit, "target": target, "met": met}


def random_candidates(n: int, seed: int = 0) -> Candidates:
    rng = np.random.default_rng(seed)
    sizes = np.array([[1920, 1080], [1280, 720], [640, 480]], dtype=np.float64)
    wh_img = sizes[rng.integers(0, 3, n)]
    xy = rng.uniform(0, 1, (n, 2)) * wh_img * 0.9
    wh = rng.lognormal(3.5, 0.9, (n, 2))
    xyxy = np.concatenate([xy, np.minimum(xy + wh, wh_img)], axis=1)
    box_area = np.prod(xyxy[:, 2:] - xyxy[:, :2], axis=1)
    return Candidates(
        frame=rng.integers(0, 50_000, n),
        xyxy=xyxy,
        image_wh=wh_img,
        shape_area=box_area * rng.uniform(0.4, 1.0, n),
        det_label=rng.integers(-1, 5, n),
        det_names=("bus", "car", "person", "sign", "truck"),
        det_score=rng.uniform(0, 1, n),
        mean_rgb=rng.uniform(0, 255, (n, 3)),
    )


def _extra_pack(folder: Path, count: int) -> Path:
    lines = ["labels: [vehicle, person, sign]", "functions:"]
    for k, (feature, op, value) in enumerate(FEATURE_RULES[:count]):
        label = ("vehicle", "person", "sign")[k % 3]
        lines += [
            f"  - name: generated_{k}_{feature}_{op}",
            f"    when: {{{feature}: {{{op}: {value}}}}}",
            f"    vote: {label}",
        ]
    path = folder / "generated.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _timed(fn: Any) -> tuple[Any, float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def bench_throughput(n: int) -> list[dict[str, Any]]:
    shipped = load_lfs([PACKS / "vehicles.yaml", PACKS / "street_python.py"])
    with tempfile.TemporaryDirectory() as tmp:
        lfs = shipped + load_lfs([_extra_pack(Path(tmp), 20 - len(shipped))])
    assert len(lfs) == 20, len(lfs)
    candidates, build_wall, build_cpu = _timed(lambda: random_candidates(n))
    run, apply_wall, apply_cpu = _timed(lambda: apply_lfs(lfs, candidates))
    assert not run.failures, run.failures
    model, fit_wall, fit_cpu = _timed(lambda: fit_label_model(run.matrix, len(run.labels)))
    coverage = float((run.matrix >= 0).any(axis=1).mean())
    total_cpu, total_wall = apply_cpu + fit_cpu, apply_wall + fit_wall
    print(f"{n:,} candidates x {len(lfs)} LFs (coverage {coverage:.2f}, {int((model.label >= 0).sum()):,} labelled)")
    print(f"  build candidates   {build_wall:6.2f} s wall {build_cpu:6.2f} s CPU")
    print(f"  apply LFs          {apply_wall:6.2f} s wall {apply_cpu:6.2f} s CPU")
    print(f"  label model (EM)   {fit_wall:6.2f} s wall {fit_cpu:6.2f} s CPU")
    print(f"  apply + label model {total_wall:5.2f} s wall {total_cpu:6.2f} s CPU (target < 10 s on one core)")
    return [
        _figure(f"{n} candidates x 20 LFs: apply (CPU)", apply_cpu, "s"),
        _figure(f"{n} candidates x 20 LFs: label model fit (CPU)", fit_cpu, "s"),
        _figure(f"{n} candidates x 20 LFs: apply + label model (CPU)", total_cpu, "s", "< 10 s", total_cpu < 10),
        _figure(f"{n} candidates x 20 LFs: apply + label model (wall)", total_wall, "s", "< 10 s", total_wall < 10),
    ]


def generated_votes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 20) votes over 3 labels from LFs of known accuracy and coverage, and the true labels."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    accuracy = np.linspace(0.55, 0.95, 20)
    coverage = rng.uniform(0.1, 0.6, 20)
    votes = np.full((n, 20), -1, dtype=np.int64)
    for j in range(20):
        on = rng.random(n) < coverage[j]
        right = rng.random(n) < accuracy[j]
        wrong = (truth + rng.integers(1, 3, n)) % 3
        votes[on, j] = np.where(right, truth, wrong)[on]
    return votes, truth


def bench_label_model(seeds: int = 5, n: int = 20_000) -> list[dict[str, Any]]:
    lm, mv = [], []
    for seed in range(seeds):
        votes, truth = generated_votes(n, seed)
        covered = (votes >= 0).any(axis=1)
        lm.append(float((fit_label_model(votes, 3).label[covered] == truth[covered]).mean()))
        mv.append(float((majority_vote(votes, 3, seed=seed)[covered] == truth[covered]).mean()))
    print(
        f"generated votes ({seeds} seeds x {n:,}): label model accuracy {np.mean(lm):.3f}, "
        f"majority vote {np.mean(mv):.3f}"
    )
    return [
        _figure("label model accuracy, generated LFs of known accuracy", np.mean(lm), "ratio"),
        _figure("majority vote accuracy, same votes", np.mean(mv), "ratio"),
    ]


def frame_1080p() -> np.ndarray:
    from skimage import data

    tiles = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    row = np.concatenate([t[:300, :480] for t in tiles], axis=1)  # 1920 wide
    return np.ascontiguousarray(np.concatenate([row, row, row, row[:180]], axis=0))  # 1080 high


def bench_pixels(repeats: int = 5) -> list[dict[str, Any]]:
    import cv2

    from cvat_ext.labeling_functions.pixels import pixel_stats

    rgb = frame_1080p()
    rng = np.random.default_rng(0)
    figures = []
    for n, n_masks in ((10, 0), (100, 0), (1000, 0), (100, 20)):
        xy = rng.uniform(0, [1800, 1000], size=(n, 2))
        xyxy = np.concatenate([xy, np.minimum(xy + rng.lognormal(4, 0.7, (n, 2)), [1920, 1080])], axis=1)
        masks: list[np.ndarray | None] = [None] * n
        for i in range(n_masks):
            x0, y0, x1, y1 = np.floor(xyxy[i, :2]).astype(int).tolist() + np.ceil(xyxy[i, 2:]).astype(int).tolist()
            ellipse = np.zeros((y1 - y0, x1 - x0), np.uint8)
            cv2.ellipse(ellipse, ((x1 - x0) // 2, (y1 - y0) // 2), ((x1 - x0) // 2, (y1 - y0) // 2), 0, 0, 360, 1, -1)
            masks[i] = ellipse.astype(bool)
        pixel_stats(rgb, xyxy, masks)  # warm-up (imports)
        walls, cpus = [], []
        for _ in range(repeats):
            _, wall, cpu = _timed(lambda xyxy=xyxy, masks=masks: pixel_stats(rgb, xyxy, masks))
            walls.append(wall)
            cpus.append(cpu)
        what = f"{n} boxes" + (f" ({n_masks} polygons)" if n_masks else "")
        print(f"colour features, 1920x1080 frame, {what}: {1000 * np.median(cpus):.0f} ms CPU, "
              f"{1000 * np.median(walls):.0f} ms wall (median of {repeats})")
        figures.append(_figure(f"colour features per 1920x1080 frame, {what} (CPU)", 1000 * np.median(cpus), "ms"))
    return figures


def bench_proposals() -> list[dict[str, Any]]:
    from skimage import data

    from cvat_ext.labeling_functions.prelabel import LfPrelabeller
    from cvat_ext.labeling_functions.proposals import STRATEGIES, colour_regions, hierarchical_proposals
    from cvat_ext.models.superpixels import SCALES, segment_frame

    objects = json.loads((ROOT / "tests" / "data" / "labeling_functions" / "objects.json").read_text())["images"]
    methods: dict[str, Any] = {
        "colour regions (previous)": lambda spx: colour_regions(spx),
        "hierarchy, contrast >= 0": lambda spx: hierarchical_proposals(
            spx, strategies=STRATEGIES[:1], max_rel_area=0.5
        ),
        "hierarchy, contrast >= 8": lambda spx: hierarchical_proposals(
            spx, strategies=STRATEGIES[:1], max_rel_area=0.5, min_contrast=8
        ),
        "hierarchy, contrast >= 12": lambda spx: hierarchical_proposals(
            spx, strategies=STRATEGIES[:1], max_rel_area=0.5, min_contrast=12
        ),
        "hierarchy x2 strategies, contrast >= 8": lambda spx: hierarchical_proposals(
            spx, max_rel_area=0.5, min_contrast=8
        ),
    }
    figures = []
    for scale in ("coarse", "fine"):
        maps = []
        for image in objects:
            rgb = np.asarray(getattr(data, image["source"])())
            rgb = np.ascontiguousarray(np.stack([rgb] * 3, axis=-1) if rgb.ndim == 2 else rgb[..., :3])
            gt = np.asarray([o["xyxy"] for o in image["objects"]], dtype=np.float64)
            maps.append((segment_frame(rgb, SCALES[scale]), gt))
        for name, method in methods.items():
            hits = total = count = 0
            cpu = 0.0
            for spx, gt in maps:
                props, _, dt = _timed(lambda spx=spx, method=method: method(spx))
                cpu += dt
                lt = np.maximum(gt[:, None, :2], props.xyxy[None, :, :2])
                rb = np.minimum(gt[:, None, 2:], props.xyxy[None, :, 2:])
                inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
                union = np.prod(gt[:, 2:] - gt[:, :2], axis=1)[:, None] + np.prod(
                    props.xyxy[:, 2:] - props.xyxy[:, :2], axis=1
                )[None, :]
                hits += int(((inter / (union - inter)).max(axis=1) >= 0.5).sum())
                total, count = total + len(gt), count + len(props)
            label = f"proposals, {scale} superpixels, {name}"
            print(f"{label}: recall {hits}/{total} at IoU >= 0.5, {count / len(maps):.0f} proposals/photo, "
                  f"{1000 * cpu / len(maps):.0f} ms CPU/photo")
            figures.append(_figure(f"{label}: recall at IoU >= 0.5", hits / total, "ratio"))
            figures.append(_figure(f"{label}: proposals per photo", count / len(maps), "count"))
    lfs = load_lfs([PACKS / "vehicles.yaml", PACKS / "street_python.py"])
    prelabel = LfPrelabeller(lfs)
    rgb = frame_1080p()
    prelabel(rgb)
    dets, wall, cpu = _timed(lambda: prelabel(rgb))
    print(f"pre-label call, 1920x1080 frame: {1000 * cpu:.0f} ms CPU, {1000 * wall:.0f} ms wall, {len(dets)} labels")
    figures.append(_figure("pre-label detector call, 1920x1080 frame (CPU)", 1000 * cpu, "ms"))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    args = parser.parse_args()
    figures = bench_throughput(args.n) + bench_label_model() + bench_pixels() + bench_proposals()
    results = BenchResults(__file__)
    results.add_all(figures)
    results.write()


if __name__ == "__main__":
    main()

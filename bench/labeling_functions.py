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

    python3 bench/labeling_functions.py [--n 1000000]
"""

from __future__ import annotations

import argparse
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


def _extra_pack(folder: Path) -> Path:
    lines = ["labels: [vehicle, person, sign]", "functions:"]
    for k, (feature, op, value) in enumerate(FEATURE_RULES):
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
    with tempfile.TemporaryDirectory() as tmp:
        lfs = load_lfs([PACKS / "vehicles.yaml", PACKS / "street_python.py", _extra_pack(Path(tmp))])
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    args = parser.parse_args()
    figures = bench_throughput(args.n) + bench_label_model()
    results = BenchResults(__file__)
    results.add_all(figures)
    results.write()


if __name__ == "__main__":
    main()

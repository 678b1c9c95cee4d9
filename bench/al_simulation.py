"""How many labels each active-learning strategy needs, on simulated pools with a known oracle.

    python3 bench/al_simulation.py [--seeds 8] [--batch 20] [--pool 3000]

The pool is a stream of video-like *bursts*: each burst is one scene filmed for ``burst`` frames,
so its frames are near-duplicates (the same point in feature space plus small noise). The oracle
labels a frame by a known curved boundary, with 3 % label noise. The "model" is a logistic
regression on quadratic features, retrained after every round of ``--batch`` labels; its
uncertainty on a frame is the binary entropy of its probability (what the round's uncertainty
signal computes from detector scores). Strategies, each starting from the same random batch:

* ``random``: frames drawn uniformly from the unlabelled pool;
* ``uncertainty``: the ``batch`` most uncertain frames;
* ``uncertainty+diversity``: the round's own selection (``select_diverse``, diversity 0.5, over the
  ``4 x batch`` most uncertain, on the frames' features), as ``cvat-ext al round`` does.

Printed per burst length: test accuracy after each number of labels (mean over seeds), and the
labels each strategy needs to reach 98 % of the accuracy of a model trained on the whole pool
("target"). What this shows and what it does not: the benefit depends on how redundant the pool is
(burst 1 = no near-duplicates). A real detector's errors are not a logistic model's; treat the
figures as the mechanism working on a controlled problem, not as a promise on your data.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from results_io import BenchResults

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cvat_ext.active_learning.diversity import select_diverse  # noqa: E402
from cvat_ext.active_learning.signals import binary_entropy  # noqa: E402

STRATEGIES = ("random", "uncertainty", "uncertainty+diversity")


def make_pool(n: int, burst: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``x (n, 2)`` frames in bursts of near-duplicates, ``y (n,)`` oracle labels (3 % flipped)."""
    centers = rng.uniform(-2.0, 2.0, size=(-(-n // burst), 2))
    x = np.repeat(centers, burst, axis=0)[:n] + rng.normal(0, 0.03, size=(n, 2))
    boundary = 0.6 * x[:, 0] ** 2 + 0.4 * np.sin(2.0 * x[:, 1]) - 0.8 - 0.3 * x[:, 1]
    y = (boundary > 0).astype(np.float64)
    flip = rng.random(n) < 0.03
    y[flip] = 1 - y[flip]
    return x, y


def quad(x: np.ndarray) -> np.ndarray:
    return np.column_stack([np.ones(len(x)), x, x**2, x[:, :1] * x[:, 1:], np.sin(2 * x[:, 1:])])


def fit(x: np.ndarray, y: np.ndarray, l2: float = 1e-2) -> np.ndarray:
    """Logistic regression by Newton's method (L2-regularised)."""
    a = quad(x)
    w = np.zeros(a.shape[1])
    for _ in range(25):
        p = 1 / (1 + np.exp(-np.clip(a @ w, -30, 30)))
        grad = a.T @ (p - y) + l2 * w
        hess = (a * (p * (1 - p))[:, None]).T @ a + l2 * np.eye(a.shape[1])
        w -= np.linalg.solve(hess, grad)
    return w


def predict(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-np.clip(quad(x) @ w, -30, 30)))


def pick(strategy: str, p: np.ndarray, x: np.ndarray, free: np.ndarray, batch: int,
         rng: np.random.Generator) -> np.ndarray:
    if strategy == "random":
        return rng.choice(free, size=min(batch, len(free)), replace=False)
    h = binary_entropy(p[free])
    order = np.lexsort((free, -h))
    if strategy == "uncertainty":
        return free[order[:batch]]
    cand = free[order[: 4 * batch]]
    return cand[select_diverse(h[order[: 4 * batch]], x[cand], batch, diversity=0.5)]


def run(strategy: str, x: np.ndarray, y: np.ndarray, xt: np.ndarray, yt: np.ndarray, batch: int, rounds: int,
        seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    labelled = rng.choice(len(x), size=batch, replace=False)
    curve = []
    for _ in range(rounds):
        w = fit(x[labelled], y[labelled])
        curve.append(float(np.mean((predict(w, xt) > 0.5) == yt)))
        free = np.setdiff1d(np.arange(len(x)), labelled)
        labelled = np.concatenate([labelled, pick(strategy, predict(w, x), x, free, batch, rng)])
    return curve


def labels_to_reach(curve: np.ndarray, target: float, batch: int) -> int | None:
    hit = np.flatnonzero(curve >= target)
    return int((hit[0] + 1) * batch) if len(hit) else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--pool", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    results = BenchResults(__file__, note=f"pool {args.pool}, batch {args.batch}, {args.rounds} rounds, "
                                          f"{args.seeds} seeds")
    for burst in (1, 10, 30):
        curves = {s: [] for s in STRATEGIES}
        targets = []
        for seed in range(args.seeds):
            rng = np.random.default_rng(1000 * burst + seed)
            x, y = make_pool(args.pool, burst, rng)
            xt, yt = make_pool(4000, 1, rng)
            full = float(np.mean((predict(fit(x, y), xt) > 0.5) == yt))
            targets.append(0.98 * full)
            for s in STRATEGIES:
                curves[s].append(run(s, x, y, xt, yt, args.batch, args.rounds, seed))
        target = float(np.mean(targets))
        print(f"\nburst {burst} (frames per scene), pool {args.pool}, batch {args.batch}, {args.seeds} seeds; "
              f"target accuracy {target:.3f} (98 % of the whole-pool model)")
        labels = [args.batch * (r + 1) for r in range(args.rounds)]
        shown = [i for i in range(args.rounds) if i in (0, 1, 2, 4, 6, 9, args.rounds - 1)]
        print(f"{'strategy':<24}" + "".join(f"{labels[i]:>7}" for i in shown) + "   labels to target")
        for s in STRATEGIES:
            mean = np.mean(curves[s], axis=0)
            need = [labels_to_reach(np.array(c), t, args.batch) for c, t in zip(curves[s], targets)]
            # a seed that never reached the target counts as needing more than the run gave it
            median = float(np.median([np.inf if n is None else n for n in need]))
            reached = sum(n is not None for n in need)
            need_txt = (f"{median:.0f}" if np.isfinite(median) else f"> {labels[-1]}") + \
                f" (median over seeds; {reached}/{len(need)} reached it)"
            print(f"{s:<24}" + "".join(f"{mean[i]:>7.3f}" for i in shown) + f"   {need_txt}")
            if np.isfinite(median):
                results.add(f"burst {burst}: {s}, labels to 98 % of whole-pool accuracy", median, "labels")
            else:  # the median seed never got there: the run's whole budget is a lower bound
                results.add(f"burst {burst}: {s}, labels to 98 % of whole-pool accuracy (not reached; more than)",
                            labels[-1], "labels")
            results.add(f"burst {burst}: {s}, accuracy after {labels[4]} labels", float(mean[4]), "accuracy")
    results.write()


if __name__ == "__main__":
    main()

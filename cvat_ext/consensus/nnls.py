"""Non-negative least squares for the annotator model's small systems, in NumPy.

``scipy.optimize.nnls`` would import ``scipy.optimize``'s package (about 0.3 s before the first
frame is scored, :mod:`cvat_ext.consensus.assignment`); the noise fits solve systems of at most
``2R`` unknowns, for which the Lawson–Hanson active-set method takes a few NumPy solves.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def nnls(a: FloatArray, y: FloatArray, *, tol: float = 1e-12) -> FloatArray:
    """``argmin ||a x - y||`` subject to ``x >= 0``; ``a (M, N)``, ``y (M,)`` -> ``x (N,)``.

    Lawson & Hanson (1974): move the variable with the largest gradient into the free set, solve
    the free least squares, and step back along the segment while any free variable would turn
    negative."""
    a = np.asarray(a, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = a.shape[1]
    x = np.zeros(n)
    free = np.zeros(n, dtype=bool)
    for _ in range(3 * n + 10):
        grad = a.T @ (y - a @ x)
        candidates = np.where(~free & (grad > tol), grad, -np.inf)
        if not np.isfinite(candidates.max(initial=-np.inf)):
            break
        free[int(np.argmax(candidates))] = True
        while True:
            z = np.zeros(n)
            z[free], *_ = np.linalg.lstsq(a[:, free], y, rcond=None)
            if np.all(z[free] > tol):
                x = z
                break
            # step back to the first free variable that would go negative, and release it
            neg = free & (z <= tol)
            step = np.min(x[neg] / np.maximum(x[neg] - z[neg], 1e-300))
            x = x + step * (z - x)
            free &= x > tol
            x[~free] = 0.0
    return x

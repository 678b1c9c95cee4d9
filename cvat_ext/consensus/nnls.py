"""Non-negative least squares, ``argmin_x ||A x - b||`` subject to ``x >= 0``, in NumPy.

The annotator noise fits solve problems of a few to a few tens of columns; SciPy's ``nnls`` would
import ``scipy.optimize`` (and with it ``scipy.linalg``, ``fft`` and ``special``: about 0.3 s of
start-up, see :mod:`cvat_ext.consensus.assignment`). This is the Lawson–Hanson active-set method:
move the column with the largest gradient into the passive set, solve the unconstrained problem on
the passive set, and step back towards the previous point while any passive coefficient would go
negative.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["nnls", "scaled_nnls"]

FloatArray = npt.NDArray[np.float64]


def nnls(a: npt.ArrayLike, b: npt.ArrayLike, *, max_iter: int | None = None) -> tuple[FloatArray, float]:
    """``(x, ||A x - b||)`` with ``x (n,) >= 0`` for ``a (m, n)``, ``b (m,)``."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    m, n = a.shape
    x = np.zeros(n)
    passive = np.zeros(n, dtype=bool)
    tol = 10 * np.finfo(np.float64).eps * max(m, n) * max(float(np.abs(a).max(initial=0.0)), 1.0)
    for _ in range(max_iter if max_iter is not None else 3 * n + 10):
        grad = a.T @ (b - a @ x)
        free = ~passive & (grad > tol)
        if not free.any():
            break
        passive[np.flatnonzero(free)[np.argmax(grad[free])]] = True
        while True:
            z = np.zeros(n)
            z[passive] = np.linalg.lstsq(a[:, passive], b, rcond=None)[0]
            if (z[passive] > tol).all():
                x = z
                break
            # step from x towards z until the first passive coefficient reaches zero, drop those
            shrink = passive & (z <= tol)
            alpha = np.min(x[shrink] / np.maximum(x[shrink] - z[shrink], 1e-300))
            x = x + alpha * (z - x)
            passive &= x > tol
            x[~passive] = 0.0
    return x, float(np.linalg.norm(a @ x - b))


def scaled_nnls(a: npt.ArrayLike, b: npt.ArrayLike) -> FloatArray:
    """:func:`nnls`'s ``x`` with the columns of ``a`` scaled to a largest magnitude of 1 first (and
    ``x`` scaled back): the noise fits' columns differ by orders of magnitude (px^2 against
    relative units), which the active set's tolerance would otherwise read unevenly."""
    a = np.asarray(a, dtype=np.float64)
    scale = np.maximum(np.abs(a).max(axis=0), 1e-12)
    x, _ = nnls(a / scale, b)
    return np.asarray(x / scale, dtype=np.float64)

"""``linear_sum_assignment`` (the Hungarian solver) without importing ``scipy.optimize``.

The solver is SciPy's compiled ``scipy/optimize/_lsap`` module. Importing it the usual way runs
``scipy.optimize``'s package init, which imports ``scipy.linalg``, ``scipy.fft`` and
``scipy.special``: about 0.3 s before the first frame is scored, a tenth of a 10,000-frame boxes
run (bench/consensus_e2e.py). The compiled module needs none of them, so it is loaded from its file
directly; if SciPy's layout ever differs, the public import is used.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["linear_sum_assignment"]

_NAME = "scipy.optimize._lsap"
Solver = Callable[..., tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]]


def _load() -> Solver:
    module: Any = sys.modules.get(_NAME)
    if module is None:
        import scipy

        folder = Path(scipy.__file__).parent / "optimize"
        found = [folder / f"_lsap{suffix}" for suffix in importlib.machinery.EXTENSION_SUFFIXES]
        found = [p for p in found if p.is_file()]
        if not found:
            from scipy.optimize import linear_sum_assignment as public

            return public
        loader = importlib.machinery.ExtensionFileLoader(_NAME, str(found[0]))
        spec = importlib.util.spec_from_file_location(_NAME, found[0], loader=loader)
        assert spec is not None
        module = importlib.util.module_from_spec(spec)
        loader.exec_module(module)
    return module.linear_sum_assignment


linear_sum_assignment: Solver = _load()

"""Loading LF packs and applying them: the (N, M) label matrix, with failing LFs reported and skipped.

``L[i, j]`` is LF j's vote on candidate i: a label index or -1 (abstain). An LF that raises, or
returns anything but (N,) integers in ``-1 .. K-1``, is recorded in :attr:`LfRun.failures` with its
name and the reason; its column is all -1 and the run continues with the others.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from cvat_ext.errors import ConfigError
from cvat_ext.labeling_functions.candidates import Candidates
from cvat_ext.labeling_functions.functions import ABSTAIN, LabelingFunction, Target, labels_in_scope

__all__ = ["LfFailure", "LfRun", "apply_lfs", "by_target", "load_lfs"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LfFailure:
    name: str
    reason: str


@dataclass(frozen=True)
class LfRun:
    """``matrix`` (N, M) int8 votes (-1 abstain); ``names`` the M LFs; ``labels`` the label space."""

    matrix: npt.NDArray[np.int8]
    names: tuple[str, ...]
    labels: tuple[str, ...]
    failures: tuple[LfFailure, ...]


def _check_votes(raw: object, n: int, k: int) -> npt.NDArray[np.int8]:
    votes = np.asarray(raw)
    if votes.shape != (n,):
        raise ValueError(f"returned shape {votes.shape}, expected ({n},)")
    if votes.dtype.kind not in "iu":
        raise ValueError(f"returned dtype {votes.dtype}, expected integers")
    if votes.size and (int(votes.min()) < ABSTAIN or int(votes.max()) >= k):
        raise ValueError(f"returned votes outside -1..{k - 1} (min {int(votes.min())}, max {int(votes.max())})")
    return votes.astype(np.int8, copy=False)


def apply_lfs(lfs: Sequence[LabelingFunction], candidates: Candidates) -> LfRun:
    """Run every LF over all candidates (one vectorised call each)."""
    if not lfs:
        raise ConfigError("labeling functions: none given")
    labels = lfs[0].labels
    for lf in lfs:
        if lf.target != lfs[0].target:
            raise ConfigError(
                f"labeling function {lf.name!r}: votes on {lf.target}s, {lfs[0].name!r} on {lfs[0].target}s; "
                "apply each target's LFs separately (by_target)"
            )
        if lf.labels != labels:
            raise ConfigError(
                f"labeling function {lf.name!r}: label space {list(lf.labels)} differs from {list(labels)}"
            )
    if len(labels) > 127:
        raise ConfigError(f"labeling functions: {len(labels)} labels, at most 127")
    n = len(candidates)
    matrix = np.full((n, len(lfs)), ABSTAIN, dtype=np.int8)
    failures = []
    for j, lf in enumerate(lfs):
        try:
            with labels_in_scope(labels):
                matrix[:, j] = _check_votes(lf(candidates), n, len(labels))
        except Exception as exc:  # an LF is user code: any failure is reported, never fatal
            reason = f"{type(exc).__name__}: {exc}"
            logger.warning("labeling function %s failed and is skipped: %s", lf.name, reason)
            failures.append(LfFailure(lf.name, reason))
    return LfRun(matrix, tuple(lf.name for lf in lfs), labels, tuple(failures))


def by_target(lfs: Sequence[LabelingFunction]) -> dict[Target, list[LabelingFunction]]:
    """The LFs grouped by what they vote on (objects, images), each group in load order; a target
    no LF has is absent. Each group has its own label space (object labels, tag labels)."""
    groups: dict[Target, list[LabelingFunction]] = {}
    for lf in lfs:
        groups.setdefault(lf.target, []).append(lf)
    return groups


def _load_python(path: Path) -> list[LabelingFunction]:
    module_name = f"cvat_ext_lf_pack_{abs(hash(path.resolve()))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ConfigError(f"{path}: import failed ({type(exc).__name__}: {exc})") from exc
    found = [
        dataclasses.replace(v, source=f"python:{path.name}")
        for v in vars(module).values()
        if isinstance(v, LabelingFunction)
    ]
    if not found:
        raise ConfigError(f"{path}: no @labeling_function in it")
    return found


def load_lfs(paths: Sequence[str | Path]) -> list[LabelingFunction]:
    """LFs from YAML heuristics (.yaml/.yml) and Python modules (.py), in order; names must be unique."""
    from cvat_ext.labeling_functions.heuristics import load_heuristics

    lfs: list[LabelingFunction] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_file():
            raise ConfigError(f"{path}: no such LF file")
        if path.suffix.lower() in (".yaml", ".yml"):
            lfs += load_heuristics(path)
        elif path.suffix.lower() == ".py":
            lfs += _load_python(path)
        else:
            raise ConfigError(f"{path}: expected a .yaml heuristics file or a .py module of labeling functions")
    names = [lf.name for lf in lfs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"labeling functions: duplicate names {duplicates}")
    return lfs

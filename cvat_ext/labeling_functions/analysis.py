"""The LF analysis table: coverage, overlap, conflict and (with gold labels) empirical accuracy.

Per LF j over N candidates, from the (N, M) vote matrix (-1 = abstain):

* ``coverage``: share of candidates LF j votes on;
* ``overlap``: share of candidates LF j votes on where at least one other LF votes too;
* ``conflict``: share of candidates LF j votes on where another LF votes a different label;
* ``accuracy``: share of LF j's votes equal to the gold label, over candidates that have one
  (e.g. matched to the task's ground-truth job); NaN without gold or votes there;
* ``votes_gold``: how many of LF j's votes had a gold label to check against.

Shares of overlap/conflict are over all N candidates (Snorkel's convention), so coverage >=
overlap >= conflict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["LfStats", "analyse", "format_table"]


@dataclass(frozen=True)
class LfStats:
    name: str
    labels: tuple[str, ...]  # the labels it voted for
    coverage: float
    overlap: float
    conflict: float
    accuracy: float
    votes_gold: int


def analyse(
    matrix: npt.ArrayLike,
    names: Sequence[str],
    labels: Sequence[str],
    gold: npt.ArrayLike | None = None,
) -> list[LfStats]:
    """One :class:`LfStats` per LF column (vectorised over candidates)."""
    votes = np.asarray(matrix, dtype=np.int64)
    n = max(votes.shape[0], 1)
    voted = votes >= 0
    n_voting = voted.sum(axis=1)
    # another LF disagrees with j on row i iff the row holds a label other than j's among its votes
    big = np.where(voted, votes, np.iinfo(np.int64).max)
    small = np.where(voted, votes, -1)
    row_min, row_max = big.min(axis=1), small.max(axis=1)
    gold_arr = None if gold is None else np.asarray(gold, dtype=np.int64)
    out = []
    for j, name in enumerate(names):
        vj = voted[:, j]
        others = n_voting - vj
        disagree = vj & ((row_min != votes[:, j]) | (row_max != votes[:, j]))
        accuracy, checked = float("nan"), 0
        if gold_arr is not None:
            check = vj & (gold_arr >= 0)
            checked = int(check.sum())
            if checked:
                accuracy = float((votes[check, j] == gold_arr[check]).mean())
        used = np.unique(votes[vj, j])
        out.append(
            LfStats(
                name,
                tuple(labels[int(k)] for k in used),
                float(vj.sum() / n),
                float((vj & (others > 0)).sum() / n),
                float(disagree.sum() / n),
                accuracy,
                checked,
            )
        )
    return out


def format_table(stats: Sequence[LfStats]) -> str:
    """A plain-text table, one row per LF."""
    head = (
        f"{'labeling function':<32} {'labels':<18} {'coverage':>8} {'overlap':>8} {'conflict':>8} "
        f"{'accuracy':>8} {'n_gold':>7}"
    )
    rows = [head, "-" * len(head)]
    for s in stats:
        acc = "-" if np.isnan(s.accuracy) else f"{s.accuracy:.3f}"
        rows.append(
            f"{s.name[:32]:<32} {','.join(s.labels)[:18]:<18} {s.coverage:8.3f} {s.overlap:8.3f} {s.conflict:8.3f} "
            f"{acc:>8} {s.votes_gold:7d}"
        )
    return "\n".join(rows)

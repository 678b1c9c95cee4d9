"""Chance-corrected agreement: Krippendorff's alpha for nominal data, streamable.

Localise-then-label (the KαLOS idea): each cluster of matched objects is a *unit*, each annotator a
*coder*, and a coder's value is the label it gave, or the category "not annotated" when it has no
member in the cluster. Nominal alpha over these values measures agreement on *whether* and *as
what* an object was annotated, corrected for chance. ``alpha_label`` drops the "not annotated"
values and measures label agreement on what was localised.

alpha = 1 - D_o / D_e with, over pairable units u (m_u >= 2 values) and value counts n_uc:
D_o ~ sum_u (m_u^2 - sum_c n_uc^2) / (m_u - 1) and D_e ~ (n^2 - sum_c n_c^2) / (n - 1),
n_c = sum_u n_uc, n = sum_c n_c (Krippendorff 2011, "Computing Krippendorff's alpha-reliability").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cvat_ext.consensus.batch import IntArray

#: value code for "this coder gave no value" (not pairable)
NO_VALUE = -1


@dataclass
class AlphaAccumulator:
    """Running sums for nominal Krippendorff alpha; add units chunk by chunk."""

    observed: float = 0.0
    value_counts: dict[int, int] = field(default_factory=dict)

    def add(self, values: IntArray) -> None:
        """Add units: ``values`` (U, C) int value codes, :data:`NO_VALUE` where a coder gave none."""
        values = np.asarray(values, dtype=np.int64)
        if values.size == 0:
            return
        codes, inverse = np.unique(values, return_inverse=True)
        inverse = inverse.reshape(values.shape)
        counts = np.zeros((values.shape[0], codes.size), dtype=np.int64)
        rows = np.repeat(np.arange(values.shape[0]), values.shape[1])
        np.add.at(counts, (rows, inverse.ravel()), 1)
        keep_cols = codes != NO_VALUE
        counts = counts[:, keep_cols]
        codes = codes[keep_cols]
        m_u = counts.sum(axis=1)
        pairable = m_u >= 2
        counts = counts[pairable]
        m_u = m_u[pairable]
        if m_u.size == 0:
            return
        self.observed += float(((m_u**2 - (counts**2).sum(axis=1)) / (m_u - 1)).sum())
        for code, n in zip(codes.tolist(), counts.sum(axis=0).tolist(), strict=True):
            if n:
                self.value_counts[code] = self.value_counts.get(code, 0) + n

    @property
    def n_values(self) -> int:
        return sum(self.value_counts.values())

    def alpha(self) -> float:
        """Nominal alpha; NaN when undefined (fewer than 2 pairable values or a single category)."""
        n_c = np.array(list(self.value_counts.values()), dtype=np.float64)
        n = n_c.sum()
        if n < 2:
            return float("nan")
        expected = (n * n - (n_c**2).sum()) / (n - 1)
        if expected <= 0:
            return float("nan")
        return float(1.0 - self.observed / expected)

    def merge(self, other: AlphaAccumulator) -> None:
        self.observed += other.observed
        for code, n in other.value_counts.items():
            self.value_counts[code] = self.value_counts.get(code, 0) + n


def krippendorff_alpha_nominal(values: IntArray) -> float:
    """Nominal alpha of ``values`` (U units, C coders), :data:`NO_VALUE` for missing values."""
    acc = AlphaAccumulator()
    acc.add(values)
    return acc.alpha()


def safe_ratio(num: float, den: float) -> float:
    """``num / den``, NaN when ``den`` is 0."""
    return num / den if den else float("nan")

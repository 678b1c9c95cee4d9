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

from cvat_ext.consensus.batch import BoolArray, FloatArray, IntArray
from cvat_ext.consensus.small_axis import row_sum

#: value code for "this coder gave no value" (not pairable)
NO_VALUE = -1


def unit_terms(values: IntArray) -> tuple[FloatArray, BoolArray]:
    """Per unit of ``values (U, C)``: its observed-disagreement term
    ``(m_u^2 - sum_c n_uc^2) / (m_u - 1)`` and whether it is pairable (``m_u >= 2``).

    ``sum_c n_uc^2 = m_u + 2 * (coder pairs with equal values)``, so no per-unit histogram is needed.
    """
    values = np.asarray(values, dtype=np.int64)
    valued = values != NO_VALUE
    m = row_sum(valued)
    equal = np.zeros(values.shape[0], dtype=np.int64)
    for i in range(values.shape[1]):
        for j in range(i + 1, values.shape[1]):
            equal += (values[:, i] == values[:, j]) & valued[:, i] & valued[:, j]
    pairable = m >= 2
    observed = np.where(pairable, (m * m - (m + 2 * equal)) / np.maximum(m - 1, 1), 0.0)
    return observed, pairable


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
        observed, pairable = unit_terms(values)
        kept = values[pairable]
        codes, counts = np.unique(kept[kept != NO_VALUE], return_counts=True)
        self.add_terms(float(observed.sum()), codes, counts)

    def add_terms(self, observed: float, codes: IntArray, counts: IntArray) -> None:
        """Add precomputed sums: the units' observed terms and the pairable value counts."""
        self.observed += observed
        for code, n in zip(codes.tolist(), counts.tolist(), strict=True):
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


def add_grouped(accumulators: dict[int, AlphaAccumulator], values: IntArray, group: IntArray) -> None:
    """Add units ``values (U, C)`` to per-group accumulators, ``group (U,)`` the group id of each unit."""
    if values.shape[0] == 0:
        return
    observed, pairable = unit_terms(values)
    groups, inverse = np.unique(group, return_inverse=True)
    obs_sum = np.bincount(inverse, weights=observed, minlength=groups.size)
    # value counts per (group, value) with one sort: key = group position * span + value offset
    vals = values[pairable]
    owner = np.broadcast_to(inverse[pairable][:, None], vals.shape)
    valued = vals != NO_VALUE
    low = int(vals.min()) if vals.size else 0
    span = (int(vals.max()) - low + 1) if vals.size else 1
    keys, counts = np.unique(owner[valued] * span + (vals[valued] - low), return_counts=True)
    key_group = keys // span
    for g, gid in enumerate(groups.tolist()):
        sel = key_group == g
        acc = accumulators.setdefault(gid, AlphaAccumulator())
        acc.add_terms(float(obs_sum[g]), keys[sel] % span + low, counts[sel])


def krippendorff_alpha_nominal(values: IntArray) -> float:
    """Nominal alpha of ``values`` (U units, C coders), :data:`NO_VALUE` for missing values."""
    acc = AlphaAccumulator()
    acc.add(values)
    return acc.alpha()


def safe_ratio(num: float, den: float) -> float:
    """``num / den``, NaN when ``den`` is 0."""
    return num / den if den else float("nan")

"""Labeling functions (LFs): the Python decorator and the contract every LF keeps.

An LF looks at all candidates at once and returns, per candidate, the index of the label it votes
for in the label space, or :data:`ABSTAIN` (-1)::

    from cvat_ext.labeling_functions import ABSTAIN, labeling_function, vote

    @labeling_function(labels=["vehicle", "person", "sign"])
    def big_rectangle_is_vehicle(c):
        # "if the object is rectangular and larger than X pixels, label as vehicle"
        return vote(c, (c.feature("fill") > 0.9) & (c.feature("area") > 5000), "vehicle")

Vectorised on purpose: one call per LF over N candidates (numpy on columns) is what lets 20 LFs
label a million candidates in seconds; a per-object Python function would take minutes. The
returned array must be (N,) integers in ``-1 .. len(labels) - 1``; anything else is reported as
that LF's failure (:mod:`cvat_ext.labeling_functions.apply`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

from cvat_ext.errors import ConfigError

if TYPE_CHECKING:
    from cvat_ext.labeling_functions.candidates import Candidates

__all__ = ["ABSTAIN", "TARGETS", "LabelingFunction", "Target", "labeling_function", "vote"]

ABSTAIN = -1
Votes = npt.NDArray[np.int64]
#: what an LF votes on: candidate objects (shapes, proposals) or whole images (CVAT tags)
Target = Literal["object", "image"]
TARGETS: tuple[Target, ...] = ("object", "image")


@dataclass(frozen=True)
class LabelingFunction:
    """``fn(candidates) -> (N,) votes``; ``labels`` the label space it votes in (names, in order);
    ``target`` whether its candidates are objects or whole images (its votes then become tags)."""

    name: str
    fn: Callable[[Candidates], npt.ArrayLike]
    labels: tuple[str, ...]
    source: str = "python"
    target: Target = "object"

    def __call__(self, candidates: Candidates) -> npt.ArrayLike:
        return self.fn(candidates)


def labeling_function(
    *, labels: Sequence[str], name: str | None = None, target: Target = "object"
) -> Callable[[Callable[[Candidates], npt.ArrayLike]], LabelingFunction]:
    """Decorator: turn ``fn(candidates) -> votes`` into a :class:`LabelingFunction`.

    ``target="image"``: the LF votes on whole images (one candidate per frame) and its labels are
    tags; ``"object"`` (default): on candidate objects.
    """
    if not labels or len(set(labels)) != len(labels):
        raise ConfigError(f"labeling function: labels must be unique and non-empty, got {list(labels)}")
    if target not in TARGETS:
        raise ConfigError(f"labeling function: target must be one of {list(TARGETS)}, got {target!r}")

    def wrap(fn: Callable[[Candidates], npt.ArrayLike]) -> LabelingFunction:
        return LabelingFunction(name or fn.__name__, fn, tuple(labels), source=f"python:{fn.__module__}", target=target)

    return wrap


def vote(candidates: Candidates | int, where: npt.ArrayLike, label: str | int, *, labels: Sequence[str] = ()) -> Votes:
    """(N,) votes: ``label`` where ``where`` is True, ABSTAIN elsewhere.

    ``label`` is an index, or a name looked up in ``labels`` (or in the label space the LF was
    declared with, when called inside one: pass ``labels`` explicitly outside).
    """
    mask = np.asarray(where, dtype=bool)
    n = candidates if isinstance(candidates, int) else len(candidates)
    if mask.shape != (n,):
        raise ValueError(f"vote: expected a ({n},) mask, got {mask.shape}")
    if isinstance(label, str):
        space = list(labels) or list(_current_labels())
        if label not in space:
            raise ValueError(f"vote: label {label!r} is not in the label space {space}")
        label = space.index(label)
    return np.where(mask, np.int64(label), np.int64(ABSTAIN))


# the label space of the LF being applied, so vote(c, mask, "vehicle") works inside an LF
_LABELS_STACK: list[tuple[str, ...]] = []


def _current_labels() -> tuple[str, ...]:
    return _LABELS_STACK[-1] if _LABELS_STACK else ()


class labels_in_scope:
    """``with labels_in_scope(lf.labels): lf(c)`` lets ``vote`` resolve names."""

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels = tuple(labels)

    def __enter__(self) -> None:
        _LABELS_STACK.append(self.labels)

    def __exit__(self, *exc: object) -> None:
        _LABELS_STACK.pop()

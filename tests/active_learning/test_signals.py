"""Per-frame signals: hand-computed tables and a naive per-object reference on random inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvat_ext.active_learning.signals import (
    ConsensusFrames,
    FindingCounts,
    FrameSet,
    Prelabels,
    Signal,
    UncertaintyParams,
    binary_entropy,
    disagreement_signal,
    findings_signal,
    uncertainty_signal,
)
from cvat_ext.errors import ConfigError
from tests.active_learning.helpers import detections, frames

# H(0.9) = -(0.9 log2 0.9 + 0.1 log2 0.1)
H09 = -(0.9 * math.log2(0.9) + 0.1 * math.log2(0.1))  # 0.468996
H075 = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))  # 0.811278


@pytest.mark.parametrize(
    ("p", "expected"),
    [(0.0, 0.0), (1.0, 0.0), (0.5, 1.0), (0.9, H09), (0.1, H09), (0.75, H075), (0.25, H075)],
)
def test_binary_entropy(p: float, expected: float) -> None:
    assert binary_entropy(np.array([p]))[0] == pytest.approx(expected, abs=1e-12)


def test_binary_entropy_known_decimals() -> None:
    assert binary_entropy([0.9, 0.75]) == pytest.approx([0.4689955935892812, 0.8112781244591328])


# frame 0: scores 0.9, 0.5 -> H max 1, mean (H09 + 1)/2, ambiguous 1/2
# frame 1: no detections -> prior
# frame 2: 0.75 -> H075, ambiguous 0 (band 0.3..0.7)
# frame 3: 1.0, 1.0 -> all zero
CASES = [
    (
        "default mix",
        UncertaintyParams(),
        [(1.0 + (H09 + 1.0) / 2 + 0.5) / 3, 0.5, (H075 + H075 + 0.0) / 3, 0.0],
    ),
    ("max only, prior 1", UncertaintyParams(mix=(1, 0, 0), empty_prior=1.0), [1.0, 1.0, H075, 0.0]),
    ("band only, wide band", UncertaintyParams(mix=(0, 0, 1), band=(0.5, 0.8), empty_prior=0.0), [0.5, 0.0, 1.0, 0.0]),
]


@pytest.mark.parametrize(("name", "params", "expected"), CASES, ids=[c[0] for c in CASES])
def test_uncertainty_table(name: str, params: UncertaintyParams, expected: list[float]) -> None:
    det = detections([(0, 0.9), (2, 0.75), (0, 0.5), (3, 1.0), (3, 1.0)])
    sig = uncertainty_signal(frames(4), det, params)
    assert sig.name == "uncertainty"
    assert sig.value == pytest.approx(expected, abs=1e-12)
    assert sig.details["detections"].tolist() == [2, 0, 1, 2]
    assert sig.details["entropy_max"] == pytest.approx([1.0, 0.0, H075, 0.0])


def test_uncertainty_ignores_detections_outside_the_frames() -> None:
    det = detections([(99, 0.5), (-1, 0.5), (5, 0.5)])
    sig = uncertainty_signal(frames(2, start=5), det)
    assert sig.details["detections"].tolist() == [1, 0]
    assert sig.value[1] == 0.5  # the prior, not the frame-99 detection


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"band": (0.7, 0.3)}, "ambiguous band"),
        ({"band": (-0.1, 0.3)}, "ambiguous band"),
        ({"empty_prior": 1.5}, "empty prior"),
        ({"mix": (0, 0, 0)}, "uncertainty mix"),
        ({"mix": (1, -1, 1)}, "uncertainty mix"),
    ],
)
def test_uncertainty_params_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        UncertaintyParams(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [1.2, -0.1, float("nan")])
def test_detections_reject_scores_outside_0_1(bad: float) -> None:
    with pytest.raises(ConfigError, match="detection 1 on frame 4: score"):
        Prelabels(np.array([3, 4]), np.array([0.5, bad]), np.array([1, 1]))


def test_types_validate_shapes() -> None:
    with pytest.raises(ConfigError, match=r"expected shape \(2,\), got \(3,\)"):
        Prelabels(np.array([3, 4]), np.array([0.5, 0.5, 0.5]), np.array([1, 1]))
    with pytest.raises(ConfigError, match="sorted and unique"):
        FrameSet(np.array([3, 3]), np.array([0, 0]))
    with pytest.raises(ConfigError, match=r"in \[0, 1\]"):
        Signal("x", np.array([0.2, 1.5]))


def _naive_uncertainty(frame_idx: list[int], det: list[tuple[int, float]], params: UncertaintyParams) -> list[float]:
    out = []
    w = [m / sum(params.mix) for m in params.mix]
    for f in frame_idx:
        scores = [s for g, s in det if g == f]
        if not scores:
            out.append(params.empty_prior)
            continue
        hs = [0.0 if s in (0.0, 1.0) else -(s * math.log2(s) + (1 - s) * math.log2(1 - s)) for s in scores]
        amb = sum(params.band[0] <= s <= params.band[1] for s in scores) / len(scores)
        out.append(w[0] * max(hs) + w[1] * sum(hs) / len(hs) + w[2] * amb)
    return out


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.tuples(st.integers(0, 12), st.floats(0.0, 1.0)), max_size=60),
    prior=st.floats(0.0, 1.0),
    mix=st.tuples(st.floats(0.0, 3.0), st.floats(0.0, 3.0), st.floats(0.1, 3.0)),
)
def test_uncertainty_matches_naive_reference(
    rows: list[tuple[int, float]], prior: float, mix: tuple[float, float, float]
) -> None:
    params = UncertaintyParams(empty_prior=prior, mix=mix)
    fs = FrameSet.single_job(np.arange(0, 12, 2))  # even frames only: odd detections are ignored
    sig = uncertainty_signal(fs, detections(rows), params)
    expected = _naive_uncertainty(fs.frame_idx.tolist(), rows, params)
    assert sig.value == pytest.approx(expected, abs=1e-9)


def _table(rows: list[tuple[int, int, int, float, int, int, int]], n: int = 3) -> ConsensusFrames:
    cols = list(zip(*rows, strict=True))
    return ConsensusFrames(
        frame_idx=np.array(cols[0]),
        clusters=np.array(cols[1], dtype=float),
        kept=np.array(cols[2], dtype=float),
        f1=np.array(cols[3], dtype=float),
        missing=np.array(cols[4], dtype=float),
        extra=np.array(cols[5], dtype=float),
        label_disagreements=np.array(cols[6], dtype=float),
        n_annotators=n,
    )


def test_disagreement_table() -> None:
    # frame, clusters, kept, f1, missing, extra, label_dis ; R = 3
    table = _table([
        (0, 4, 4, 1.0, 0, 0, 0),  # full agreement
        (1, 3, 2, 0.6, 1, 1, 1),  # slots 2*3+1 = 7; disputed 2/7; labels 1/3
        (3, 1, 0, float("nan"), 0, 1, 0),  # one object by one annotator, dropped; f1 undefined
        (9, 1, 1, 0.5, 0, 0, 0),  # outside the frame set: ignored
    ])
    sig = disagreement_signal(frames(4), table)
    assert sig.details["one_minus_f1"] == pytest.approx([0.0, 0.4, 0.0, 0.0])
    assert sig.details["disputed_share"] == pytest.approx([0.0, 2 / 7, 0.0, 1.0])
    assert sig.details["label_share"] == pytest.approx([0.0, 1 / 3, 0.0, 0.0])
    # frame 2 is not in the report: nobody annotated it, agreement
    assert sig.value == pytest.approx([0.0, (0.4 + 2 / 7 + 1 / 3) / 3, 0.0, 1 / 3])
    assert sig.details["missing"].tolist() == [0, 1, 0, 0]


def test_consensus_frames_validation() -> None:
    with pytest.raises(ConfigError, match="listed twice"):
        _table([(1, 1, 1, 1.0, 0, 0, 0), (1, 1, 1, 1.0, 0, 0, 0)])
    with pytest.raises(ConfigError, match=">= 2 annotators"):
        _table([(1, 1, 1, 1.0, 0, 0, 0)], n=1)
    with pytest.raises(ConfigError, match="number of annotators"):
        ConsensusFrames.concat([_table([(1, 1, 1, 1.0, 0, 0, 0)]), _table([(2, 1, 1, 1.0, 0, 0, 0)], n=2)])


@pytest.mark.parametrize(
    ("errors", "warnings", "warning_weight", "expected"),
    [
        (0, 0, 0.5, 0.0),
        (1, 0, 0.5, 0.5),
        (2, 0, 0.5, 0.75),
        (0, 2, 0.5, 0.5),
        (1, 1, 0.5, 1 - 2**-1.5),
        (0, 3, 0.0, 0.0),
        (10, 0, 0.5, 1 - 2**-10),
    ],
)
def test_findings_table(errors: int, warnings: int, warning_weight: float, expected: float) -> None:
    frame_idx = np.array([1] * (errors + warnings) + [7], dtype=np.int64)
    is_error = np.array([True] * errors + [False] * warnings + [True])
    sig = findings_signal(frames(3), FindingCounts(frame_idx, is_error), warning_weight=warning_weight)
    assert sig.value[1] == pytest.approx(expected)
    assert sig.value[0] == 0.0 and sig.value[2] == 0.0  # frame 7 is outside
    assert sig.details["errors"][1] == errors and sig.details["warnings"][1] == warnings

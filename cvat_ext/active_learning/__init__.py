"""Active learning: rank frames by model uncertainty, human disagreement and rule findings so
people label the most informative frames first.

``signals`` (per-frame signals, columnar), ``ranking`` (weighted score, temporal NMS, per-job
cap, :class:`Ranking`), ``sources`` (readers for prediction, consensus-report, findings and
frame-meta files and for in-memory results).
"""

from cvat_ext.active_learning.ranking import (
    DEFAULT_WEIGHTS,
    RankedFrame,
    Ranking,
    RankParams,
    parse_weights,
    rank_frames,
)
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

__all__ = [
    "DEFAULT_WEIGHTS",
    "ConsensusFrames",
    "FindingCounts",
    "FrameSet",
    "Prelabels",
    "RankParams",
    "RankedFrame",
    "Ranking",
    "Signal",
    "UncertaintyParams",
    "binary_entropy",
    "disagreement_signal",
    "findings_signal",
    "parse_weights",
    "rank_frames",
    "uncertainty_signal",
]

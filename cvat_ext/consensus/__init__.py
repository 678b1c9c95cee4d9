"""Consensus QA: match R annotators' replicas, score their agreement, estimate their reliability
and merge them into one CVAT annotation set.

Layout (one concept per module): ``batch`` (columnar chunks of replicas), ``matching`` (pairwise
optimal assignment), ``clusters`` (cross-annotator clusters), ``agreement`` (Krippendorff's alpha),
``reliability`` (Dawid–Skene, noise separation, existence model), ``merge`` (fusion rules),
``fuse`` (pass 2 on a chunk: labels, quorum, fused objects), ``tally`` (statistics and
findings, :class:`cvat_ext.qa.findings.Finding` with ``code`` = a :class:`FindingKind`),
``report`` (result types and writers),
``settings`` and ``engine`` (the streaming job-level driver, :func:`score_replicas`).

The names below are imported on first use (PEP 562): importing one light module of the package
(``settings``) must not pay for the engine's SciPy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cvat_ext.consensus.engine import score_replicas
    from cvat_ext.consensus.report import ConsensusResult, FindingKind
    from cvat_ext.consensus.settings import ConsensusSettings

__all__ = ["ConsensusResult", "ConsensusSettings", "FindingKind", "score_replicas"]

_HOME = {
    "score_replicas": "cvat_ext.consensus.engine",
    "ConsensusResult": "cvat_ext.consensus.report",
    "FindingKind": "cvat_ext.consensus.report",
    "ConsensusSettings": "cvat_ext.consensus.settings",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)

"""Consensus QA: match R annotators' replicas, score their agreement, estimate their reliability
and merge them into one CVAT annotation set.

Layout (one concept per module): ``batch`` (columnar chunks of replicas), ``matching`` (pairwise
optimal assignment), ``clusters`` (cross-annotator clusters), ``agreement`` (Krippendorff's alpha),
``reliability`` (Dawid–Skene, noise separation, existence model), ``merge`` (fusion rules),
``fuse`` (pass 2 on a chunk: labels, quorum, fused objects), ``tally`` (statistics and
findings, :class:`cvat_ext.qa.findings.Finding` with ``code`` = a :class:`FindingKind`),
``report`` (result types and writers),
``settings`` and ``engine`` (the streaming job-level driver, :func:`score_replicas`).
"""

from cvat_ext.consensus.engine import score_replicas
from cvat_ext.consensus.report import ConsensusResult, FindingKind
from cvat_ext.consensus.settings import ConsensusSettings

__all__ = ["ConsensusResult", "ConsensusSettings", "FindingKind", "score_replicas"]

"""Which findings become issues: at or above the severity floor, one per fingerprint, at most N per
job, worst first."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from cvat_ext.qa.findings import SEVERITY_RANK, Finding

if TYPE_CHECKING:
    from cvat_ext.consensus.replica_findings import ReplicaFindings
    from cvat_ext.consensus.report import IntArray


def publishable(
    findings: Iterable[Finding],
    *,
    min_rank: int,
    max_per_job: int,
    table: ReplicaFindings | None = None,
    rows: IntArray | None = None,
) -> list[Finding]:
    """Findings at or above ``min_rank`` (:data:`~cvat_ext.qa.findings.SEVERITY_RANK`), deduplicated
    by fingerprint, at most ``max_per_job`` per job (worst first, then by frame): ``findings``, and
    the ``rows`` of ``table`` (columnar consensus findings, all rows when ``rows`` is None, built as
    objects only where they could be picked)."""
    found = list(findings)
    if table is not None:
        # the table's rows never share a fingerprint with an object finding (their code differs
        # from a tag finding's, their source from a rule's), so its candidates go last
        picked = np.arange(len(table)) if rows is None else rows
        found += table.candidates(picked, min_rank=min_rank, per_job=max_per_job)
    unique: dict[str, Finding] = {}
    for f in found:
        if SEVERITY_RANK.get(f.severity, 0) >= min_rank:
            unique.setdefault(f.fingerprint, f)
    per_job: dict[int | None, list[Finding]] = {}
    for f in sorted(unique.values(), key=lambda f: (-SEVERITY_RANK[f.severity], f.frame, f.fingerprint)):
        bucket = per_job.setdefault(f.job_id, [])
        if len(bucket) < max_per_job:
            bucket.append(f)
    return [f for bucket in per_job.values() for f in bucket]

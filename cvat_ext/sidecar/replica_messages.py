"""How a consensus finding on a replica job reads: the finding, then the annotator's figures.

``frame 2: car rectangle drawn by ann1, ann2; missing from ann3 (ann3: est. F1 0.78 ± 0.04, mean
IoU 0.83 ± 0.02 vs truth (12 GT objects))``: by CVAT username, with the estimate against the
truth, or the F1 vs consensus labelled as such when the engine made none
(:meth:`cvat_ext.workforce.accuracy.AnnotatorAccuracy.text`). The engine's columnar findings
(:class:`~cvat_ext.consensus.replica_findings.ReplicaFindings`) are built as objects only for the
rows a caller asks for; :class:`NamedReplicaFindings` words those rows the same way.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from cvat_ext.consensus.replica_findings import ReplicaFindings
from cvat_ext.qa.findings import Finding


def named(f: Finding, job_id: int, annotator: str, said: str) -> Finding:
    """The copy of consensus finding ``f`` published on replica job ``job_id`` of ``annotator``,
    ``said``: that annotator's figures (``"ann3: est. F1 0.78 ± 0.04 …"``)."""
    return dataclasses.replace(f, job_id=job_id, annotator=annotator, message=f"{f.message} ({said})")


@dataclass(frozen=True, eq=False)
class NamedReplicaFindings(ReplicaFindings):
    """:class:`ReplicaFindings` whose rows read as :func:`named` says; ``said (R,)`` the figures of
    each annotator in ``names``."""

    said: tuple[str, ...] = ()

    @classmethod
    def of(cls, table: ReplicaFindings, said: tuple[str, ...]) -> NamedReplicaFindings:
        if len(said) != len(table.names):
            raise ValueError(f"expected figures for {len(table.names)} annotators, got {len(said)}")
        fields = {f.name: getattr(table, f.name) for f in dataclasses.fields(table)}
        return cls(**fields, said=said)

    def finding(self, i: int) -> Finding:
        r = int(self.replica[i])
        base = self.blocks[int(self.block[i])].finding(
            int(self.cluster[i]), int(self.kind[i]), self.names, self.label_name
        )
        return named(base, int(self.job_id[i]), self.names[r], self.said[r])

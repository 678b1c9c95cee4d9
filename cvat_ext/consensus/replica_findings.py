"""Consensus findings on the replica jobs at fault, columnar.

A consensus finding names annotators; the sidecar publishes one copy of it on the replica job of
each annotator at fault (:data:`AT_FAULT`): a missed object on the replicas that lack it, an
extra object or a disagreeing label on the replicas that drew it. A 1,000-frame job of three
sloppy replicas has tens of thousands of such copies, and at most ``max_issues_per_job`` of them
per job become CVAT issues, so :class:`ReplicaFindings` keeps them as ``N`` rows of columns cut
from the engine's :class:`~cvat_ext.consensus.report.FindingBlock` s, and builds a
:class:`~cvat_ext.qa.findings.Finding` only for the rows a caller asks for
(:meth:`ReplicaFindings.candidates`: what could be published; :meth:`ReplicaFindings.materialise`:
all of them, for tests and small jobs).

Row order is the order of the per-object path: findings by frame (blocks merged stably, as
:meth:`~cvat_ext.consensus.report.ConsensusResult.iter_findings` merges them), within a cluster in
:data:`~cvat_ext.consensus.report.CLUSTER_FINDING_KINDS` order, the copies in annotator order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from cvat_ext.consensus.report import CLUSTER_FINDING_KINDS, KIND_SEVERITY, FindingBlock, IntArray
from cvat_ext.qa.findings import SEVERITY_RANK, Finding, Severity
from cvat_ext.rows import distinct_rows

#: consensus finding kind -> whose replica job gets it: "missing" | "present" | "odd_label"
AT_FAULT: dict[str, str] = {
    "missing": "missing",
    "extra": "present",
    "label_disagreement": "odd_label",
    "attribute_disagreement": "present",
    "low_overlap": "present",
    "tag_disagreement": "missing",
}

#: severity rank of each cluster finding kind, in ``CLUSTER_FINDING_KINDS`` order
_KIND_RANK = np.array([SEVERITY_RANK[KIND_SEVERITY[k]] for k in CLUSTER_FINDING_KINDS], dtype=np.int64)
#: fingerprints snap the box to an 8 px grid (:attr:`Finding.fingerprint`)
_GRID_PX = 8.0


def at_fault(f: Finding) -> tuple[str, ...]:
    """The annotators at fault for the consensus finding ``f`` (object path; tags, fakes)."""
    assert f.votes is not None, "consensus findings carry their votes"
    whose = AT_FAULT.get(f.code, "present")
    if whose == "missing":
        return f.votes.missing
    if whose == "odd_label":
        return tuple(n for n, label in f.votes.labels_by_annotator if label != f.label)
    return f.votes.present


def on_replica(f: Finding, job_id: int, annotator: str, said: str) -> Finding:
    """The copy of consensus finding ``f`` published on replica job ``job_id`` of ``annotator``;
    ``said``, that annotator's figures, closes its message in brackets."""
    return dataclasses.replace(f, job_id=job_id, annotator=annotator, message=f"{f.message} ({said})")


@dataclass(frozen=True, eq=False)
class ReplicaFindings:
    """``N`` consensus findings on replica jobs, one row per (finding, annotator at fault).

    Context: ``blocks`` the engine's finding blocks; ``names (R,)`` the annotators in the
    blocks' member columns; ``replica_job (R,)`` the replica job of each (-1: none, its rows are
    dropped); ``said (R,)`` each annotator's figures, quoted in its rows' messages (:func:`on_replica`).
    Rows: ``block``, ``cluster``, ``kind`` (position in ``CLUSTER_FINDING_KINDS``), ``replica``
    (position in ``names``), ``job_id``, ``frame``, ``rank`` (severity rank) and ``ident (N, 8)``,
    the fields of :attr:`Finding.fingerprint` as integers (job, kind, frame, label name code,
    the box on the 8 px grid): two rows have the same fingerprint exactly when their ``ident``
    rows are equal.
    """

    blocks: tuple[FindingBlock, ...]
    names: tuple[str, ...]
    replica_job: IntArray
    said: tuple[str, ...]
    label_name: Callable[[int], str]
    block: IntArray
    cluster: IntArray
    kind: IntArray
    replica: IntArray
    job_id: IntArray
    frame: IntArray
    rank: IntArray
    ident: IntArray

    def __len__(self) -> int:
        return int(self.frame.shape[0])

    @classmethod
    def from_blocks(
        cls,
        blocks: Sequence[FindingBlock],
        names: Sequence[str],
        replica_job: Sequence[int],
        said: Sequence[str],
        label_name: Callable[[int], str],
    ) -> ReplicaFindings:
        """Expand every flagged cluster of ``blocks`` into its copies on the replicas at fault."""
        jobs = np.asarray(replica_job, dtype=np.int64).reshape(-1)
        if len(said) != len(names):
            raise ValueError(f"expected figures for {len(names)} annotators, got {len(said)}")
        cut = [_expand(b, i, jobs, label_name) for i, b in enumerate(blocks)]
        cols = [np.concatenate([c[j] for c in cut]) if cut else np.zeros(0, np.int64) for j in range(6)]
        block, cluster, kind, replica, frame, label_code = cols
        # blocks are each in frame order; a stable sort by frame merges them as heapq.merge does
        if np.any(frame[1:] < frame[:-1]):
            order = np.argsort(frame, kind="stable")
            block, cluster, kind, replica = block[order], cluster[order], kind[order], replica[order]
            frame, label_code = frame[order], label_code[order]
        job_id = jobs[replica] if replica.size else np.zeros(0, np.int64)
        grid = _grid_boxes(blocks, block, cluster)
        ident = np.column_stack([job_id, kind, frame, label_code, grid]) if frame.size else np.zeros((0, 8), np.int64)
        return cls(
            blocks=tuple(blocks),
            names=tuple(names),
            replica_job=jobs,
            said=tuple(said),
            label_name=label_name,
            block=block,
            cluster=cluster,
            kind=kind,
            replica=replica,
            job_id=job_id,
            frame=frame,
            rank=_KIND_RANK[kind],
            ident=ident,
        )

    # --- selections -------------------------------------------------------------------------
    def on_jobs(self, job_ids: Collection[int]) -> IntArray:
        """Rows whose job is one of ``job_ids``, in row order."""
        return np.flatnonzero(np.isin(self.job_id, np.fromiter(job_ids, dtype=np.int64, count=len(job_ids))))

    def severity_counts(self, rows: IntArray) -> dict[Severity, int]:
        """How many of ``rows`` have each severity (those with none are left out)."""
        counts = np.bincount(self.rank[rows], minlength=max(SEVERITY_RANK.values()) + 1)
        return {Severity(s): int(counts[r]) for s, r in SEVERITY_RANK.items() if counts[r]}

    def candidates(self, rows: IntArray, *, min_rank: int, per_job: int) -> list[Finding]:
        """The findings among ``rows`` that :func:`~cvat_ext.sidecar.issue_selection.publishable`
        could pick, as objects.

        Publishing keeps findings at or above ``min_rank``, the first of each fingerprint, and per
        job the ``per_job`` worst (severity, then frame, then fingerprint). This returns every row
        that passes the floor, is the first of its fingerprint, and whose (severity, frame) is not
        after its job's ``per_job``-th: a superset of what is published, with no two sharing a
        fingerprint, so the exact choice (fingerprint order on ties) stays with the publisher.
        """
        rows = rows[self.rank[rows] >= min_rank]
        if rows.size == 0 or per_job <= 0:
            return []
        rows = rows[_first_of_each(self.ident[rows])]
        keep = np.zeros(rows.size, dtype=bool)
        for job in np.unique(self.job_id[rows]).tolist():
            mine = np.flatnonzero(self.job_id[rows] == job)
            key = -self.rank[rows[mine]] * (1 << 40) + self.frame[rows[mine]]  # worst first, then frame
            if mine.size <= per_job:
                keep[mine] = True
            else:
                keep[mine] = key <= np.partition(key, per_job - 1)[per_job - 1]
        return [self.finding(int(i)) for i in rows[keep].tolist()]

    # --- objects ----------------------------------------------------------------------------
    def finding(self, i: int) -> Finding:
        """Row ``i`` as the :class:`Finding` the per-object path publishes."""
        r = int(self.replica[i])
        base = self.blocks[int(self.block[i])].finding(
            int(self.cluster[i]), int(self.kind[i]), self.names, self.label_name
        )
        return on_replica(base, int(self.job_id[i]), self.names[r], self.said[r])

    def iter_findings(self) -> Iterator[Finding]:
        for i in range(len(self)):
            yield self.finding(i)

    def materialise(self) -> tuple[Finding, ...]:
        return tuple(self.iter_findings())


def _first_of_each(ident: IntArray) -> IntArray:
    """``(U,)`` sorted positions of the first row of each distinct row of ``ident (N, C)``."""
    return np.sort(distinct_rows(ident).first)


def _expand(block: FindingBlock, index: int, jobs: IntArray, label_name: Callable[[int], str]) -> tuple[IntArray, ...]:
    """One block's copies: (block, cluster, kind, replica, frame, label name code) columns, in
    (cluster, kind, replica) order; replicas without a job are dropped."""
    members = np.asarray(block.labels, dtype=np.int64)  # (K, R) member label ids, -1 absent
    k_n, r_n = members.shape
    present = members >= 0
    codes = _name_codes(np.concatenate([block.label.reshape(-1), members[present]]), label_name)
    consensus_code = codes[:k_n]
    member_code = np.full(members.shape, -1, dtype=np.int64)
    member_code[present] = codes[k_n:]
    odd = present & (member_code != consensus_code[:, None])
    whose = {"missing": ~present, "present": present, "odd_label": odd}
    at = np.stack([whose[AT_FAULT.get(k.value, "present")] for k in CLUSTER_FINDING_KINDS], axis=1)  # (K, 5, R)
    at &= np.asarray(block.flags, dtype=bool)[:, :, None]
    at &= (jobs[:r_n] >= 0)[None, None, :]
    cluster, kind, replica = np.nonzero(at)
    frame = np.asarray(block.frame, dtype=np.int64)[cluster]
    label = consensus_code[cluster]
    return (np.full(cluster.size, index, dtype=np.int64), cluster, kind, replica, frame, label)


def _name_codes(label_ids: IntArray, label_name: Callable[[int], str]) -> IntArray:
    """An integer per label id, equal exactly when the label *names* are equal (fingerprints
    hold names, and two ids may share one)."""
    uniq, inverse = np.unique(label_ids, return_inverse=True)
    names = [label_name(int(i)) for i in uniq.tolist()]
    _, name_code = np.unique(np.array(names, dtype=object).astype(str), return_inverse=True)
    return np.asarray(name_code, dtype=np.int64).reshape(-1)[np.asarray(inverse).reshape(-1)]


def _grid_boxes(blocks: Sequence[FindingBlock], block: IntArray, cluster: IntArray) -> IntArray:
    """``(N, 4)`` the finding boxes on the fingerprint grid: ``round(round(v, 2) / 8)``, as
    :attr:`Finding.fingerprint` computes it with Python's ``round``.

    NumPy's rounding to 2 decimals can differ from Python's by a cent where ``100 v`` is a
    half; the cells whose ``v / 8`` lands within that of a grid half are redone in Python.
    """
    if block.size == 0:
        return np.zeros((0, 4), dtype=np.int64)
    xyxy = np.concatenate([np.asarray(b.xyxy, dtype=np.float64).reshape(-1, 4) for b in blocks])
    starts = np.cumsum([0] + [b.xyxy.shape[0] for b in blocks])[:-1]
    boxes = xyxy[starts[block] + cluster]
    scaled = np.round(boxes, 2) / _GRID_PX
    grid = np.rint(scaled)
    near_half = np.abs(scaled - np.floor(scaled) - 0.5) < 0.02 / _GRID_PX
    redo = np.nonzero(near_half & np.isfinite(scaled))
    grid[redo] = [round(round(v, 2) / _GRID_PX) for v in boxes[redo].tolist()]
    grid[~np.isfinite(scaled)] = _NOT_FINITE  # no finite box cell has it
    return grid.astype(np.int64)


_NOT_FINITE = float(-(1 << 62))

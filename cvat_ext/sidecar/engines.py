"""Production engines for the cycle: adapters from :mod:`cvat_ext.rules` and
:mod:`cvat_ext.consensus` to the sidecar's :class:`RuleRunner` / :class:`ConsensusRunner`.

Consensus findings name annotators; the adapter turns each into a copy on the replica job of
each annotator at fault (``job_id`` set): a missed object on the replicas that lack it, an extra
object or a disagreeing label on the replicas that drew it. Rule findings already carry their job.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cvat_ext.annotations.model import JobAnnotations, JobMeta, LabelSet
from cvat_ext.consensus.settings import ConsensusSettings
from cvat_ext.errors import ConfigError
from cvat_ext.qa.findings import Finding
from cvat_ext.sidecar.config import SidecarSettings
from cvat_ext.sidecar.interface import ConsensusOutcome, ConsensusRunner, JobRef, ReplicaInput, RuleRunner
from cvat_ext.workforce.accuracy import AnnotatorAccuracy

if TYPE_CHECKING:
    from cvat_ext.annotations.columnar_json import ReplicaColumns
    from cvat_ext.consensus.report import ConsensusResult
    from cvat_ext.consensus.settings import ConsensusSettings
    from cvat_ext.rules import RulePack

log = logging.getLogger(__name__)


class RulePackRunner:
    """:class:`RuleRunner` over a loaded rule pack."""

    def __init__(self, pack: RulePack) -> None:
        self.pack = pack

    def check(
        self, job: JobRef, ann: JobAnnotations | ReplicaColumns, labels: LabelSet, meta: JobMeta
    ) -> list[Finding]:
        from cvat_ext.rules import check_job

        return check_job(
            ann,
            labels,
            meta,
            self.pack,
            job_id=job.job_id,
            annotator=None,
            project_id=job.project_id,
            task_id=job.task_id,
        )


class ConsensusEngineRunner:
    """:class:`ConsensusRunner` over :func:`cvat_ext.consensus.engine.score_replicas`.

    Replicas are keyed by annotator name (CVAT username). ``agreement`` is the pooled pairwise F1
    of the replicas; a replica's agreement is its F1 against the consensus; each issue's message
    ends with the annotator's estimated accuracy against the truth, or that vs-consensus F1
    labelled as such when the engine made no estimate.
    """

    def __init__(self, settings: ConsensusSettings) -> None:
        try:
            # imported now, so a missing dependency is a startup error, not a failure mid-cycle
            import cvat_ext.consensus.engine  # noqa: F401
        except ImportError as exc:
            raise ConfigError(
                f"consensus engine unavailable ({exc}); install cvat-ext with its dependencies "
                "or set consensus.enabled: false"
            ) from exc
        self.settings = settings

    def score(
        self,
        parent_job_id: int,
        replicas: Sequence[ReplicaInput],
        labels: LabelSet,
        meta: JobMeta,
        *,
        ground_truth: tuple[JobAnnotations, Sequence[int]] | None = None,
        priors: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> ConsensusOutcome:
        from cvat_ext.consensus.merged_writer import merged_json
        from cvat_ext.consensus.replica_findings import ReplicaFindings, at_fault, on_replica

        by_name = {r.annotator: r for r in replicas}
        result = _score(by_name, labels, meta, self.settings, ground_truth=ground_truth, priors=priors)
        numbers = {a.annotator: AnnotatorAccuracy.from_stats(a, by_name[a.annotator].job_id) for a in result.annotators}
        said = {name: n.said() for name, n in numbers.items()}
        agreement = {n.job_id: n.vs_consensus_f1 for n in numbers.values()}
        # findings on objects stay columns (most are never published); tag findings are few
        names = result.summary.annotators
        replica_job = [by_name[n].job_id if n in by_name else -1 for n in names]
        table = ReplicaFindings.from_blocks(
            result.finding_blocks, names, replica_job, [said.get(n, f"{n}: no figures") for n in names],
            result.label_name,
        )
        findings = [
            on_replica(f, by_name[name].job_id, name, said.get(name, f"{name}: no figures"))
            for f in result.extra_findings
            for name in at_fault(f)
            if name in by_name
        ]
        s = result.summary
        models = {a.annotator: dict(a.model) for a in result.annotators if a.model}
        return ConsensusOutcome(
            agreement=_finite(s.f1),
            replica_agreement=agreement,
            findings=tuple(findings),
            replica_findings=table,
            merged_json=lambda: merged_json(result),
            detail={"mean_iou": _finite(s.mean_iou), "missing": s.missing, "extra": s.extra, "clusters": s.clusters},
            annotators=tuple(numbers.values()),
            models=models,
            ground_truth=result.ground_truth,
        )


def _score(
    by_name: Mapping[str, ReplicaInput],
    labels: LabelSet,
    meta: JobMeta,
    settings: ConsensusSettings,
    *,
    ground_truth: tuple[JobAnnotations, Sequence[int]] | None,
    priors: Mapping[str, Mapping[str, Any]] | None,
) -> ConsensusResult:
    """The columnar engine when every replica came as columns, else the per-object one."""
    columns = {n: r.columns for n, r in by_name.items()}
    if all(c is not None for c in columns.values()):
        from cvat_ext.consensus.table_source import score_tables

        tables = {n: c for n, c in columns.items() if c is not None}
        return score_tables(tables, labels, meta, settings, ground_truth=ground_truth, priors=priors)
    from cvat_ext.consensus.engine import score_replicas

    objects = {n: r.annotations for n, r in by_name.items()}
    missing = [n for n, a in objects.items() if a is None]
    if missing:
        raise ValueError(f"replicas {missing}: neither annotations nor columns")
    given = {n: a for n, a in objects.items() if a is not None}
    return score_replicas(given, labels, meta, settings, ground_truth=ground_truth, priors=priors)


def _finite(value: float) -> float:
    return 0.0 if value != value else float(value)  # NaN (nothing to compare) counts as no agreement


def rule_runner(settings: SidecarSettings) -> RuleRunner | None:
    """The configured rule packs as a :class:`RuleRunner`; None when no pack is configured."""
    if not settings.rules.packs:
        return None
    from cvat_ext.rules import load_packs

    paths: list[Path] = []
    for entry in settings.rules.packs:
        p = Path(entry)
        if p.is_dir():
            paths += sorted(p.glob("*.yaml")) + sorted(p.glob("*.yml"))
        elif p.exists():
            paths.append(p)
        else:
            raise ConfigError(f"rules.packs: {entry}: no such file or folder (relative to {Path.cwd()})")
    return RulePackRunner(load_packs(paths))


def consensus_runner(settings: SidecarSettings) -> ConsensusRunner | None:
    """The consensus engine as a :class:`ConsensusRunner`; None when consensus is disabled."""
    if not settings.consensus.enabled:
        return None
    return ConsensusEngineRunner(settings.consensus.engine)

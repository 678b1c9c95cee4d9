"""The decision step: findings + agreement scores + policy -> what happens to a job.

Pure: no CVAT, no store, no clock. The sidecar calls :func:`decide` once per unit of work (a
plain job, or a consensus parent with its replicas) and then *executes* the :class:`Decision`
(issues, job moves, merge); the offline commands print it.

How a rule pack's actions and ``max_errors`` combine (the order is the precedence):

1. ``reject_job`` findings send the jobs that carry them back to annotation (CVAT stage
   ``annotation``, state ``rejected``), whatever ``max_errors`` says: one is enough, as the packs
   document ("sends the job back"). In a consensus unit that is the replica(s) at fault; the parent
   waits until they are completed again and is then scored afresh.
2. ``send_to_review`` findings route the job (consensus: the review target) to an expert.
3. More than ``max_errors`` error findings whose action is ``open_issue`` route it too: many small
   problems are worth a look even when no single one asks for it.
4. Consensus only: group agreement below ``min_agreement``, or nothing drawn by any replica (no
   agreement can be measured), routes the parent (or the worst replica) to an expert.
5. Otherwise the job is accepted (the sidecar merges a consensus parent, then moves it to the pass
   stage).

Issues: every rule finding except ``none`` gets one (``reject_job``, ``send_to_review`` and
``open_issue`` all pin an issue); a consensus finding gets one when its replica agrees with the
consensus less than ``min_replica_agreement``. ``none`` findings are recorded only: counted, never
published, never moving a job, never counted against ``max_errors``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from cvat_ext.qa.findings import Action, Finding, Severity, Source


class Verdict(StrEnum):
    ACCEPT = "accept"  # passes: merge (consensus) and move on to the pass stage
    REVIEW = "review"  # route to an expert reviewer (CVAT stage validation)
    REJECT = "reject"  # send back to its annotator (CVAT stage annotation, state rejected)


@dataclass(frozen=True, slots=True)
class Agreement:
    """The consensus scores of one parent job: ``group`` pooled pairwise F1 in [0, 1];
    ``by_job`` replica job id -> F1 against the consensus in [0, 1]; ``measurable`` False when no
    replica drew anything (0 clusters: nothing to agree on)."""

    group: float
    by_job: Mapping[int, float] = field(default_factory=dict)
    measurable: bool = True


@dataclass(frozen=True, slots=True)
class Policy:
    """The thresholds a decision uses (the sidecar's ``rules.max_errors``,
    ``consensus.min_agreement``, ``consensus.min_replica_agreement``, ``routing.target``)."""

    max_errors: int = 5
    min_agreement: float = 0.9
    min_replica_agreement: float = 0.9
    review_target: Literal["parent", "worst_replica"] = "parent"


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one unit.

    ``job_ids`` are the jobs the verdict acts on, sorted: the rejected jobs, the one job to route,
    or the job that passes. ``issues`` the findings to publish as CVAT issues; ``recorded`` those
    only counted (action ``none``); ``errors`` the error findings counted against ``max_errors``
    (action ``open_issue``); ``reason`` one line with the numbers, for the audit log and the guide.
    """

    verdict: Verdict
    reason: str
    job_ids: tuple[int, ...]
    issues: tuple[Finding, ...] = ()
    recorded: tuple[Finding, ...] = ()
    errors: int = 0


def decide(
    findings: Iterable[Finding],
    policy: Policy,
    *,
    job_id: int,
    agreement: Agreement | None = None,
) -> Decision:
    """Decide on the unit whose main job is ``job_id`` (a plain job, or a consensus parent when
    ``agreement`` is given; its rule and consensus findings then sit on the replica jobs).

    A finding without ``job_id`` is taken to be on ``job_id``.
    """
    found = list(findings)
    recorded = tuple(f for f in found if f.action is Action.NONE)
    acting = [f for f in found if f.action is not Action.NONE]
    rule = [f for f in acting if f.source is Source.RULE]
    issues = tuple(rule) + tuple(f for f in acting if f.source is Source.CONSENSUS and _sloppy(f, agreement, policy))
    errors = sum(1 for f in rule if f.severity is Severity.ERROR and f.action is Action.OPEN_ISSUE)

    def made(verdict: Verdict, reason: str, job_ids: Iterable[int]) -> Decision:
        return Decision(verdict, reason, tuple(sorted(set(job_ids))), issues, recorded, errors)

    # 1. rule findings that send their job back
    rejecting = [f for f in rule if f.action is Action.REJECT_JOB]
    if rejecting:
        return made(Verdict.REJECT, _cite(rejecting, "reject_job"), (_job_of(f, job_id) for f in rejecting))
    # 2.-4. reasons to route to an expert, all of them named
    why: list[str] = []
    reviewing = [f for f in rule if f.action is Action.SEND_TO_REVIEW]
    if reviewing:
        why.append(_cite(reviewing, "send_to_review"))
    if errors > policy.max_errors:
        why.append(f"{errors} rule errors > {policy.max_errors}")
    if agreement is not None:
        if not agreement.measurable:
            # nothing to compare is not agreement: an expert confirms the frames are empty
            why.append("no replica drew any object; agreement cannot be measured")
        elif agreement.group < policy.min_agreement:
            why.append(f"agreement {agreement.group:.2f} < {policy.min_agreement:.2f}")
    if why:
        return made(Verdict.REVIEW, "; ".join(why), [_review_target(job_id, agreement, policy)])
    # 5. accepted
    if agreement is not None:
        reason = f"agreement {agreement.group:.2f} >= {policy.min_agreement:.2f}"
    else:
        reason = f"{errors} rule errors <= {policy.max_errors}"
    return made(Verdict.ACCEPT, reason, [job_id])


def _sloppy(f: Finding, agreement: Agreement | None, policy: Policy) -> bool:
    """A consensus finding is published when its replica agrees too little with the consensus."""
    if agreement is None or f.job_id is None:
        return True
    return replica_is_sloppy(f.job_id, agreement, policy)


def replica_is_sloppy(job_id: int, agreement: Agreement, policy: Policy) -> bool:
    """Whether the consensus findings on replica ``job_id`` get issues: its agreement with the
    consensus is below ``min_replica_agreement`` (for findings kept as columns, which
    :func:`decide` does not see)."""
    return agreement.by_job.get(job_id, 0.0) < policy.min_replica_agreement


def _job_of(f: Finding, default: int) -> int:
    return f.job_id if f.job_id is not None else default


def _cite(findings: list[Finding], action: str) -> str:
    """``2 reject_job findings (tiny-object, outside-image)``: the count and the distinct codes."""
    codes = ", ".join(dict.fromkeys(str(f.code) for f in findings))
    plural = "s" if len(findings) != 1 else ""
    return f"{len(findings)} {action} finding{plural} ({codes})"


def _review_target(job_id: int, agreement: Agreement | None, policy: Policy) -> int:
    if agreement is not None and policy.review_target == "worst_replica" and agreement.by_job:
        return min(agreement.by_job.items(), key=lambda kv: (kv[1], kv[0]))[0]
    return job_id

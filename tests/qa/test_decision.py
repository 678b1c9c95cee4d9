"""The decision step as a table: every rule action x severity x max_errors x consensus outcome
that changes the verdict, the jobs it acts on, the issues and the errors counted."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from cvat_ext.qa import Action, Agreement, Finding, Policy, Severity, Source, Verdict, decide

E, W = Severity.ERROR, Severity.WARNING
OPEN, REJECT, REVIEW, NONE = Action.OPEN_ISSUE, Action.REJECT_JOB, Action.SEND_TO_REVIEW, Action.NONE
JOB = 10  # a plain job, or the consensus parent; replicas are 11, 12, 13


def rule(severity: Severity, action: Action, job: int = JOB, code: str = "r") -> Finding:
    return Finding(Source.RULE, code, severity, 0, (0.0, 0.0, 8.0, 8.0), "m", action, job)


def cons(job: int, severity: Severity = E) -> Finding:
    return Finding(Source.CONSENSUS, "missing", severity, 0, (0.0, 0.0, 8.0, 8.0), "m", OPEN, job)


GOOD = Agreement(0.95, {11: 0.97, 12: 0.96, 13: 0.92})
LOW = Agreement(0.70, {11: 0.95, 12: 0.55, 13: 0.80})
EMPTY = Agreement(0.0, {11: 0.0, 12: 0.0}, measurable=False)
ACC, REV, REJ = Verdict.ACCEPT, Verdict.REVIEW, Verdict.REJECT

# id, findings, max_errors, agreement, verdict, job_ids, issues, errors, words in the reason
CASES = [
    # --- plain jobs: one action at a time -------------------------------------------------------
    ("clean", [], 5, None, ACC, (JOB,), 0, 0, "0 rule errors <= 5"),
    ("open-error-under", [rule(E, OPEN)] * 5, 5, None, ACC, (JOB,), 5, 5, "5 rule errors <= 5"),
    ("open-error-over", [rule(E, OPEN)] * 6, 5, None, REV, (JOB,), 6, 6, "6 rule errors > 5"),
    ("open-error-max0", [rule(E, OPEN)], 0, None, REV, (JOB,), 1, 1, "1 rule errors > 0"),
    ("open-warnings-never-count", [rule(W, OPEN)] * 9, 0, None, ACC, (JOB,), 9, 0, "0 rule errors"),
    ("reject-one-error", [rule(E, REJECT, code="tiny")], 5, None, REJ, (JOB,), 1, 0, "1 reject_job finding (tiny)"),
    ("reject-warning-too", [rule(W, REJECT)], 5, None, REJ, (JOB,), 1, 0, "reject_job"),
    ("review-one", [rule(W, REVIEW, code="odd")], 5, None, REV, (JOB,), 1, 0, "1 send_to_review finding (odd)"),
    ("none-only-records", [rule(E, NONE)] * 9, 0, None, ACC, (JOB,), 0, 0, "0 rule errors <= 0"),
    # --- plain jobs: precedence -----------------------------------------------------------------
    ("reject-beats-review", [rule(E, REVIEW), rule(E, REJECT)], 5, None, REJ, (JOB,), 2, 0, "reject_job"),
    ("reject-beats-max-errors", [rule(E, OPEN)] * 7 + [rule(E, REJECT)], 5, None, REJ, (JOB,), 8, 7, "reject"),
    (
        "review-and-errors-both-named",
        [rule(E, OPEN)] * 3 + [rule(W, REVIEW, code="odd")],
        2,
        None,
        REV,
        (JOB,),
        4,
        3,
        "1 send_to_review finding (odd); 3 rule errors > 2",
    ),
    ("none-does-not-count", [rule(E, OPEN)] * 2 + [rule(E, NONE)] * 5, 2, None, ACC, (JOB,), 2, 2, "2 rule"),
    # --- consensus parents ----------------------------------------------------------------------
    ("consensus-good", [], 5, GOOD, ACC, (JOB,), 0, 0, "agreement 0.95 >= 0.90"),
    ("consensus-low", [], 5, LOW, REV, (JOB,), 0, 0, "agreement 0.70 < 0.90"),
    ("consensus-empty", [], 5, EMPTY, REV, (JOB,), 0, 0, "cannot be measured"),
    ("consensus-good-rule-errors-over", [rule(E, OPEN, 11)] * 2, 1, GOOD, REV, (JOB,), 2, 2, "2 rule errors > 1"),
    ("consensus-good-reject-on-replica", [rule(E, REJECT, 12)], 5, GOOD, REJ, (12,), 1, 0, "reject_job"),
    (
        "consensus-low-reject-two-replicas",
        [rule(E, REJECT, 13), rule(E, REJECT, 11), rule(E, REJECT, 13)],
        5,
        LOW,
        REJ,
        (11, 13),
        3,
        0,
        "3 reject_job findings (r)",
    ),
    ("consensus-good-review-rule", [rule(E, REVIEW, 11)], 5, GOOD, REV, (JOB,), 1, 0, "send_to_review"),
    (
        "consensus-low-and-errors",
        [rule(E, OPEN, 11)] * 2,
        0,
        LOW,
        REV,
        (JOB,),
        2,
        2,
        "2 rule errors > 0; agreement 0.70 < 0.90",
    ),
    ("consensus-none-rule", [rule(E, NONE, 11)], 0, GOOD, ACC, (JOB,), 0, 0, "agreement 0.95"),
    # consensus findings: published only on replicas below min_replica_agreement; never counted
    ("consensus-findings-sloppy-only", [cons(11), cons(12), cons(12, W), cons(13)], 0, LOW, REV, (JOB,), 3, 0, "0.70"),
    ("consensus-findings-good", [cons(11), cons(12), cons(13)], 0, GOOD, ACC, (JOB,), 0, 0, "0.95 >= 0.90"),
    ("consensus-findings-unknown-replica", [cons(99)], 0, GOOD, ACC, (JOB,), 1, 0, "0.95"),
]


@pytest.mark.parametrize(
    ("findings", "max_errors", "agreement", "verdict", "job_ids", "issues", "errors", "words"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_decide(
    findings: list[Finding],
    max_errors: int,
    agreement: Agreement | None,
    verdict: Verdict,
    job_ids: tuple[int, ...],
    issues: int,
    errors: int,
    words: str,
) -> None:
    got = decide(findings, Policy(max_errors=max_errors, min_replica_agreement=0.9), job_id=JOB, agreement=agreement)
    assert (got.verdict, got.job_ids, len(got.issues), got.errors) == (verdict, job_ids, issues, errors), got
    assert words in got.reason
    assert len(got.recorded) == sum(f.action is NONE for f in findings)
    assert all(f.action is not NONE for f in got.issues)


@pytest.mark.parametrize(
    ("target", "agreement", "expected"),
    [
        ("parent", LOW, JOB),
        ("worst_replica", LOW, 12),
        ("worst_replica", Agreement(0.5, {14: 0.3, 11: 0.3}), 11),  # ties: the lowest job id
        ("worst_replica", Agreement(0.5, {}), JOB),  # no replica scores: the parent
        ("worst_replica", None, JOB),  # a plain job is its own target
    ],
)
def test_review_target(target: str, agreement: Agreement | None, expected: int) -> None:
    policy = Policy(max_errors=0, review_target=target)  # type: ignore[arg-type]
    got = decide([rule(E, OPEN)], policy, job_id=JOB, agreement=agreement)
    assert got.verdict is Verdict.REVIEW and got.job_ids == (expected,)


def test_every_action_and_severity_is_decided() -> None:
    """Every (action, severity) pair, alone on a job with max_errors 0, gives the documented verdict."""
    expected = {REJECT: Verdict.REJECT, REVIEW: Verdict.REVIEW, NONE: Verdict.ACCEPT}
    for action, severity in itertools.product(Action, Severity):
        got = decide([rule(severity, action)], Policy(max_errors=0), job_id=JOB)
        want = expected.get(action, Verdict.REVIEW if severity is E else Verdict.ACCEPT)
        assert got.verdict is want, (action, severity, got)


def test_finding_without_job_is_on_the_unit_job() -> None:
    got = decide([dataclasses.replace(rule(E, REJECT), job_id=None)], Policy(), job_id=77)
    assert got.job_ids == (77,)


def test_decision_is_frozen_and_pure() -> None:
    findings = [rule(E, REJECT, 11), cons(12)]
    first = decide(findings, Policy(), job_id=JOB, agreement=LOW)
    assert decide(findings, Policy(), job_id=JOB, agreement=LOW) == first
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.verdict = Verdict.ACCEPT  # type: ignore[misc]

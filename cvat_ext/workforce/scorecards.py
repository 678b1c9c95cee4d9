"""Scorecards: per annotator (CVAT username), per project, from what the sidecar recorded.

Built from the state store alone (no CVAT call): completed work rows (jobs, frames, objects, gold
checks, time), consensus scores (each replica's agreement with the merged consensus, labelled
*vs consensus*, not accuracy), rule checks, the issues the sidecar published on the annotator's
jobs, and the qualification standing. Columns are computed with numpy over all rows at once
(``bincount`` by annotator), so a project of thousands of jobs costs milliseconds.

* ``gold_accuracy``: pooled F1 against gold over ``gold_frames`` (``None`` without gold), of which
  ``gold_honeypot_frames`` were honeypots (``gt_pool`` tasks); ``honeypots_unread_jobs``: their jobs
  in tasks whose validation layout CVAT would not give, so that honeypots there measured nothing;
* ``vs_consensus``: mean agreement of the annotator's replicas with the consensus (``None`` when
  none was scored);
* ``estimated_f1`` ± ``estimated_f1_se``: the consensus engine's estimate of their F1 against the
  latent truth, averaged over their scored replicas that had one (``None`` otherwise), and
  ``estimated_gt_objects``: the ground-truth objects behind those estimates;
* ``rule_errors_per_100``: rule errors per 100 objects drawn, and ``rule_errors_by_rule``: the same
  errors by rule (the rule's id);
* ``issues_opened`` / ``issues_resolved``: issues the sidecar published on their jobs, and how many
  were resolved since (rework done);
* ``median_hours`` and ``objects_per_hour``: from first sight assigned to completion, as the
  sidecar observed them (an upper bound on working time: a job can wait before it is opened);
* ``gold_7d`` / ``gold_30d`` and ``jobs_7d`` / ``jobs_30d``: the same over the last 7 and 30 days,
  the trend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from cvat_ext.sidecar.state import StateStore, WorkRow
from cvat_ext.workforce.accuracy import AnnotatorAccuracy, accuracies_of, combine

DAY_S = 86400.0


@dataclass(frozen=True)
class Scorecard:
    username: str
    user_id: int
    status: str  # qualified | not_qualified | pending | "" (qualification off)
    jobs: int
    frames: int
    objects: int
    gold_frames: int
    gold_honeypot_frames: int
    honeypots_unread_jobs: int
    gold_accuracy: float | None
    vs_consensus: float | None
    estimated_f1: float | None
    estimated_f1_se: float | None
    estimated_gt_objects: int
    rule_errors: int
    rule_errors_per_100: float | None
    rule_errors_by_rule: dict[str, int]  # rule code -> errors (per 100 objects: divide by objects / 100)
    issues_opened: int
    issues_resolved: int
    median_hours: float | None
    objects_per_hour: float | None
    jobs_7d: int
    gold_7d: float | None
    jobs_30d: int
    gold_30d: float | None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _ratio(num: np.ndarray, den: np.ndarray) -> list[float | None]:
    return [None if d <= 0 else float(n) / float(d) for n, d in zip(num, den)]


def scorecards(store: StateStore, *, project_id: int | None = None, since: float | None = None,
               now: float) -> list[Scorecard]:
    """One scorecard per annotator with completed work (``since``: completed at or after, epoch s)."""
    rows = [r for r in store.work(project_id=project_id, completed=True)
            if since is None or (r.completed_at or 0.0) >= since]
    if not rows:
        return []
    return _cards(rows, store, now)


def _cards(rows: Sequence[WorkRow], store: StateStore, now: float) -> list[Scorecard]:
    users = sorted({(r.username, r.user_id) for r in rows})
    index = {uid: i for i, (_, uid) in enumerate(users)}
    n = len(users)
    who = np.array([index[r.user_id] for r in rows], np.int64)

    def col(values: Sequence[float] | np.ndarray) -> np.ndarray:
        return np.bincount(who, weights=np.asarray(values, np.float64), minlength=n)

    completed = np.array([r.completed_at or 0.0 for r in rows])
    gold = [r.facts.get("gold") or {} for r in rows]
    g_frames = np.array([g.get("frames", 0) for g in gold], np.float64)
    g_honeypots = np.array([g.get("honeypots", 0) for g in gold], np.float64)
    unread = np.array([bool(r.facts.get("gold_honeypots_unread")) for r in rows], np.float64)
    g_matched = np.array([g.get("matched", 0) for g in gold], np.float64)
    g_total = np.array([g.get("gold_objects", 0) + g.get("objects", 0) for g in gold], np.float64)
    objects = np.array([r.facts.get("objects", 0) for r in rows], np.float64)
    hours = (completed - np.array([r.started_at for r in rows])) / 3600.0

    scores = {(s.job_id, s.kind): s for s in store.all_scores()}
    jobs = {j.id: j for j in store.jobs_by_ids([r.job_id for r in rows])}
    vs = np.full(len(rows), np.nan)
    rule_err = np.zeros(len(rows))
    by_rule: list[dict[str, int]] = [{} for _ in users]
    estimates: list[list[AnnotatorAccuracy]] = [[] for _ in users]
    for i, r in enumerate(rows):
        parent = jobs[r.job_id].parent_job_id if r.job_id in jobs else None
        cons = scores.get((parent, "consensus")) if parent is not None else None
        if cons is not None:
            value = cons.detail.get("replicas", {}).get(str(r.job_id))
            vs[i] = np.nan if value is None else float(value)
            estimates[who[i]] += [a for a in accuracies_of(cons.detail) if a.job_id == r.job_id and a.estimated]
        own = scores.get((r.job_id, "rules"))
        if own is not None:
            rule_err[i] = own.rule_errors
            mine = by_rule[who[i]]
            for code, count in own.detail.get("rule_errors", {}).items():
                mine[code] = mine.get(code, 0) + int(count)
    issues = store.issue_counts_by_job()
    opened = np.array([issues.get(r.job_id, (0, 0))[0] for r in rows], np.float64)
    resolved = np.array([issues.get(r.job_id, (0, 0))[1] for r in rows], np.float64)

    has_vs = ~np.isnan(vs)
    vs_sum = np.bincount(who[has_vs], weights=vs[has_vs], minlength=n)
    vs_n = np.bincount(who[has_vs], minlength=n)
    windows = {}
    for days in (7, 30):
        recent = completed >= now - days * DAY_S
        windows[days] = (np.bincount(who[recent], minlength=n),
                         _ratio(2 * np.bincount(who[recent], weights=g_matched[recent], minlength=n),
                                np.bincount(who[recent], weights=g_total[recent], minlength=n)))
    standing = {q.user_id: q.status for q in store.qualifications()}
    obj_sum, hours_sum = col(objects), col(np.maximum(hours, 0.0))
    frames_sum = col([r.facts.get("frames", 0) for r in rows])
    gold_frames_sum, matched_sum, total_sum = col(g_frames), col(g_matched), col(g_total)
    honeypot_sum, unread_sum = col(g_honeypots), col(unread)
    err_sum, opened_sum, resolved_sum = col(rule_err), col(opened), col(resolved)
    job_n = np.bincount(who, minlength=n)
    cards = []
    for i, (username, uid) in enumerate(users):
        err = int(err_sum[i])
        est = combine(username, estimates[i]) if estimates[i] else None
        cards.append(Scorecard(
            username=username, user_id=uid, status=standing.get(uid, ""), jobs=int(job_n[i]),
            frames=int(frames_sum[i]), objects=int(obj_sum[i]), gold_frames=int(gold_frames_sum[i]),
            gold_honeypot_frames=int(honeypot_sum[i]), honeypots_unread_jobs=int(unread_sum[i]),
            gold_accuracy=None if total_sum[i] <= 0 else float(2 * matched_sum[i] / total_sum[i]),
            vs_consensus=None if vs_n[i] == 0 else float(vs_sum[i] / vs_n[i]),
            estimated_f1=None if est is None else est.f1, estimated_f1_se=None if est is None else est.f1_se,
            estimated_gt_objects=0 if est is None else est.gt_objects,
            rule_errors=err, rule_errors_per_100=None if obj_sum[i] <= 0 else 100.0 * err / float(obj_sum[i]),
            rule_errors_by_rule=dict(sorted(by_rule[i].items())),
            issues_opened=int(opened_sum[i]), issues_resolved=int(resolved_sum[i]),
            median_hours=float(np.median(hours[who == i])),
            objects_per_hour=None if hours_sum[i] <= 0 else float(obj_sum[i] / hours_sum[i]),
            jobs_7d=int(windows[7][0][i]), gold_7d=windows[7][1][i],
            jobs_30d=int(windows[30][0][i]), gold_30d=windows[30][1][i]))
    return cards

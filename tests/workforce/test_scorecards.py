"""Scorecards (numpy columns over the store's rows) against a per-annotator loop on random stores."""

from __future__ import annotations

from pathlib import Path
from statistics import median

import numpy as np
import pytest

from cvat_ext.sidecar.state import IssueRow, JobRow, QualificationRow, ScoreRow, WorkRow, open_store
from cvat_ext.workforce.accuracy import AnnotatorAccuracy
from cvat_ext.workforce.scorecards import DAY_S, scorecards

NOW = 2_000_000_000.0


def _fill(store, rng: np.random.Generator, n_jobs: int, n_people: int) -> list[dict]:  # type: ignore[no-untyped-def]
    """A random store; returns what each job is, for the reference computation."""
    truth = []
    replicas: dict[int, dict[str, float]] = {}  # parent -> replica agreements: one consensus score per parent
    people: dict[int, list[dict]] = {}  # parent -> per-annotator figures (AnnotatorAccuracy.as_dict)
    for j in range(n_jobs):
        job_id, parent, user = 100 + j, 10 + j // 3, int(rng.integers(n_people))
        kind = "consensus_replica" if j % 2 else "annotation"
        store.upsert_jobs([JobRow(job_id, 1, parent if kind == "consensus_replica" else None, kind, "annotation",
                                  "completed", user + 1, "2033-01-01T00:00:00Z", 7)])
        started = NOW - float(rng.uniform(0, 40)) * DAY_S
        done = started + float(rng.uniform(60, 36000))
        gold = None
        if rng.random() < 0.7:
            g = int(rng.integers(1, 30))
            m = int(rng.integers(0, g + 1))
            gold = {"frames": int(rng.integers(1, 6)), "gold_objects": g, "objects": m + int(rng.integers(0, 5)),
                    "matched": m}
        facts = {"objects": int(rng.integers(0, 100)), "frames": 10, **({"gold": gold} if gold else {})}
        store.start_work(WorkRow(job_id, user + 1, f"u{user}", 7, 1, kind, started))
        store.complete_work(job_id, completed_at=done, completed_date=f"d{j}", facts=facts)
        agreement = rule_errors = None
        estimate: dict | None = None
        codes: dict[str, int] = {}
        if kind == "consensus_replica" and rng.random() < 0.8:
            agreement = round(float(rng.uniform(0, 1)), 4)
            replicas.setdefault(parent, {})[str(job_id)] = agreement
            if rng.random() < 0.6:  # the engine estimated this replica against the truth
                estimate = {"f1": float(rng.uniform(0, 1)), "se": float(rng.uniform(0, 0.1)),
                            "gt": int(rng.integers(0, 20))}
            people.setdefault(parent, []).append(AnnotatorAccuracy(
                f"u{user}", job_id, agreement, {"f1": estimate["f1"]} if estimate else {},
                {"f1": estimate["se"]} if estimate else {}, estimate["gt"] if estimate else 0).as_dict())
        if kind == "annotation":
            codes = {"min_size": int(rng.integers(0, 3)), "in_frame": int(rng.integers(0, 2))}
            rule_errors = sum(codes.values())
            store.put_score(ScoreRow(f"job:{job_id}", 1, job_id, "rules", None, rule_errors, 0, "pass",
                                     {"rule_errors": codes}, NOW))
        opened = int(rng.integers(0, 3))
        resolved = int(rng.integers(0, opened + 1))
        for k in range(opened):
            status = "resolved" if k < resolved else "open"
            store.put_issue(IssueRow(f"fp{j}-{k}", job_id, 1000 * j + k, 0, status, "m"))
        truth.append({"user": user, "completed": done, "started": started, "facts": facts, "agreement": agreement,
                      "estimate": estimate,
                      "rule_errors": rule_errors or 0, "codes": codes, "opened": opened, "resolved": resolved})
    for parent, agreements in replicas.items():
        store.put_score(ScoreRow(f"consensus:{parent}", 1, parent, "consensus", 0.5, 0, 0, "pass",
                                 {"replicas": agreements, "annotators": people[parent]}, NOW))
    return truth


@pytest.mark.parametrize(("seed", "n_jobs", "n_people"), [(0, 40, 3), (1, 200, 17), (2, 7, 7)])
def test_scorecards_equal_a_per_annotator_loop(tmp_path: Path, seed: int, n_jobs: int, n_people: int) -> None:
    root = open_store(f"sqlite:///{tmp_path / 's.db'}", clock=lambda: NOW)
    store = root.scoped("org")
    truth = _fill(store, np.random.default_rng(seed), n_jobs, n_people)
    store.put_qualification(QualificationRow(1, "u0", "qualified", [], NOW))
    cards = {c.username: c for c in scorecards(store, now=NOW)}
    for user in sorted({t["user"] for t in truth}):
        mine = [t for t in truth if t["user"] == user]
        card = cards[f"u{user}"]
        golds = [t["facts"]["gold"] for t in mine if "gold" in t["facts"]]
        total = sum(g["gold_objects"] + g["objects"] for g in golds)
        assert card.jobs == len(mine) and card.objects == sum(t["facts"]["objects"] for t in mine)
        assert card.gold_frames == sum(g["frames"] for g in golds)
        matched = sum(g["matched"] for g in golds)
        assert card.gold_accuracy == (None if total == 0 else pytest.approx(2 * matched / total))
        agreements = [t["agreement"] for t in mine if t["agreement"] is not None]
        assert card.vs_consensus == (pytest.approx(sum(agreements) / len(agreements)) if agreements else None)
        estimates = [t["estimate"] for t in mine if t["estimate"] is not None]
        if estimates:
            assert card.estimated_f1 == pytest.approx(sum(e["f1"] for e in estimates) / len(estimates))
            se = sum(e["se"] ** 2 for e in estimates) ** 0.5 / len(estimates)
            assert card.estimated_f1_se == pytest.approx(se)
            assert card.estimated_gt_objects == sum(e["gt"] for e in estimates)
        else:
            assert card.estimated_f1 is None and card.estimated_f1_se is None and card.estimated_gt_objects == 0
        assert card.rule_errors == sum(t["rule_errors"] for t in mine)
        by_rule: dict[str, int] = {}
        for t in mine:
            for code, n in t["codes"].items():
                by_rule[code] = by_rule.get(code, 0) + n
        assert card.rule_errors_by_rule == dict(sorted(by_rule.items()))
        assert (card.issues_opened, card.issues_resolved) == (sum(t["opened"] for t in mine),
                                                              sum(t["resolved"] for t in mine))
        assert card.median_hours == pytest.approx(median((t["completed"] - t["started"]) / 3600 for t in mine))
        assert card.jobs_7d == sum(t["completed"] >= NOW - 7 * DAY_S for t in mine)
        assert card.jobs_30d == sum(t["completed"] >= NOW - 30 * DAY_S for t in mine)
        assert card.status == ("qualified" if user == 0 else "")
    assert scorecards(store, project_id=99, now=NOW) == []
    later = scorecards(store, since=NOW - 7 * DAY_S, now=NOW)
    assert sum(c.jobs for c in later) == sum(t["completed"] >= NOW - 7 * DAY_S for t in truth)
    root.close()

"""Workforce QA figures: report pages at project scale, scorecard updates, and the qualification gate.

    python3 bench/workforce.py [--jobs 1000] [--annotators 50] [--seeds 20]

1. **Pages.** A state store (SQLite file) filled as a sidecar would leave it for a project of
   ``--jobs`` annotator jobs by ``--annotators`` people (gold checks, consensus scores, issues), and
   every report page rendered server-side through the same handler the sidecar serves (signed-in
   session), best of 5. Target: < 300 ms per page.
2. **Scorecard update after a cycle.** One more completed job recorded, the annotator's standing
   recomputed from all their gold checks, and every scorecard rebuilt. Target: < 1 s.
3. **Qualification.** Generated annotators whose true accuracy is known (each gold object drawn
   correctly with probability = accuracy, plus spurious objects at the same rate), each doing jobs
   with 3-6 gold frames of 2-8 objects, decided with the default policy (bar 0.9, 10 gold frames).
   Printed: the confusion table of the decision against the truth, how many jobs it took to
   decide, and false blocks among annotators whose true accuracy is >= bar + 0.05 (target: 0).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from results_io import BenchResults

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cvat_ext.reports.access import Sessions, Viewer  # noqa: E402
from cvat_ext.reports.pages import ReportPages  # noqa: E402
from cvat_ext.sidecar.state import IssueRow, JobRow, ScoreRow, WorkRow, open_store  # noqa: E402
from cvat_ext.workforce.gold import GoldCheck  # noqa: E402
from cvat_ext.workforce.qualification import QualificationPolicy, standing  # noqa: E402
from cvat_ext.workforce.scorecards import scorecards  # noqa: E402

NOW = 2_000_000_000.0


def _gold(rng: np.random.Generator, accuracy: float) -> dict[str, int]:
    frames = int(rng.integers(3, 7))
    gold_objects = int(rng.integers(2, 9, size=frames).sum())
    matched = int(rng.binomial(gold_objects, accuracy))
    extra = int(rng.binomial(gold_objects, 1 - accuracy))
    return {"frames": frames, "gold_objects": gold_objects, "objects": matched + extra, "matched": matched}


def fill(store, n_jobs: int, n_people: int, rng: np.random.Generator) -> None:  # type: ignore[no-untyped-def]
    accuracy = rng.uniform(0.6, 1.0, size=n_people)
    jobs, scores, issues = [], [], []
    for j in range(n_jobs):
        job_id, parent = 1000 + j, 10 + j // 3
        user = int(rng.integers(n_people))
        task = 1 + j // 30
        jobs.append(JobRow(job_id, task, parent, "consensus_replica", "annotation", "completed", user + 1,
                           "2033-05-18T03:33:20Z", 7))
        started = NOW - rng.uniform(1, 60) * 86400
        store.start_work(WorkRow(job_id, user + 1, f"user{user:02d}", 7, task, "consensus_replica", started))
        store.complete_work(job_id, completed_at=started + rng.uniform(600, 20000), completed_date=f"d{j}",
                            facts={"objects": int(rng.integers(20, 200)), "frames": 10,
                                   "gold": _gold(rng, accuracy[user])})
        if j % 3 == 0:
            replicas = {str(1000 + j + k): round(float(rng.uniform(0.5, 1)), 4) for k in range(3)}
            scores.append(ScoreRow(f"consensus:{parent}", task, parent, "consensus", float(rng.uniform(0.6, 1)), 0,
                                   3, "pass (agreement ok)", {"replicas": replicas}, NOW))
        if rng.random() < 0.3:
            issues.append(IssueRow(f"fp{j}", job_id, j, 0, "open" if rng.random() < 0.5 else "resolved", "m"))
    store.upsert_jobs(jobs)
    for s in scores:
        store.put_score(s)
    for i in issues:
        store.put_issue(i)


def best_ms(fn, n: int = 5) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return min(times)


def pages_bench(n_jobs: int, n_people: int) -> list[dict[str, object]]:
    figures: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = open_store(f"sqlite:///{tmp}/state.db", clock=lambda: NOW)
        store = root.scoped("org")
        fill(store, n_jobs, n_people, np.random.default_rng(0))
        sessions = Sessions(clock=lambda: NOW)
        sid = sessions.create(Viewer("manager", frozenset({"org"})))
        pages = ReportPages(cvat_url="http://cvat", stores={"org": store}, sessions=sessions, min_agreement=0.9,
                            verify=lambda **kw: Viewer("x", frozenset()), qualification_bar=0.9, clock=lambda: NOW)
        headers = {"Cookie": f"cvat_ext_session={sid}"}
        print(f"\n1. pages: {n_jobs} jobs, {n_people} annotators (best of 5, server-side render)")
        for name, path in (("organization overview", "/reports/org/org"), ("task page", "/reports/org/org/task/1"),
                           ("annotator page", "/reports/org/org/annotator/1")):
            answer = pages.handle("GET", path, headers, b"")
            assert answer.status == 200, (path, answer.status)
            ms = best_ms(lambda p=path: pages.handle("GET", p, headers, b""))
            print(f"   {name:<24} {ms:7.1f} ms  ({len(answer.body) / 1024:.0f} kB)   target < 300 ms")
            figures.append({"name": f"{name} render ({n_jobs} jobs, {n_people} annotators)", "value": round(ms, 1),
                            "unit": "ms", "target": "< 300", "met": ms < 300})

        def update() -> None:
            job_id = 900_000 + int(time.perf_counter_ns() % 1_000_000)
            store.start_work(WorkRow(job_id, 1, "user00", 7, 1, "consensus_replica", NOW - 3600))
            store.complete_work(job_id, completed_at=NOW, completed_date="now", facts={
                "objects": 50, "frames": 10, "gold": {"frames": 4, "gold_objects": 20, "objects": 20, "matched": 19}})
            rows = store.work(user_id=1, completed=True)
            standing([GoldCheck(r.job_id, **r.facts["gold"]) for r in rows if "gold" in r.facts], QualificationPolicy())
            scorecards(store, now=NOW)

        ms = best_ms(update)
        print(f"2. scorecard update after a cycle (record a job, re-qualify, rebuild all cards): {ms:.1f} ms   "
              "target < 1000 ms")
        figures.append({"name": "scorecard update after a cycle", "value": round(ms, 1), "unit": "ms",
                        "target": "< 1000", "met": ms < 1000})
        root.close()
    return figures


def qualification_bench(seeds: int, per_seed: int = 200) -> list[dict[str, object]]:
    policy = QualificationPolicy()
    confusion = {("below", "not_qualified"): 0, ("below", "qualified"): 0, ("above", "not_qualified"): 0,
                 ("above", "qualified"): 0}
    false_blocks = clear_above = 0
    jobs_to_decide = []
    margin_below = margin_caught = 0
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        for accuracy in rng.uniform(0.6, 1.0, size=per_seed):
            checks: list[GoldCheck] = []
            decided = None
            for k in range(1, 13):
                checks.append(GoldCheck(k, **_gold(rng, float(accuracy))))
                now = standing(checks, policy)
                if now.status != "pending" and decided is None:
                    decided = (k, now.status)
            assert decided is not None
            jobs_to_decide.append(decided[0])
            truth = "below" if accuracy < policy.bar else "above"
            confusion[(truth, decided[1])] += 1
            if accuracy >= policy.bar + 0.05:
                clear_above += 1
                false_blocks += decided[1] == "not_qualified"
            if accuracy < policy.bar - 0.05:
                margin_below += 1
                margin_caught += decided[1] == "not_qualified"
    n = sum(confusion.values())
    print(f"\n3. qualification: {n} generated annotators (true accuracy 0.6-1.0), bar {policy.bar}, "
          f"{policy.min_gold_frames} gold frames to decide")
    print(f"   {'':<22}{'decided: not qualified':>24}{'decided: qualified':>20}")
    for truth, label in (("below", "true accuracy < bar"), ("above", "true accuracy >= bar")):
        print(f"   {label:<22}{confusion[(truth, 'not_qualified')]:>24}{confusion[(truth, 'qualified')]:>20}")
    print(f"   decided on job {np.median(jobs_to_decide):.0f} (median; the first job with enough gold frames)")
    print(f"   false blocks among true accuracy >= bar + 0.05: {false_blocks} of {clear_above}   target 0")
    print(f"   caught among true accuracy < bar - 0.05: {margin_caught} of {margin_below}")
    return [
        {"name": "qualification false blocks (true accuracy >= bar + 0.05)", "value": false_blocks,
         "unit": f"of {clear_above} annotators", "target": "0", "met": false_blocks == 0},
        {"name": "qualification caught (true accuracy < bar - 0.05)", "value": margin_caught,
         "unit": f"of {margin_below} annotators", "target": None, "met": None},
        {"name": "qualification: jobs until decided (median)", "value": float(np.median(jobs_to_decide)),
         "unit": "jobs", "target": None, "met": None},
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--annotators", type=int, default=50)
    ap.add_argument("--seeds", type=int, default=20)
    args = ap.parse_args()
    figures = pages_bench(args.jobs, args.annotators) + qualification_bench(args.seeds)
    results = BenchResults(__file__, note=f"{args.jobs} jobs, {args.annotators} annotators, {args.seeds} seeds")
    for f in figures:
        results.add(**f)  # type: ignore[arg-type]
    results.write()


if __name__ == "__main__":
    main()

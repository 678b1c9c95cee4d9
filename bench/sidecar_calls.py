"""CVAT API calls per steady-state sidecar cycle, and jobs scored per second.

Seeds the CVAT stand-in (tests.cvat_standin: real HTTP, the real cvat-sdk client) with 1,000 jobs:
20 plain tasks x 25 annotation jobs and 25 consensus tasks x 5 parents x (1 + 3 replicas), every
job completed with a few boxes. Then:

1. cold cycle: the sidecar scores everything (rules on plain jobs, consensus on parents);
2. steady state: 10 jobs change (5 plain jobs, 5 replicas of different parents), one cycle;
3. idle: one more cycle with nothing changed.

Prints the CVAT calls of each cycle by endpoint (target: <= 20 reads for the steady-state cycle;
the writes are the issues and job moves the changes call for, one per changed job here), and the
cold cycle's jobs scored per second (HTTP round trips to the stand-in included).
Run: ``python3 bench/sidecar_calls.py [--jobs-per-task N]``.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from results_io import BenchResults

from cvat_ext.cvat.client import CvatClient
from cvat_ext.sidecar import engines
from cvat_ext.sidecar.config import load_settings
from cvat_ext.sidecar.cycle import CycleReport
from cvat_ext.sidecar.metrics import endpoint_label
from cvat_ext.sidecar.service import SidecarService
from tests.cvat_standin import CvatStandIn

LABELS = [{"name": "car", "type": "rectangle"}, {"name": "person", "type": "any"}]


def boxes(rng: random.Random, frames: range, label_ids: list[int], per_frame: int = 2) -> dict[str, Any]:
    shapes = []
    for frame in frames:
        for k in range(per_frame):
            x, y = 40.0 + 200 * k + rng.uniform(-2, 2), 60.0 + rng.uniform(-2, 2)
            shapes.append({"type": "rectangle", "frame": frame, "label_id": label_ids[k % len(label_ids)],
                           "points": [x, y, x + 90, y + 70], "rotation": 0.0, "occluded": False, "outside": False,
                           "z_order": 0, "group": 0, "source": "manual", "attributes": [], "elements": []})
    return {"version": 0, "tags": [], "shapes": shapes, "tracks": []}


def seed(standin: CvatStandIn, *, plain_tasks: int, plain_jobs: int, consensus_tasks: int,
         parents: int) -> tuple[str, list[int], list[int]]:
    standin.add_user("admin", is_superuser=True)
    for name in ("ann1", "ann2", "ann3", "rev1", "qabot"):
        standin.add_user(name)
    standin.add_org("bench", owner="admin")
    for name, role in (("ann1", "worker"), ("ann2", "worker"), ("ann3", "worker"), ("rev1", "supervisor"),
                       ("qabot", "maintainer")):
        standin.add_membership("bench", name, role)
    token = standin.add_token("qabot")
    project = standin.add_project("bench", org="bench", labels=LABELS, owner="admin")
    rng = random.Random(0)
    plain: list[int] = []
    replicas: list[int] = []
    for t in range(plain_tasks):
        task = standin.add_task(f"plain {t}", project_id=project, frames=plain_jobs * 2, segment_size=2, owner="admin")
        label_ids = [lb["id"] for lb in standin.labels(task_id=task)]
        for job in standin.jobs(task_id=task):
            standin.set_annotations(job["id"], boxes(rng, range(job["start_frame"], job["stop_frame"] + 1), label_ids))
            standin.set_job(job["id"], state="completed", assignee="ann1")
            plain.append(job["id"])
    for t in range(consensus_tasks):
        task = standin.add_task(f"consensus {t}", project_id=project, frames=parents * 2, segment_size=2,
                                consensus_replicas=3, owner="admin")
        label_ids = [lb["id"] for lb in standin.labels(task_id=task)]
        for job in standin.jobs(task_id=task, type="consensus_replica"):
            frames = range(job["start_frame"], job["stop_frame"] + 1)
            standin.set_annotations(job["id"], boxes(rng, frames, label_ids))
            annotator = ("ann1", "ann2", "ann3")[len(replicas) % 3]
            standin.set_job(job["id"], state="completed", assignee=annotator)
            replicas.append(job["id"])
    return token, plain, replicas


def show(name: str, report: CycleReport, calls: Counter[str]) -> None:
    print(f"{name}: {report.cvat_calls} CVAT calls, {report.changed_jobs} changed jobs, {report.units} units, "
          f"{report.jobs_scored} jobs scored, {report.seconds:.2f} s")
    for endpoint, n in sorted(calls.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"    {n:5d}  {endpoint}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plain-tasks", type=int, default=20)
    parser.add_argument("--jobs-per-task", type=int, default=25)
    parser.add_argument("--consensus-tasks", type=int, default=25)
    parser.add_argument("--parents-per-task", type=int, default=5)
    parser.add_argument("--changed", type=int, default=10)
    args = parser.parse_args()
    with CvatStandIn(validate_responses=False) as standin, tempfile.TemporaryDirectory() as tmp:
        token, plain, replicas = seed(standin, plain_tasks=args.plain_tasks, plain_jobs=args.jobs_per_task,
                                      consensus_tasks=args.consensus_tasks, parents=args.parents_per_task)
        total = len(standin.jobs())
        settings = load_settings(None, overrides={
            # unthrottled, to measure the sidecar; the default self rate limit (cvat.max_calls_per_s
            # 20) would stretch the cold cycle's calls over calls / 20 seconds
            "cvat": {"url": standin.url, "access_token": token, "org": "bench", "max_calls_per_s": 0},
            "state": {"url": f"sqlite:///{tmp}/state.db"},
            "rules": {"packs": [str(Path(__file__).resolve().parents[1] / "qa_rules" / "default.yaml")]},
            "reviewers": {"roles": ["supervisor"]},
        })
        client = CvatClient(standin.url, access_token=token, org="bench")
        svc = SidecarService(settings, client=client, rules=engines.rule_runner(settings),
                             consensus=engines.consensus_runner(settings), owner="bench")

        last_calls: Counter[str] = Counter()

        def cycle(name: str) -> CycleReport:
            before = Counter(client.calls)
            report = svc.run_once()
            delta = Counter({endpoint_label(k): v for k, v in (Counter(client.calls) - before).items()})
            show(name, report, delta)
            last_calls.clear()
            last_calls.update(delta)
            return report

        print(f"{total} jobs ({len(plain)} plain annotation jobs, {len(replicas)} consensus replicas)")
        cold = cycle("cold cycle (everything new)")
        print(f"  jobs scored per second (cold cycle, CVAT round trips included): "
              f"{cold.jobs_scored / max(cold.seconds, 1e-9):.1f}")
        # cycles run poll_interval_s (30 s) apart in production; the cursor re-lists a 1 s overlap
        time.sleep(1.1)
        cycle("settle cycle (lists the jobs the cold cycle itself moved)")
        rng = random.Random(1)
        half = args.changed // 2
        by_parent = {j["parent_job_id"]: j["id"] for j in standin.jobs(type="consensus_replica")}
        changed = rng.sample(plain, args.changed - half) + rng.sample(sorted(by_parent.values()), half)
        for job_id in changed:
            data = standin.get_annotations(job_id)
            data["shapes"] = data["shapes"][:-1]  # an annotator deletes a box, saves, completes the job
            standin.set_annotations(job_id, data)
            standin.set_job(job_id, stage="annotation", state="completed")
        time.sleep(1.1)
        steady = cycle(f"steady-state cycle ({len(changed)} of {total} jobs changed)")
        steady_calls = Counter(last_calls)
        for job_id, decision in sorted(steady.decisions.items()):
            print(f"    job {job_id}: {decision}")
        time.sleep(1.1)
        idle = cycle("idle cycle (nothing changed)")
        svc.close()
        target = 20
        writes = sum(n for k, n in steady_calls.items() if not k.startswith("GET "))
        reads = steady.cvat_calls - writes
        print(f"CVAT calls per steady-state cycle: {steady.cvat_calls} = {reads} reads (change detection + the "
              f"changed jobs' annotations; target <= {target}: {'OK' if reads <= target else 'OVER TARGET'}) "
              f"+ {writes} writes (the decisions those {len(changed)} changes caused); idle cycle: {idle.cvat_calls}")
        results = BenchResults(__file__, note=f"CVAT stand-in over real HTTP, {total:,} jobs ({len(plain)} plain, "
                               f"{len(replicas)} consensus replicas), {len(changed)} changed; no self rate limit")
        results.add("steady-state cycle: reads", reads, "calls", f"<= {target}", reads <= target)
        results.add("steady-state cycle: writes (issues and job moves the changes call for)", writes, "calls")
        results.add("idle cycle: calls", idle.cvat_calls, "calls")
        results.add("cold cycle: CVAT calls", cold.cvat_calls, "calls")
        results.add("cold cycle: jobs scored per second (round trips included)",
                    cold.jobs_scored / max(cold.seconds, 1e-9), "jobs/s")
        results.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())

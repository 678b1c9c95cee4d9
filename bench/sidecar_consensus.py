"""Benchmark: the sidecar's consensus unit, from CVAT's response bytes to what it publishes, per object and columnar.

A 3-replica job (``bench/consensus_generator.py``: precise / moderate / sloppy, 20 boxes a frame,
1,000 frames by default) is turned into the ``GET /api/jobs/{id}/annotations`` response bodies
CVAT sends (JSON bytes, as ``json.dumps`` writes them). Both paths start from those same bytes and
do what the sidecar's consensus unit does with them up to the HTTP calls, in this process, timed
side by side (best of ``--repeat``, CPU time of one core, each run from a collected heap; the HTTP
exchange itself is not timed):

* ``per-object`` (the sidecar before issue 12): the body decoded as the CVAT client decoded it
  (``json.loads`` of the response's data, a dict), ``parse_job_annotations`` per body (``Shape``
  objects), ``score_replicas``, one ``Finding`` per consensus finding and replica at fault,
  ``decide``, the findings metric counted one finding at a time and the publisher's pick over all
  of them, the merge built as ``JobAnnotations`` and dumped as the PUT body;
* ``columnar`` (the sidecar now: ``CvatClient.get_annotations_bytes``): ``read_annotations_bytes``
  per body (msgspec decodes the bytes straight into columns), the sidecar's
  ``ConsensusEngineRunner`` (``score_tables``; findings per replica as ``ReplicaFindings``
  columns), the metric counted per severity, the publisher's pick over the columns, the merge
  written from its columns as the PUT body.

When the job is accepted both end with the PUT body's text: per object as cvat-sdk serialises the
dumped dict (``to_json`` + ``json.dumps``), columnar the text written from columns, which the
client sends as it is (``JsonText``). The job is run twice: under the sidecar's default policy
(it is routed to an expert: no merge is written, but the per-object runner built it anyway) and
accepted (``min_agreement`` 0: the merge is written). The script checks that both paths reach the
same verdict, pick the same issues, count the same findings and send the same JSON, prints
the time of each stage of the columnar path (where the time goes), the speed-up (target: >= 10x)
and writes ``bench/results/sidecar_consensus.json``.

    python3 bench/sidecar_consensus.py [--frames 1000] [--kind rectangle]
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))

from consensus_generator import Scenario, generate
from cvat_sdk.api_client.model_utils import to_json
from results_io import BenchResults

from cvat_ext.annotations.columnar_json import read_annotations_bytes
from cvat_ext.annotations.cvat_json import dump_job_annotations, parse_job_annotations
from cvat_ext.consensus.engine import score_replicas
from cvat_ext.consensus.replica_findings import at_fault, on_replica
from cvat_ext.consensus.settings import ConsensusSettings
from cvat_ext.qa.decision import Agreement, Policy, Verdict, decide, replica_is_sloppy
from cvat_ext.qa.findings import SEVERITY_RANK, Finding
from cvat_ext.sidecar.engines import ConsensusEngineRunner
from cvat_ext.sidecar.interface import ReplicaInput
from cvat_ext.sidecar.metrics import SidecarMetrics
from cvat_ext.sidecar.publish import publishable
from cvat_ext.workforce.accuracy import AnnotatorAccuracy

TARGET_SPEEDUP = 10.0
#: the sidecar's defaults route this job to an expert (its group agreement is below 0.9): no merge
#: is written; with ``min_agreement`` 0 the job is accepted and the merge is PUT
POLICIES = {"routed": Policy(min_agreement=0.9), "accepted": Policy(min_agreement=0.0)}
MIN_RANK, PER_JOB = SEVERITY_RANK["warning"], 50


class Unit:
    """What one consensus unit hands to CVAT: the issues picked, the findings counted, the PUT body."""

    def __init__(self, verdict: Verdict, issues: list[Finding], counted: Counter[str], put_body: str | None) -> None:
        self.verdict, self.issues, self.counted, self.put_body = verdict, issues, counted, put_body

    def same_as(self, other: Unit) -> bool:
        # repr: a finding's votes may hold a NaN similarity, and NaN != NaN
        mine, theirs = (json.loads(u.put_body) if u.put_body is not None else None for u in (self, other))
        return (self.verdict, repr(self.issues), self.counted, mine) == (
            other.verdict,
            repr(other.issues),
            other.counted,
            theirs,
        )


def _sent(body: dict[str, Any]) -> str:
    """The PUT body as cvat-sdk's REST client serialises it."""
    return json.dumps(to_json(body))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--kind", default="rectangle")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    g = generate(Scenario(kind=args.kind, frames=args.frames, objects_per_frame=20, seed=0))
    # what CVAT sends: the response bytes both paths start from
    bodies = {100 + i: json.dumps(dump_job_annotations(ann)).encode() for i, ann in enumerate(g.replicas.values())}
    settings = ConsensusSettings(iou_thr=0.5)
    runner = ConsensusEngineRunner(settings)
    metrics = SidecarMetrics()  # a registry of its own, as the cycle's
    stages: dict[str, float] = {}

    def per_object(policy: Policy) -> Unit:
        # the client's decode (Transport.json) then the per-object parser
        objects = {f"job{j}": parse_job_annotations(json.loads(b), where=f"job {j}") for j, b in bodies.items()}
        result = score_replicas(objects, g.labels, g.meta, settings)
        job_of = {f"job{j}": j for j in bodies}
        numbers = {a.annotator: AnnotatorAccuracy.from_stats(a, job_of[a.annotator]) for a in result.annotators}
        agreement = {n.job_id: n.vs_consensus_f1 for n in numbers.values()}
        found = [on_replica(f, job_of[n], n, numbers[n].said()) for f in result.findings for n in at_fault(f)]
        merged = result.merged  # the runner built the merge as objects whatever the decision
        decided = decide(found, policy, job_id=1, agreement=Agreement(result.summary.f1, agreement))
        issues = publishable(decided.issues, min_rank=MIN_RANK, max_per_job=PER_JOB)
        counted = Counter(f"{f.source}/{f.severity}" for f in [*decided.issues, *decided.recorded])
        for f in [*decided.issues, *decided.recorded]:
            metrics.findings.labels(source=f.source, severity=f.severity).inc()
        accepted = decided.verdict is Verdict.ACCEPT
        return Unit(decided.verdict, issues, counted, _sent(dump_job_annotations(merged)) if accepted else None)

    def columnar(policy: Policy) -> Unit:
        clock = time.process_time
        t0 = clock()
        inputs = [
            ReplicaInput(j, None, columns=read_annotations_bytes(b, where=f"job {j}", last_frame=g.meta.stop_frame))
            for j, b in bodies.items()
        ]
        t1 = clock()
        outcome = runner.score(1, inputs, g.labels, g.meta)
        t2 = clock()
        agree = Agreement(outcome.agreement, outcome.replica_agreement)
        decided = decide(outcome.findings, policy, job_id=1, agreement=agree)
        table = outcome.replica_findings
        assert table is not None and outcome.merged_json is not None
        rows = table.on_jobs([j for j in bodies if replica_is_sloppy(j, agree, policy)])
        counted = Counter(f"{f.source}/{f.severity}" for f in [*decided.issues, *decided.recorded])
        for severity, n in table.severity_counts(rows).items():
            counted[f"consensus/{severity}"] += n
            metrics.findings.labels(source="consensus", severity=severity).inc(n)
        for f in [*decided.issues, *decided.recorded]:
            metrics.findings.labels(source=f.source, severity=f.severity).inc()
        issues = publishable(decided.issues, min_rank=MIN_RANK, max_per_job=PER_JOB, table=table, rows=rows)
        t3 = clock()
        # written only when the job is accepted; CvatClient.put_annotations_json sends it as it is
        put_body = outcome.merged_json() if decided.verdict is Verdict.ACCEPT else None
        t4 = clock()
        for name, seconds in (("read bodies", t1 - t0), ("score", t2 - t1), ("pick issues", t3 - t2),
                              ("PUT body", t4 - t3)):  # fmt: skip
            key = f"{decided.verdict}: {name}"
            stages[key] = min(stages.get(key, float("inf")), seconds)
        return Unit(decided.verdict, issues, counted, put_body)

    results = BenchResults(__file__)
    stem = f"sidecar {args.kind} {args.frames} frames"
    print(f"sidecar consensus unit, {args.kind}, {args.frames} frames x 3 x 20 objects (CPU, best of {args.repeat})")
    for case, policy in POLICIES.items():
        runs: dict[str, Callable[[Policy], Unit]] = {"per-object": per_object, "columnar": columnar}
        timings: dict[str, float] = {}
        units: dict[str, Unit] = {}
        for _ in range(args.repeat):
            for name, run in runs.items():
                # untimed: the other path's garbage (the per-object result holds reference cycles,
                # so it waits for the collector) would otherwise slow the next run's allocations
                gc.collect()
                t0 = time.process_time()
                units[name] = run(policy)
                timings[name] = min(timings.get(name, float("inf")), time.process_time() - t0)
        same = units["per-object"].same_as(units["columnar"])
        speedup = timings["per-object"] / timings["columnar"]
        unit = units["columnar"]
        print(
            f" job {case} (verdict {unit.verdict}; {sum(unit.counted.values())} findings, {len(unit.issues)} issues, "
            f"merge {'written' if unit.put_body is not None else 'not written'}):"
        )
        for name, seconds in timings.items():
            print(f"  {name:>10}: {seconds:6.3f} s  ({args.frames / seconds:7.0f} frames/s)")
        for name, seconds in stages.items():
            if name.startswith(f"{unit.verdict}:"):
                print(f"    columnar {name.split(': ')[1]:<12} {seconds:6.3f} s")
                results.add(f"{stem}, {case}: columnar, {name.split(': ')[1]}", round(seconds, 4), "s")
        print(f"  speed-up {speedup:.1f}x (target >= {TARGET_SPEEDUP:.0f}x); same verdict, issues, counts, PUT: {same}")
        results.add(f"{stem}, {case}: per-object", round(timings["per-object"], 4), "s")
        results.add(f"{stem}, {case}: columnar", round(timings["columnar"], 4), "s")
        met = speedup >= TARGET_SPEEDUP
        results.add(f"{stem}, {case}: speed-up", round(speedup, 2), "x", f">= {TARGET_SPEEDUP:.0f}", met)
        results.add(f"{stem}, {case}: same verdict, issues, counts, PUT body", float(same), "bool", "1", same)
    results.write()


if __name__ == "__main__":
    main()

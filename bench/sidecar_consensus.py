"""Benchmark: the sidecar scoring a consensus job from CVAT bodies, today's path and the columnar one.

A 3-replica job (``bench/consensus_generator.py``: precise / moderate / sloppy, 20 boxes a frame,
1,000 frames by default) is turned into the ``GET /api/jobs/{id}/annotations`` bodies the CVAT
client hands the sidecar (decoded JSON). Both paths then do what the sidecar's consensus unit does
with them, in this process, timed side by side (best of ``--repeat``, CPU time):

* ``today``: ``parse_job_annotations`` per body (``Shape`` objects), then
  :class:`~cvat_ext.sidecar.engines.ConsensusEngineRunner` (``score_replicas``, findings, merge);
* ``columnar``: ``read_annotations_body`` per body (columns), then the same runner
  (``score_tables``).

Prints both, the speed-up (target: >= 10x) and whether the two outcomes agree; writes
``bench/results/sidecar_consensus.json``.

    python3 bench/sidecar_consensus.py [--frames 1000] [--kind rectangle]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))

from consensus_generator import Scenario, generate
from results_io import BenchResults

from cvat_ext.annotations.columnar_json import read_annotations_body
from cvat_ext.annotations.cvat_json import dump_job_annotations, parse_job_annotations
from cvat_ext.consensus.settings import ConsensusSettings
from cvat_ext.sidecar.engines import ConsensusEngineRunner
from cvat_ext.sidecar.interface import ConsensusOutcome, ReplicaInput

ROOT = Path(__file__).resolve().parents[1]
TARGET_SPEEDUP = 10.0


def _plain(outcome: ConsensusOutcome) -> Any:
    return (
        outcome.agreement,
        sorted(outcome.replica_agreement.items()),
        [(f.job_id, f.frame, f.code, f.message) for f in outcome.findings],
        len(outcome.merged.shapes) if outcome.merged is not None else None,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--kind", default="rectangle")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    g = generate(Scenario(kind=args.kind, frames=args.frames, objects_per_frame=20, seed=0))
    bodies = {100 + i: dump_job_annotations(ann) for i, ann in enumerate(g.replicas.values())}
    runner = ConsensusEngineRunner(ConsensusSettings(iou_thr=0.5))

    def today() -> ConsensusOutcome:
        inputs = [ReplicaInput(j, None, parse_job_annotations(b, where=f"job {j}")) for j, b in bodies.items()]
        outcome = runner.score(1, inputs, g.labels, g.meta)
        assert outcome.merged is not None
        return outcome

    def columnar() -> ConsensusOutcome:
        stop = g.meta.stop_frame
        inputs = [
            ReplicaInput(j, None, columns=read_annotations_body(b, where=f"job {j}", last_frame=stop))
            for j, b in bodies.items()
        ]
        outcome = runner.score(1, inputs, g.labels, g.meta)
        assert outcome.merged is not None
        return outcome

    timings: dict[str, float] = {}
    outcomes: dict[str, ConsensusOutcome] = {}
    for _ in range(args.repeat):
        for name, run in (("today", today), ("columnar", columnar)):
            t0 = time.process_time()
            outcomes[name] = run()
            timings[name] = min(timings.get(name, float("inf")), time.process_time() - t0)
    same = _plain(outcomes["today"]) == _plain(outcomes["columnar"])
    speedup = timings["today"] / timings["columnar"]
    print(f"sidecar consensus unit, {args.kind}, {args.frames} frames x 3 x 20 objects (CPU, best of {args.repeat})")
    for name, seconds in timings.items():
        print(f"  {name:>8}: {seconds:6.2f} s  ({args.frames / seconds:7.0f} frames/s)")
    print(f"  speed-up {speedup:.1f}x (target >= {TARGET_SPEEDUP:.0f}x); same outcome: {same}")

    figures = [
        {"name": f"sidecar {args.kind} {args.frames} frames: today", "value": round(timings["today"], 4),
         "unit": "s", "target": None, "met": None},
        {"name": f"sidecar {args.kind} {args.frames} frames: columnar", "value": round(timings["columnar"], 4),
         "unit": "s", "target": None, "met": None},
        {"name": f"sidecar {args.kind} {args.frames} frames: speed-up", "value": round(speedup, 2), "unit": "x",
         "target": f">= {TARGET_SPEEDUP:.0f}", "met": speedup >= TARGET_SPEEDUP},
        {"name": f"sidecar {args.kind} {args.frames} frames: same outcome", "value": float(same), "unit": "bool",
         "target": "1", "met": same},
    ]  # fmt: skip
    results = BenchResults(__file__)
    results.add_all(figures)
    results.write()


if __name__ == "__main__":
    main()

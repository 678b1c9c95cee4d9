"""The sidecar under faults and hostile webhooks: the two targets of issue 16, with their figures.

1. Fault run (``tests.reliability.fault_run``): the real sidecar and cvat-sdk client talk to the
   CVAT stand-in through the fault-injecting proxy (``tests.reliability.fault_proxy``); 20 % of
   requests are faulted (502/503, 429 with Retry-After, connection resets, stalls past the client
   timeout, POSTs that CVAT applied but that answer 502 or reset, POSTs committed after the client
   gave up). Per seed: a start-up check, ``--cycles`` faulted cycles, then settling cycles without
   faults. Run with the default write-visibility window (120 s) and with a 0 s window, where only
   the duplicate check stands between a late write and a duplicate issue; and both again as a
   write stress (20 % of reads faulted, 50 % of writes, writes only ambiguous: applied-then-502,
   applied-then-reset, committed late), since one run makes only ~10 writes; and a baseline of the
   write stress with neither window nor duplicate check (what issue 16 measured), without targets.
   Targets: 0 duplicates left open, 0 lost actions, 0 exits.
2. Webhook fuzz (``tests.reliability.webhook_fuzz``): ``--fuzz`` seeded hostile requests per scope
   (nothing in scope, the whole organization, one task) against a running sidecar, with a second
   organization whose job ids the fuzzer names; then two cycles. Targets: every request answered
   with 401/400/413/200, nothing acted on without a signature or outside the organization and scope.

Prints the figures and writes them to ``bench/results/sidecar_faults.json``.
Run: ``python3 bench/sidecar_faults.py [--seeds 5] [--cycles 8] [--fuzz 400]`` (about a minute).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from results_io import BenchResults

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.reliability.fault_run import FaultRunResult, fault_run
from tests.reliability.webhook_fuzz import SCOPES, webhook_fuzz_run


def figure(name: str, value: float, unit: str, target: str | None = None, met: bool | None = None) -> dict[str, Any]:
    return {"name": name, "value": value, "unit": unit, "target": target, "met": met}


def fault_figures(label: str, runs: list[FaultRunResult], *, baseline: bool = False) -> list[dict[str, Any]]:
    """Figures of one variant; a baseline's figures carry no target (they show the problem)."""
    faults: Counter[str] = Counter()
    for r in runs:
        faults.update(r.faults)
    requests = sum(r.faulted_phase_requests for r in runs)
    injected = sum(n for kind, n in faults.items() if kind != "late:landed")
    dup_open = sum(r.duplicates_open for r in runs)
    lost = sum(r.lost_actions for r in runs)
    exits = sum(r.exits for r in runs)
    goal = "" if baseline else " (target 0)"
    print(
        f"\nfault run, {label}: {len(runs)} seeds; while faults were on: {requests} requests, "
        f"{injected} faulted ({injected / requests:.1%}); {sum(r.requests for r in runs)} requests in all"
    )
    print("  faults by kind: " + ", ".join(f"{k} {n}" for k, n in sorted(faults.items())))
    print(
        f"  issue POSTs CVAT committed while the client saw a failure: {sum(r.issue_posts_landed_unseen for r in runs)}"
    )
    print(
        f"  duplicate issues created {sum(r.duplicates_created for r in runs)}, resolved by the duplicate check "
        f"{sum(r.duplicates_resolved for r in runs)}, left open {dup_open}{goal}"
    )
    print(f"  lost actions {lost}{goal}, exits {exits}{goal}")
    for r in runs:
        for what in r.lost:
            print(f"    seed {r.seed}: lost: {what}")
    tag = label.split(":")[0].split(" (")[0]

    def target(value: int) -> tuple[str | None, bool | None]:
        return (None, None) if baseline else ("0", value == 0)

    return [
        figure(f"fault run ({tag}): requests faulted", round(100.0 * injected / requests, 1), "%"),
        figure(f"fault run ({tag}): late writes", faults["late"], "writes"),
        figure(f"fault run ({tag}): duplicates created", sum(r.duplicates_created for r in runs), "issues"),
        figure(f"fault run ({tag}): duplicates left open", dup_open, "issues", *target(dup_open)),
        figure(f"fault run ({tag}): lost actions", lost, "actions", *target(lost)),
        figure(f"fault run ({tag}): exits", exits, "exits", *target(exits)),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--seeds", type=int, default=5, help="fault-run seeds per window (default 5)")
    parser.add_argument("--cycles", type=int, default=8, help="faulted cycles per seed (default 8)")
    parser.add_argument("--rate", type=float, default=0.2, help="share of requests faulted (default 0.2)")
    parser.add_argument("--fuzz", type=int, default=400, help="webhook requests per scope (default 400)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the faults make the sidecar log a warning per retry
    t0 = time.perf_counter()
    figures: list[dict[str, Any]] = []

    # --- 1. fault run -----------------------------------------------------------------------------
    variants = (
        ("20 %, window 120 s: the default", 120.0, 3600.0, None),
        ("20 %, window 0 s: duplicate check only", 0.0, 3600.0, None),
        ("write stress, window 120 s", 120.0, 3600.0, 0.5),
        ("write stress, window 0 s", 0.0, 3600.0, 0.5),
        ("baseline, write stress, window 0 s, no duplicate check (as before issue 16)", 0.0, 0.0, 0.5),
    )
    for label, window, watch, write_rate in variants:
        runs = [
            fault_run(
                seed=seed,
                rate=args.rate,
                cycles=args.cycles,
                write_visibility_s=window,
                late_s=3.0,
                write_rate=write_rate,
                duplicate_watch_s=watch,
            )
            for seed in range(1, args.seeds + 1)
        ]
        figures += fault_figures(label, runs, baseline=label.startswith("baseline"))

    # --- 2. webhook fuzz --------------------------------------------------------------------------
    statuses: Counter[int] = Counter()
    unanswered = acted_out = queued_unsigned = acted_in = dropped = 0
    for k, scope in enumerate(SCOPES):
        run = webhook_fuzz_run(seed=100 + k, n=args.fuzz, scope=scope)
        statuses.update(run.fuzz.statuses)
        unanswered += run.fuzz.unanswered
        queued_unsigned += run.fuzz.queued_unsigned
        acted_out += run.acted_out_of_scope
        acted_in += run.acted_in_scope
        dropped += run.dropped_out_of_scope
        print(
            f"\nwebhook fuzz, scope {scope}: {run.fuzz.requests} requests, answered "
            + ", ".join(f"{s}: {n}" for s, n in sorted(run.fuzz.statuses.items()))
            + f"; queued ids dropped as out of scope {run.dropped_out_of_scope}; acted on out of scope "
            f"{run.acted_out_of_scope}; acted on in scope {run.acted_in_scope}"
        )
    total = sum(statuses.values())
    unexpected = sum(n for s, n in statuses.items() if s not in (200, 400, 401, 413))
    print(
        f"\nwebhook fuzz total: {total} requests; unanswered {unanswered} (target 0); other statuses {unexpected} "
        f"(target 0); queued from unsigned requests {queued_unsigned} (target 0); acted on outside the "
        f"organization/scope {acted_out} (target 0); in-scope work done {acted_in} (control, > 0)"
    )
    for status in (200, 400, 401, 413):
        figures.append(figure(f"webhook fuzz: answered {status}", statuses[status], "requests"))
    figures += [
        figure("webhook fuzz: unanswered", unanswered, "requests", "0", unanswered == 0),
        figure("webhook fuzz: other statuses", unexpected, "requests", "0", unexpected == 0),
        figure("webhook fuzz: queued without a signature", queued_unsigned, "requests", "0", queued_unsigned == 0),
        figure("webhook fuzz: acted on outside organization/scope", acted_out, "actions", "0", acted_out == 0),
        figure("webhook fuzz: in-scope actions (control)", acted_in, "actions", "> 0", acted_in > 0),
    ]
    print(f"\n({time.perf_counter() - t0:.0f} s)")

    results = BenchResults(__file__)
    for f in figures:
        results.add(**f)
    results.write()
    return 0 if all(f["met"] is not False for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())

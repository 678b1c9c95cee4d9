"""Function fuzz: ``cvat-ext functions serve`` against 1,000 malformed and 200 valid requests (issue 16).

The real CLI runs in a child process (the OpenCV people/face function: CPU, weights shipped with
OpenCV) with 1 s HTTP timeouts; every request is sent on its own loopback connection by the seeded
fuzzer in tests/functions/function_fuzz.py (odd images, hostile JSON, broken framing and headers,
bombs). Printed and written to bench/results/functions_fuzz.json:

* process deaths (target 0; the server is restarted after each), answers >= 500 to bad input
  (target 0), unanswered requests (target 0), valid requests answered 200 + a list (target all),
  the server's peak RSS (target <= 600 MB).

    python3 bench/functions_fuzz.py [--seed 16] [--bad 1000] [--valid 200] [--repo PATH]

``--repo`` fuzzes the server of another checkout (e.g. the commit before the fix, for a
side-by-side figure); the requests are the same.
"""

from __future__ import annotations

import argparse
import platform
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from results_io import BenchResults  # noqa: E402

from tests.functions import function_fuzz  # noqa: E402
from tests.functions.function_fuzz import ServeProcess, generate, run_fuzz  # noqa: E402

RSS_TARGET_MB = 600


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--bad", type=int, default=1000)
    parser.add_argument("--valid", type=int, default=200)
    parser.add_argument("--repo", type=Path, default=None, help="checkout whose server to fuzz (default: this one)")
    args = parser.parse_args()

    cases = generate(args.seed, args.bad, args.valid)
    kinds = Counter(case.kind.split(":")[0] for case in cases)
    print(f"# python3 bench/functions_fuzz.py --seed {args.seed} --bad {args.bad} --valid {args.valid}")
    print(f"CPU: {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(f"{len(cases)} requests: {dict(kinds)}")
    if args.repo is not None:
        function_fuzz.REPO = args.repo.resolve()  # the child's cwd: `python -m cvat_ext` imports from there
    server = ServeProcess(root=(args.repo or ROOT).resolve() / "serverless" / "opencv")
    server.start()
    try:
        report = run_fuzz(cases, server)
    finally:
        server.stop()

    figures = [
        ("process deaths", report.deaths, "count", "0", report.deaths == 0),
        ("responses >= 500 for bad input", report.bad_5xx, "count", "0", report.bad_5xx == 0),
        ("unanswered requests", report.unanswered, "count", "0", report.unanswered == 0),
        ("valid requests answered 200", report.valid_ok, "count", f"{report.valid}", report.valid_ok == report.valid),
        ("peak RSS", round(report.peak_rss_mb, 1), "MB", f"<= {RSS_TARGET_MB}", report.peak_rss_mb <= RSS_TARGET_MB),
        ("wall time", round(report.seconds, 1), "s", None, None),
    ]
    for name, value, unit, target, met in figures:
        mark = "" if met is None else ("  met" if met else "  MISSED")
        print(f"  {name:<34} {value:>8} {unit:<5} target {target or '-':<8}{mark}")
    print(f"  statuses: {dict(sorted(report.statuses.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)))}")
    for problem in report.problems[:20]:
        print(f"  problem: {problem}")

    if args.repo is None:
        results = BenchResults(__file__)
        results.add_all({"name": n, "value": v, "unit": u, "target": t, "met": m} for n, v, u, t, m in figures)
        results.write()
    return 0 if all(met is not False for *_, met in figures) else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Throughput of ``cvat-ext functions serve`` under 50 concurrent clients (issue 16 part 3).

A fixed-cost function (each call holds its worker for ``--cost-ms``, releasing the GIL as a GPU or
OpenCV call does) is served by the real gateway over real HTTP, with ``numWorkers`` 1, 2 and 4.
First one client calls it in a row (single-client latency ``L1``); then ``--clients`` clients each
call it ``--requests`` times back to back, one new connection per call (as CVAT's ``requests``
does). With one call in flight per client the queue depth is the number of clients, so the
target per worker count is::

    p99 <= 2 x L1 x clients / workers        and        0 dropped connections

Prints the figures and writes ``bench/results/functions_load.json``.

    python3 bench/functions_load.py [--clients 50] [--requests 8] [--cost-ms 20] [--workers 1 2 4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from results_io import BenchResults

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cvat_ext.functions.dev.gateway import FunctionGateway  # noqa: E402

NAME = "bench-fixed-cost"
MAIN_PY = """\
import time

from cvat_ext.functions.handler import make_handler

COST_S = {cost_s!r}


def build_model(context):
    def model(body):
        time.sleep(COST_S)  # the model's fixed cost; sleeping releases the GIL like a GPU/OpenCV call
        return [{{"label": "thing", "type": "rectangle", "points": [0, 0, 1, 1]}}]

    return model


init_context, handler = make_handler(build_model, parse=lambda body: body)
"""


def write_function(root: Path, cost_s: float) -> None:
    folder = root / NAME / "nuclio"
    folder.mkdir(parents=True)
    config = {
        "metadata": {"name": NAME, "annotations": {"type": "detector", "spec": '[{"id": 0, "name": "thing"}]'}},
        "spec": {
            "description": "fixed-cost bench function",
            "handler": "main:handler",
            "triggers": {"http": {"kind": "http", "numWorkers": 1, "workerAvailabilityTimeoutMilliseconds": 60_000}},
        },
    }
    (folder / "function.yaml").write_text(yaml.safe_dump(config))
    (folder / "main.py").write_text(MAIN_PY.format(cost_s=cost_s))


def call(url: str, body: bytes) -> float:
    """Seconds for one invocation on a new connection; raises on a dropped connection or non-200."""
    request = urllib.request.Request(
        url + "/api/function_invocations",
        data=body,
        headers={"x-nuclio-function-name": NAME, "x-nuclio-project-name": "cvat", "Content-Type": "application/json"},
        method="POST",
    )
    t0 = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as response:
        response.read()
        if response.status != 200:
            raise RuntimeError(f"status {response.status}")
    return time.perf_counter() - t0


def load(url: str, body: bytes, clients: int, requests: int) -> tuple[list[float], int, float]:
    """``(latencies, dropped, wall seconds)`` of ``clients`` threads x ``requests`` calls each."""
    latencies: list[float] = []
    dropped = 0
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def client() -> None:
        nonlocal dropped
        start.wait()
        for _ in range(requests):
            try:
                seconds = call(url, body)
            except (OSError, RuntimeError, urllib.error.URLError):
                with lock:
                    dropped += 1
                continue
            with lock:
                latencies.append(seconds)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return latencies, dropped, time.perf_counter() - t0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=8, help="calls per client")
    parser.add_argument("--cost-ms", type=float, default=20.0, help="fixed cost of one call inside the function")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    body = json.dumps({"image": "", "threshold": 0.5}).encode()
    figures: list[dict[str, Any]] = []
    print(f"{args.clients} clients x {args.requests} calls, fixed cost {args.cost_ms:g} ms per call")
    print(f"{'workers':>7} {'L1 ms':>7} {'p50 ms':>8} {'p99 ms':>8} {'bound ms':>9} {'req/s':>7} {'dropped':>7}  met")
    with tempfile.TemporaryDirectory() as tmp:
        write_function(Path(tmp), args.cost_ms / 1000.0)
        for workers in args.workers:
            with FunctionGateway([tmp], direct_ports=False, workers=workers) as gw:
                for _ in range(5):  # warm-up: imports, first connections
                    call(gw.url, body)
                single = statistics.median(call(gw.url, body) for _ in range(30))
                latencies, dropped, wall = load(gw.url, body, args.clients, args.requests)
            p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
            bound = 2.0 * single * args.clients / workers
            met = p99 <= bound and dropped == 0
            rate = len(latencies) / wall
            print(
                f"{workers:>7} {single * 1e3:>7.1f} {p50 * 1e3:>8.1f} {p99 * 1e3:>8.1f} {bound * 1e3:>9.1f} "
                f"{rate:>7.1f} {dropped:>7}  {'yes' if met else 'NO'}"
            )
            target = f"<= 2 x L1 x {args.clients} / {workers}"
            figures += [
                {
                    "name": f"single-client latency, {workers} workers",
                    "value": round(single * 1e3, 2),
                    "unit": "ms",
                    "target": None,
                    "met": None,
                },
                {
                    "name": f"p50 latency, {args.clients} clients, {workers} workers",
                    "value": round(p50 * 1e3, 1),
                    "unit": "ms",
                    "target": None,
                    "met": None,
                },
                {
                    "name": f"p99 latency, {args.clients} clients, {workers} workers",
                    "value": round(p99 * 1e3, 1),
                    "unit": "ms",
                    "target": f"{target} = {bound * 1e3:.0f} ms",
                    "met": p99 <= bound,
                },
                {
                    "name": f"throughput, {args.clients} clients, {workers} workers",
                    "value": round(rate, 1),
                    "unit": "requests/s",
                    "target": None,
                    "met": None,
                },
                {
                    "name": f"dropped connections, {args.clients} clients, {workers} workers",
                    "value": dropped,
                    "unit": "connections",
                    "target": "0",
                    "met": dropped == 0,
                },
            ]
    results = BenchResults(__file__)
    for f in figures:
        results.add(**f)  # type: ignore[arg-type]
    results.write()


if __name__ == "__main__":
    main()

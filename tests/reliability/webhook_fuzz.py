"""A seeded webhook fuzzer for the sidecar's ``POST /webhooks/cvat`` (used by the test and the bench).

Each case is one HTTP request over a fresh loopback connection, drawn from a fixed table of hostile
shapes: unsigned and badly signed bodies, deep JSON, huge / negative / zero / non-numeric / float
ids, wrong content types, oversized and malformed ``Content-Length``, bodies that are not JSON or
not objects, and signed, well-formed deliveries naming jobs of another organization or outside the
configured scope. What is recorded per request: the status (0 = no answer within ``timeout_s``),
whether it was signed, and whether the sidecar's queue grew from an unsigned request.
"""

from __future__ import annotations

import json
import random
import select
import socket
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from cvat_ext.cvat.signature import sign

PATH = "/webhooks/cvat"
#: bodies larger than this are sent after a look for an early answer (see :func:`send`)
EARLY_ANSWER_BYTES = 512 << 10


@dataclass(frozen=True)
class FuzzCase:
    name: str
    body: bytes
    headers: dict[str, str]
    signed: bool
    raw_length: str | None = None  # a Content-Length header sent as is (malformed on purpose)


@dataclass
class FuzzResult:
    statuses: Counter[int] = field(default_factory=Counter)
    by_case: Counter[tuple[str, int]] = field(default_factory=Counter)
    unanswered: int = 0
    queued_unsigned: int = 0  # unsigned requests after which the sidecar's queue grew

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())


def _delivery(job_id: object, *, event: str = "update:job", org: object = None) -> dict[str, object]:
    job: dict[str, object] = {"id": job_id, "state": "completed"}
    if org is not None:
        job["organization"] = org
    return {
        "event": event,
        "webhook_id": 1,
        "job": job,
        "changes": {"state": {"from": "in progress", "to": "completed"}},
    }


def fuzz_cases(secret: str, *, own_job_ids: list[int], foreign_job_ids: list[int], seed: int, n: int) -> list[FuzzCase]:
    """``n`` cases drawn (with ``seed``) from the table below; ids drawn from the two lists."""
    rng = random.Random(seed)

    def signed(name: str, body: bytes, content_type: str = "application/json") -> FuzzCase:
        return FuzzCase(name, body, {"Content-Type": content_type, "X-Signature-256": sign(secret, body)}, True)

    def js(obj: object) -> bytes:
        return json.dumps(obj).encode()

    def own() -> int:
        return rng.choice(own_job_ids)

    def foreign() -> int:
        return rng.choice(foreign_job_ids)

    makers: list[Callable[[], FuzzCase]] = [
        lambda: FuzzCase("unsigned", js(_delivery(own())), {"Content-Type": "application/json"}, False),
        lambda: FuzzCase(
            "bad signature",
            js(_delivery(own())),
            {"Content-Type": "application/json", "X-Signature-256": sign("not-the-secret", js(_delivery(own())))},
            False,
        ),
        lambda: FuzzCase(
            "garbage signature",
            js(_delivery(own())),
            {"X-Signature-256": "sha256=" + "".join(rng.choice("0123456789abcdefxyz\u00e9") for _ in range(64))},
            False,
        ),
        lambda: signed("deep json", b'{"event": "update:job", "job": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
        lambda: signed("deep json (objects)", b'{"a":' * 5_000 + b"1" + b"}" * 5_000),
        lambda: signed("4000-digit id", b'{"event": "update:job", "job": {"id": ' + b"9" * 4000 + b"}}"),
        lambda: signed("5000-digit id", b'{"event": "update:job", "job": {"id": ' + b"7" * 5000 + b"}}"),
        lambda: signed("2^70 id", js(_delivery(2**70))),
        lambda: signed("2^31 id", js(_delivery(2**31))),
        lambda: signed("negative id", js(_delivery(-rng.randint(1, 10**6)))),
        lambda: signed("zero id", js(_delivery(0))),
        lambda: signed("string id", js(_delivery(str(own())))),
        lambda: signed("non-numeric id", js(_delivery("12; DROP TABLE jobs"))),
        lambda: signed("float id", js(_delivery(own() + 0.5))),
        lambda: signed("bool id", js(_delivery(True))),
        lambda: signed("huge issue job", js({"event": "update:issue", "issue": {"id": 1, "job": 2**63}})),
        lambda: signed("not json", bytes(rng.randrange(256) for _ in range(rng.randint(1, 200)))),
        lambda: signed("json list", js([_delivery(own())])),
        lambda: signed("no event", js({"job": {"id": own()}})),
        lambda: signed("text/plain", js(_delivery(own())), "text/plain"),
        lambda: signed("form content type", js(_delivery(own())), "application/x-www-form-urlencoded"),
        lambda: signed("foreign org job", js(_delivery(foreign()))),
        lambda: signed("foreign job, own org claimed", js(_delivery(foreign(), org=1))),
        lambda: signed("foreign issue job", js({"event": "create:issue", "issue": {"id": 5, "job": foreign()}})),
        lambda: signed("own job", js(_delivery(own()))),
        lambda: FuzzCase(
            "oversized", b"{" + b" " * ((1 << 20) + 10) + b"}", {"Content-Type": "application/json"}, False
        ),
        lambda: FuzzCase("content-length abc", js(_delivery(own())), {}, False, raw_length="abc"),
        lambda: FuzzCase("content-length -1", js(_delivery(own())), {}, False, raw_length="-1"),
        lambda: FuzzCase("content-length 20 digits", b"", {}, False, raw_length="9" * 20),
    ]
    return [rng.choice(makers)() for _ in range(n)]


def send(url: str, case: FuzzCase, *, timeout_s: float = 10.0) -> int:
    """One raw HTTP/1.1 request; the status, or 0 when no answer came within ``timeout_s``."""
    parts = urlsplit(url)
    length = case.raw_length if case.raw_length is not None else str(len(case.body))
    head = [
        f"POST {PATH} HTTP/1.1",
        f"Host: {parts.hostname}:{parts.port}",
        f"Content-Length: {length}",
        "Connection: close",
    ]
    head += [f"{k}: {v}" for k, v in case.headers.items()]
    payload = ("\r\n".join(head) + "\r\n\r\n").encode("utf-8") + case.body
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=timeout_s) as sock:
        if len(case.body) > EARLY_ANSWER_BYTES:
            # a server refusing a large body answers (413) before reading it, then closes: read the
            # answer before sending the body, or the close's reset may discard it unread
            head_end = payload.index(b"\r\n\r\n") + 4
            sock.sendall(payload[:head_end])
            readable, _, _ = select.select([sock], [], [], 0.2)
            if not readable:
                try:
                    sock.sendall(payload[head_end:])
                except OSError:
                    return 0
        else:
            sock.sendall(payload)
        try:
            status_line = sock.makefile("rb").readline(200)
        except OSError:
            return 0
    fields = status_line.split()
    return int(fields[1]) if len(fields) >= 2 and fields[1].isdigit() else 0


def run_fuzz(url: str, cases: list[FuzzCase], queue_size: Callable[[], int], *, timeout_s: float = 10.0) -> FuzzResult:
    """Send every case; ``queue_size()`` is the sidecar's pending-queue length (read between requests)."""
    result = FuzzResult()
    for case in cases:
        before = queue_size()
        status = send(url, case, timeout_s=timeout_s)
        result.statuses[status] += 1
        result.by_case[(case.name, status)] += 1
        if status == 0:
            result.unanswered += 1
        if not case.signed and queue_size() > before:
            result.queued_unsigned += 1
    return result


# --- the sidecar under fuzz ---------------------------------------------------------------------

#: scope settings of the runs: nothing in scope (the case of issue 16), the whole org, one task
SCOPES = ("nothing", "org", "task")


@dataclass
class WebhookFuzzRun:
    scope: str
    fuzz: FuzzResult
    acted_out_of_scope: int  # annotation reads, issues, job changes or refused writes on jobs outside scope
    acted_in_scope: int  # issues opened and jobs moved inside scope (the positive control)
    dropped_out_of_scope: int  # queued ids the cycle read from CVAT and dropped


def webhook_fuzz_run(*, seed: int, n: int, scope: str, secret: str = "whsec-fuzz-0123456789") -> WebhookFuzzRun:
    """Fuzz a running sidecar (configured for the recorded org ``qa-eval`` and ``scope``) with ``n``
    requests, then run two cycles and count what it did to jobs inside and outside its scope.
    A second organization ``qa-two`` (same users) has a consensus task the fuzzer names."""
    import tempfile

    from cvat_ext.sidecar import engines
    from cvat_ext.sidecar.service import SidecarService
    from tests.conftest import seed_org_world
    from tests.cvat_standin import CvatStandIn
    from tests.sidecar.scenario import seed_sloppy_consensus
    from tests.sidecar.test_e2e_orgs import seed_second_org
    from tests.sidecar.test_e2e_standin import Clock, make_client, make_settings

    if scope not in SCOPES:
        raise ValueError(f"scope {scope!r}: expected one of {SCOPES}")
    with CvatStandIn() as standin, tempfile.TemporaryDirectory() as tmp:
        world = seed_org_world(standin)
        other = seed_second_org(standin, world)
        seed_sloppy_consensus(standin, world)
        seed_sloppy_consensus(standin, other)
        own_ids = [j["id"] for j in standin.jobs(task_id=world.task_id)]
        foreign_ids = [j["id"] for j in standin.jobs(task_id=other.task_id)]
        scope_cfg = {"nothing": {"task_ids": [999999]}, "org": {}, "task": {"task_ids": [world.task_id]}}[scope]
        outside = set(foreign_ids) | (set(own_ids) if scope == "nothing" else set())
        cfg = make_settings(standin, world, f"sqlite:///{tmp}/state.db", webhooks={"secret": secret}, scope=scope_cfg)
        before = {j["id"]: _job_view(j) for j in standin.jobs()}
        clock = Clock()
        svc = SidecarService(
            cfg,
            client=make_client(standin, world),
            rules=engines.rule_runner(cfg),
            consensus=engines.consensus_runner(cfg),
            clock=clock,
            sleep=clock.sleep,
            owner="fuzzed",
        )
        with svc, svc.http_server() as server:
            cases = fuzz_cases(secret, own_job_ids=own_ids, foreign_job_ids=foreign_ids, seed=seed, n=n)
            fuzz = run_fuzz(server.url, cases, lambda: len(svc.store.pending()))
            log_start = len(standin.request_log)
            for _ in range(2):
                svc.run_once()
                clock.t += cfg.state.lease_ttl_s + 1
            dropped = int(svc.metrics.webhook_jobs_out_of_scope._value.get())
        requests = standin.request_log[log_start:]
        after = {j["id"]: _job_view(j) for j in standin.jobs()}
        issues_on = Counter(i["job"] for i in standin.issues())
    reads_outside = sum(
        1 for m, p, _ in requests if m == "GET" and p.endswith("/annotations") and _job_in_path(p) in outside
    )
    refused_writes = sum(1 for m, _, status in requests if m != "GET" and status in (403, 404))
    changed = {jid for jid in after if after[jid] != before.get(jid)}
    acted_out = reads_outside + refused_writes + sum(issues_on[j] for j in outside) + len(changed & outside)
    acted_in = sum(n for j, n in issues_on.items() if j not in outside) + len(changed - outside)
    return WebhookFuzzRun(scope, fuzz, acted_out, acted_in, dropped)


def _job_view(job: dict[str, object]) -> tuple[object, ...]:
    assignee = job.get("assignee")
    return (assignee.get("id") if isinstance(assignee, dict) else None, job.get("stage"), job.get("state"))


def _job_in_path(path: str) -> int | None:
    parts = path.strip("/").split("/")  # api/jobs/<id>/annotations
    return int(parts[2]) if len(parts) > 2 and parts[1] == "jobs" and parts[2].isdigit() else None

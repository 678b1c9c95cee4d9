"""The fault run: sidecar cycles through :class:`FaultProxy` against the CVAT stand-in, then a check
that CVAT converged to the one right state (used by the end-to-end test and ``bench/sidecar_faults.py``).

Scenario: the sloppy consensus task (``tests.sidecar.scenario``): ann3's replica of parent 1 earns
one issue per sloppy frame, parent 1 goes to the expert (rev1), parent 2 gets our merge and passes,
the completed ground-truth job gets CVAT's quality report, the task guide gets the summary.

Procedure: start-up check and ``cycles`` cycles with ``rate`` of the requests faulted (the fake
clock moves ``step_s`` per cycle), then the faults stop, late writes land, and ``settle_cycles``
cycles run a lease TTL apart. What is counted:

* ``duplicates_open``: open issues beyond the first per (job, frame, finding fingerprint);
* ``lost_actions``: decisions not carried out in CVAT (a sloppy frame without its open issue, a
  routing, merge or pass missing), plus actions left ``started`` and jobs left queued;
* ``exits``: exceptions that would end the sidecar process (anything but a CvatExtError, which the
  run loop logs and survives; a failed start-up check counts as an exit).
"""

from __future__ import annotations

import re
import tempfile
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cvat_ext.cvat.client import CvatClient
from cvat_ext.cvat.records import RetryPolicy
from cvat_ext.errors import CvatExtError
from cvat_ext.sidecar import engines
from cvat_ext.sidecar.service import SidecarService
from cvat_ext.sidecar.state import open_store
from tests.conftest import OrgWorld, seed_org_world
from tests.cvat_standin import CvatStandIn
from tests.reliability.fault_proxy import ALL_KINDS, FaultProxy
from tests.sidecar.scenario import SLOPPY_FRAMES, seed_sloppy_consensus
from tests.sidecar.test_e2e_standin import Clock, make_settings

_FP = re.compile(r"\[cvat-ext fp=([0-9a-f]{16})\]")


@dataclass
class FaultRunResult:
    seed: int
    requests: int = 0
    faulted_phase_requests: int = 0  # requests while faults were on (start-up and faulted cycles)
    faults: Counter[str] = field(default_factory=Counter)
    issue_posts_landed_unseen: int = 0  # issue POSTs CVAT committed while the client saw a failure
    duplicates_created: int = 0
    duplicates_resolved: int = 0
    duplicates_open: int = 0
    lost_actions: int = 0
    exits: int = 0
    lost: list[str] = field(default_factory=list)


def issue_copies(standin: CvatStandIn, *, open_only: bool) -> Counter[tuple[int, int, str]]:
    """(job, frame, fingerprint) -> number of issues, from the stand-in's records."""
    copies: Counter[tuple[int, int, str]] = Counter()
    world = standin.world
    with world.lock:
        for issue in world.issues.values():
            if open_only and issue.resolved:
                continue
            first = min((c for c in world.comments.values() if c.issue_id == issue.id), key=lambda c: c.id)
            m = _FP.search(first.message)
            copies[(issue.job_id, issue.frame, m.group(1) if m else f"#{issue.id}")] += 1
    return copies


def proxied_client(proxy: FaultProxy, world: OrgWorld, clock: Clock, *, timeout_s: float) -> CvatClient:
    """The bot's client through ``proxy``: 4 attempts with backoff, on the fake clock."""
    return CvatClient(
        proxy.url,
        access_token=world.bot_token,
        org=world.org_slug,
        retry=RetryPolicy(max_attempts=4, base_delay_s=0.5, max_delay_s=4.0, budget_s=60.0, jitter=0.0),
        timeout_s=timeout_s,
        sleep=clock.sleep,
        clock=clock,
    )


@contextmanager
def sloppy_world() -> Iterator[tuple[CvatStandIn, OrgWorld]]:
    with CvatStandIn() as standin:
        world = seed_org_world(standin)
        seed_sloppy_consensus(standin, world)
        # the stand-in's first answer loads its schema (~1 s): not a fault
        with urllib.request.urlopen(f"{standin.url}/api/server/about", timeout=30):
            pass
        yield standin, world


def fault_run(
    *,
    seed: int,
    rate: float = 0.2,
    cycles: int = 8,
    settle_cycles: int = 3,
    step_s: float = 100.0,
    write_visibility_s: float = 120.0,
    client_timeout_s: float = 0.5,
    late_s: float = 1.0,
    kinds: tuple[str, ...] = ALL_KINDS,
    write_rate: float | None = None,
    duplicate_watch_s: float = 3600.0,
    state_dir: Path | None = None,
) -> FaultRunResult:
    """One seeded fault run (see the module docstring); real HTTP, fake sidecar clock."""
    result = FaultRunResult(seed)
    with (
        sloppy_world() as (standin, world),
        FaultProxy(
            standin.url,
            rate=rate,
            seed=seed,
            kinds=kinds,
            stall_s=client_timeout_s + 0.3,
            late_s=late_s,
            write_rate=write_rate,
        ) as proxy,
        tempfile.TemporaryDirectory(dir=state_dir) as tmp,
    ):
        cfg = make_settings(
            standin,
            world,
            f"sqlite:///{tmp}/state.db",
            cvat={"write_visibility_s": write_visibility_s, "duplicate_watch_s": duplicate_watch_s},
        )
        clock = Clock()
        client = proxied_client(proxy, world, clock, timeout_s=client_timeout_s)
        svc = SidecarService(
            cfg,
            client=client,
            rules=engines.rule_runner(cfg),
            consensus=engines.consensus_runner(cfg),
            clock=clock,
            sleep=clock.sleep,
            owner="faulted",
        )
        with svc:
            try:
                svc.startup_check()
            except CvatExtError:
                result.exits += 1
            for k in range(cycles + settle_cycles):
                if k == cycles:
                    proxy.rate, proxy.write_rate = 0.0, None
                    result.faulted_phase_requests = len(proxy.entries())
                    proxy.drain()
                try:
                    svc.run_once()
                except CvatExtError:
                    pass  # the run loop logs it and goes on (e.g. the state store restarting)
                except Exception:
                    result.exits += 1
                clock.t += step_s if k < cycles else cfg.state.lease_ttl_s + 1
            with open_store(cfg.state.url.get_secret_value()) as root:
                store = root.scoped(world.org_slug)
                started = [a.key for a in store.actions(status="started")]
                pending = store.pending()
                audit = Counter(a.action for a in store.iter_audit())
        result.requests = len(proxy.entries())
        result.faults = Counter(e.fault for e in proxy.entries() if e.fault is not None)
        result.issue_posts_landed_unseen = sum(
            1
            for e in proxy.entries()
            if e.method == "POST"
            and e.path.startswith("/api/issues")
            and e.fault in ("post_502", "post_reset", "late:landed")
        )
        every = issue_copies(standin, open_only=False)
        still_open = issue_copies(standin, open_only=True)
        result.duplicates_created = sum(n - 1 for n in every.values())
        result.duplicates_open = sum(n - 1 for n in still_open.values())
        result.duplicates_resolved = audit["issue.duplicate"]
        result.lost = _lost(standin, world, still_open, started, pending, audit)
        result.lost_actions = len(result.lost)
    return result


def _lost(
    standin: CvatStandIn,
    world: OrgWorld,
    still_open: Counter[tuple[int, int, str]],
    started: list[str],
    pending: list[int],
    audit: Counter[str],
) -> list[str]:
    """Every decision of the scenario that CVAT does not show, and work the state left unfinished."""
    p1, p2 = world.parent_job_ids
    sloppy = world.replica_of(p1, "ann3")
    lost = [f"no open issue on job {sloppy} frame {f}" for f in SLOPPY_FRAMES if not _open_on(still_open, sloppy, f)]
    jobs = {j["id"]: j for j in standin.jobs()}
    if ((jobs[p1].get("assignee") or {}).get("username"), jobs[p1]["stage"]) != ("rev1", "validation"):
        lost.append(f"parent {p1} not routed to rev1 for validation")
    if jobs[p2]["stage"] != "validation":
        lost.append(f"parent {p2} did not pass to validation")
    if len(standin.get_annotations(p2)["shapes"]) != 30:
        lost.append(f"parent {p2}: merge not written")
    if audit["quality.report"] < 1:
        lost.append("quality report of the ground-truth job not requested")
    if audit["guide.update"] < 1:
        lost.append("task guide never updated")
    lost += [f"action {key} left started" for key in started]
    lost += [f"job {job_id} left queued" for job_id in pending]
    return lost


def _open_on(still_open: Counter[tuple[int, int, str]], job_id: int, frame: int) -> bool:
    return any(j == job_id and f == frame for j, f, _ in still_open)

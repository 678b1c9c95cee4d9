"""The sidecar service: wiring from settings, startup checks, the run loop.

Time is injected (``clock`` for timestamps and intervals, ``sleep`` between cycles), so tests
run any number of cycles without waiting. ``run(once=True)`` is one cycle; otherwise cycles
repeat every ``service.poll_interval_s``, sooner when a webhook arrives.

One service serves every organization in ``cvat.org_slugs``: per organization one client (with
its ``X-Organization`` context), one :class:`Cycle` and one scoped view of the shared state store;
a cycle of the service runs each organization's cycle in turn. All clients share one token
bucket (``cvat.max_calls_per_s``, ``cvat.burst``): they talk to the same CVAT server.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from cvat_ext.cvat.records import User
from cvat_ext.errors import (
    ConfigError,
    CvatAuthError,
    CvatConnectionError,
    CvatExtError,
    CvatPermissionError,
    CvatRateLimitedError,
    CvatServerError,
    CvatVersionError,
)
from cvat_ext.sidecar.actions import Hook, no_hook
from cvat_ext.sidecar.config import SidecarSettings, replica_id
from cvat_ext.sidecar.cycle import Cycle, CycleReport
from cvat_ext.sidecar.guide import GuidePublisher
from cvat_ext.sidecar.interface import ConsensusRunner, CvatApi, RuleRunner
from cvat_ext.sidecar.metrics import SidecarMetrics
from cvat_ext.sidecar.prefetch import Prefetcher
from cvat_ext.sidecar.server import SidecarHttpServer
from cvat_ext.sidecar.state import StateStore, open_store
from cvat_ext.sidecar.throttle import ThrottledClient, TokenBucket
from cvat_ext.sidecar.webhooks import WebhookReceiver

if TYPE_CHECKING:
    from cvat_ext.cvat.client import CvatClient
    from cvat_ext.reports.pages import ReportPages

log = logging.getLogger(__name__)

#: default engines are built lazily from settings (they import the rules / consensus packages)
_DEFAULT: Any = object()


def make_client(
    settings: SidecarSettings, *, org: str | None = None, sleep: Callable[[float], None] = time.sleep
) -> CvatClient:
    """A :class:`CvatClient` for the settings and organization ``org`` (default: the first one);
    the only place the sidecar builds one."""
    from cvat_ext.cvat.client import CvatClient
    from cvat_ext.cvat.records import RetryPolicy

    c = settings.cvat
    token = c.access_token.get_secret_value() if c.access_token is not None else None
    password = c.password.get_secret_value() if c.password is not None else None
    return CvatClient(
        c.url,
        access_token=token or None,
        username=c.username if not token else None,
        password=password if not token else None,
        org=(org if org is not None else c.org_slugs[0]) or None,
        retry=RetryPolicy(max_attempts=c.retry_max_attempts, budget_s=c.retry_budget_s),
        timeout_s=c.timeout_s,
        sleep=sleep,
    )


def report_url_of(settings: SidecarSettings, org: str) -> Callable[[int], str] | None:
    """A task's report page address, for links from CVAT (``reports.public_url``; None when unset)."""
    base = settings.reports.public_url.rstrip("/")
    if not (settings.reports.enabled and base):
        return None
    from cvat_ext.reports.pages import PERSONAL

    return lambda task_id: f"{base}/reports/org/{org or PERSONAL}/task/{task_id}"


class SidecarService:
    """One sidecar replica."""

    def __init__(
        self,
        settings: SidecarSettings,
        *,
        client: CvatApi | None = None,
        clients: Mapping[str, CvatApi] | None = None,
        store: StateStore | None = None,
        rules: RuleRunner | None = _DEFAULT,
        consensus: ConsensusRunner | None = _DEFAULT,
        metrics: SidecarMetrics | None = None,
        hook: Hook = no_hook,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        owner: str | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.sleep = sleep
        self.metrics = metrics if metrics is not None else SidecarMetrics()
        self.owner = owner or replica_id(settings)
        self.orgs = settings.cvat.org_slugs
        if clients is None:
            if client is not None and len(self.orgs) > 1:
                raise ConfigError(f"{len(self.orgs)} organizations configured: pass clients={{org: client}}")
            clients = {self.orgs[0]: client} if client is not None else {}
        missing = [org for org in self.orgs if org not in clients]
        self.bucket = TokenBucket(
            settings.cvat.max_calls_per_s,
            settings.cvat.burst,
            clock=clock,
            sleep=sleep,
            on_wait=self.metrics.throttled_seconds.inc,
        )
        raw = {**clients, **{org: make_client(settings, org=org, sleep=sleep) for org in missing}}
        #: organization slug -> its client (rate limited unless cvat.max_calls_per_s is 0)
        self.clients: dict[str, CvatApi] = {
            org: raw[org] if self.bucket.unlimited else ThrottledClient(raw[org], self.bucket) for org in self.orgs
        }
        self.client = self.clients[self.orgs[0]]
        self._own_store = store is None
        root = store if store is not None else open_store(settings.state.url.get_secret_value(), clock=clock)
        # a store written by the single-organization version belongs to the first organization
        root.adopt_legacy(self.orgs[0])
        #: the first organization's view of the state store (all views share one connection)
        self.store = root.scoped(self.orgs[0])
        if rules is _DEFAULT or consensus is _DEFAULT:
            from cvat_ext.sidecar import engines

            if rules is _DEFAULT:
                rules = engines.rule_runner(settings)
            if consensus is _DEFAULT:
                consensus = engines.consensus_runner(settings)
        strays = sorted({r.org for r in settings.active_learning.rounds} - set(self.orgs))
        if strays:
            raise ConfigError(f"active_learning.rounds: organization(s) {', '.join(map(repr, strays))} are not in "
                              "cvat.org_slugs")
        #: organization slug -> its cycle (its own caches, change feed and scoped state)
        self.cycles: dict[str, Cycle] = {}
        for org in self.orgs:
            org_store = self.store.scoped(org)
            cycle = Cycle(
                settings,
                self.clients[org],
                org_store,
                owner=self.owner,
                rules=rules,
                consensus=consensus,
                metrics=self.metrics,
                hook=hook,
                clock=clock,
            )
            cycle.guide = GuidePublisher(
                self.clients[org],
                org_store,
                cycle.runner,
                min_agreement=settings.consensus.min_agreement,
                min_interval_s=settings.guide.min_interval_s,
                clock=clock,
                report_url=report_url_of(settings, org),
            )
            if settings.prefetch.enabled:
                cycle.prefetcher = Prefetcher(settings.prefetch, self.clients[org], org_store, self.metrics)
            if settings.workforce.enabled:
                from cvat_ext.workforce.collector import WorkCollector

                cycle.workforce = WorkCollector(settings.workforce, self.clients[org], cycle, org_store,
                                                cycle.runner, cycle.pool, cycle.publisher,
                                                honeypots=cycle.honeypots, iou_thr=settings.consensus.engine.iou_thr)
            scheduled = [r for r in settings.active_learning.rounds if r.org == org]
            if scheduled:
                from cvat_ext.sidecar.al_rounds import RoundScheduler

                cycle.al_scheduler = RoundScheduler(scheduled, self.clients[org], org_store, self.metrics,
                                                    owner=self.owner)
            self.cycles[org] = cycle
        self.cycle = self.cycles[self.orgs[0]]
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.last_report: CycleReport | None = None
        self.last_error: str | None = None

    # --- lifecycle -------------------------------------------------------------------------------
    def startup_check(self) -> User:
        """Fail, with a message saying what happened, on a CVAT that stays unreachable, failing or
        throttling through the client's retries, or that refuses the credentials.

        Login and these first calls are retried like every other call (``cvat.retry_max_attempts``
        within ``cvat.retry_budget_s``): one reset, 502 or 429 at start-up costs a retry, not the
        process.
        """
        url = self.settings.cvat.url
        try:
            server = self.client.about()
            user = self.client.whoami()
        except CvatConnectionError as exc:
            if exc.failure in ("connection refused", "name not resolved", "not connected", ""):
                raise ConfigError(f"cannot reach CVAT at {url} ({exc.failure or 'no connection'}): {exc}") from exc
            raise ConfigError(f"CVAT at {url} did not answer the start-up check ({exc.failure}): {exc}") from exc
        except CvatRateLimitedError as exc:
            raise ConfigError(f"CVAT at {url} kept throttling the start-up check (429): {exc}") from exc
        except CvatServerError as exc:
            raise ConfigError(f"CVAT at {url} kept failing the start-up check ({exc.status}): {exc}") from exc
        except CvatAuthError as exc:
            raise ConfigError(
                f"CVAT at {url} rejected the credentials (401): check CVAT_EXT_CVAT__ACCESS_TOKEN"
            ) from exc
        except CvatPermissionError as exc:
            raise ConfigError(f"CVAT at {url} refused access (403): {exc}") from exc
        except CvatVersionError as exc:
            raise ConfigError(f"CVAT at {url}: unsupported server version: {exc}") from exc
        for org, client in self.clients.items():
            if not org:
                continue
            try:
                client.list_memberships(role=None)
            except (CvatPermissionError, CvatAuthError) as exc:
                raise ConfigError(f"user '{user.username}' cannot read organization '{org}' on {url}: {exc}") from exc
        log.info(
            "connected to CVAT %s at %s as '%s' (orgs %s), replica %s",
            server.version,
            url,
            user.username,
            ", ".join(repr(org) for org in self.orgs),
            self.owner,
        )
        return user

    def close(self) -> None:
        for client in self.clients.values():
            close = getattr(client, "close", None)
            if callable(close):
                close()
        if self._own_store:
            self.store.close()

    def __enter__(self) -> SidecarService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wake(self) -> None:
        """Run the next cycle now (a webhook arrived)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def health(self) -> tuple[bool, dict[str, Any]]:
        last = self.last_report
        details: dict[str, Any] = {"replica": self.owner, "last_error": self.last_error}
        if last is not None:
            details.update(changed_jobs=last.changed_jobs, units=last.units, failed_units=last.failed_units)
        return self.last_error is None, details

    def webhook_receiver(self) -> WebhookReceiver | None:
        cfg = self.settings.webhooks
        if not cfg.enabled or cfg.secret is None:
            return None
        stores = {org: cycle.store for org, cycle in self.cycles.items()}
        return WebhookReceiver(cfg.secret.get_secret_value(), stores, wake=self.wake, metrics=self.metrics)

    def http_server(self) -> SidecarHttpServer:
        cfg = self.settings.server
        return SidecarHttpServer(
            cfg.host, cfg.port, metrics=self.metrics, health=self.health, webhooks=self.webhook_receiver(),
            reports=self.report_pages(),
        )

    def report_pages(self) -> ReportPages | None:
        """The managers' pages (``reports.enabled``): sign-in checked against this CVAT, data from the store."""
        cfg = self.settings.reports
        if not cfg.enabled:
            return None
        from cvat_ext.cvat.client import CvatClient
        from cvat_ext.reports.access import Sessions, cvat_verifier
        from cvat_ext.reports.pages import ReportPages

        url, timeout_s = self.settings.cvat.url, self.settings.cvat.timeout_s

        def viewer_client(**credentials: Any) -> CvatClient:
            return CvatClient(url, timeout_s=timeout_s, **credentials)

        return ReportPages(
            cvat_url=url,
            stores={org: self.store.scoped(org) for org in self.orgs},
            verify=cvat_verifier(self.orgs, viewer_client),
            sessions=Sessions(ttl_s=cfg.session_ttl_s, clock=self.clock),
            min_agreement=self.settings.consensus.min_agreement,
            secure_cookie=cfg.secure_cookie,
            qualification_bar=q.bar if (q := self.settings.workforce.qualification).enabled else None,
            clock=self.clock,
        )

    # --- running ---------------------------------------------------------------------------------
    def run_once(self) -> CycleReport:
        """One cycle of every organization (in configuration order); the reports added up."""
        report = CycleReport()
        for cycle in self.cycles.values():
            report.add(cycle.run())
        self.last_report = report
        self.last_error = None if report.healthy else (report.errors[0] if report.errors else "cycle failed")
        return report

    def run(self, *, once: bool = False, max_cycles: int | None = None) -> CycleReport | None:
        """Cycle until :meth:`stop` (or ``max_cycles``); ``once`` = a single cycle, no server."""
        if once:
            return self.run_once()
        server = self.http_server() if self.settings.server.enabled else None
        prefetch_clients = self._start_prefetch()
        if server is not None:
            server.start()
            log.info("serving /healthz, /metrics%s%s on %s", " and /webhooks/cvat" if server.webhooks else "",
                     " and the report pages (/reports)" if server.reports else "", server.url)
        cycles = 0
        try:
            while not self._stop.is_set():
                try:
                    self.run_once()
                except CvatExtError as exc:
                    # e.g. the state database restarting: unhealthy until a cycle succeeds again
                    self.last_error = str(exc)
                    log.error("cycle failed, retrying after the poll interval: %s", exc)
                cycles += 1
                if max_cycles is not None and cycles >= max_cycles:
                    break
                self._wait(self.settings.service.poll_interval_s)
        finally:
            if server is not None:
                server.stop()
            self._stop_prefetch(prefetch_clients)
        return self.last_report

    def _start_prefetch(self) -> list[Any]:
        """Move SAM prefetch and scheduled active-learning rounds to background threads, each with a
        client of its own (clients are not thread-safe; all share the rate limit)."""
        clients: list[Any] = []
        for org, cycle in self.cycles.items():
            for worker in (cycle.prefetcher, cycle.al_scheduler):
                if worker is None:
                    continue
                raw = make_client(self.settings, org=org, sleep=self.sleep)
                clients.append(raw)
                worker.start(raw if self.bucket.unlimited else ThrottledClient(raw, self.bucket))
        return clients

    def _stop_prefetch(self, clients: list[Any]) -> None:
        for cycle in self.cycles.values():
            for worker in (cycle.prefetcher, cycle.al_scheduler):
                if worker is not None:
                    worker.stop()
        for client in clients:
            client.close()

    def _wait(self, seconds: float) -> None:
        # sleep in short steps so a webhook (wake) or stop starts the next cycle promptly
        deadline = self.clock() + seconds
        while not self._wake.is_set() and self.clock() < deadline:
            self.sleep(min(1.0, max(0.0, deadline - self.clock())))
        self._wake.clear()

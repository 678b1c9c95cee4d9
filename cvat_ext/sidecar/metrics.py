"""Prometheus metrics of one sidecar process (own registry, so tests can build several)."""

from __future__ import annotations

import re
from collections import Counter as TallyCounter
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_ID_IN_PATH = re.compile(r"/\d+(?=/|$)")


def endpoint_label(call: str) -> str:
    """``GET /api/jobs/812/annotations`` -> ``GET /api/jobs/{id}/annotations`` (bounded label values)."""
    return _ID_IN_PATH.sub("/{id}", call.split("?", 1)[0])


class SidecarMetrics:
    """Counters and histograms exposed on ``/metrics``. Names start with ``cvat_ext_sidecar_``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.cycles = Counter("cvat_ext_sidecar_cycles", "Cycles run, by outcome (ok|error)", ["outcome"], registry=r)
        self.jobs_scored = Counter("cvat_ext_sidecar_jobs_scored", "Jobs scored (rules and/or consensus)", registry=r)
        self.findings = Counter(
            "cvat_ext_sidecar_findings", "Findings by source and severity", ["source", "severity"], registry=r
        )
        self.issues_opened = Counter("cvat_ext_sidecar_issues_opened", "CVAT issues opened", registry=r)
        self.issues_resolved = Counter("cvat_ext_sidecar_issues_resolved", "CVAT issues resolved", registry=r)
        self.issues_still_present = Counter(
            "cvat_ext_sidecar_issues_still_present",
            "Issues resolved by hand in CVAT while their finding persists (commented once)",
            registry=r,
        )
        self.reassignments = Counter("cvat_ext_sidecar_reassignments", "Jobs reassigned to reviewers", registry=r)
        self.cvat_calls = Counter("cvat_ext_sidecar_cvat_calls", "CVAT API requests", ["endpoint"], registry=r)
        self.cvat_errors = Counter(
            "cvat_ext_sidecar_cvat_errors", "CVAT errors that reached the sidecar, by type", ["kind"], registry=r
        )
        self.webhooks = Counter(
            "cvat_ext_sidecar_webhooks", "Webhook deliveries by result (accepted|rejected)", ["result"], registry=r
        )
        self.throttled_seconds = Counter(
            "cvat_ext_sidecar_cvat_throttled_seconds",
            "Time spent waiting for the self rate limit on CVAT requests (cvat.max_calls_per_s)",
            registry=r,
        )
        self.prefetch = Counter(
            "cvat_ext_sidecar_prefetch_jobs",
            "SAM prefetch per job by result (done|failed)",
            ["result"],
            registry=r,
        )
        self.prefetch_frames = Counter(
            "cvat_ext_sidecar_prefetch_frames", "Frames sent to the SAM function for prefetch", registry=r
        )
        self.al_rounds = Counter(
            "cvat_ext_sidecar_al_rounds", "Scheduled active-learning rounds, by result (started|waiting|failed)",
            ["result"], registry=r,
        )
        self.cycle_seconds = Histogram(
            "cvat_ext_sidecar_cycle_seconds",
            "Cycle latency",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
            registry=r,
        )
        self.writes_pending = Counter(
            "cvat_ext_sidecar_writes_pending",
            "Creates held back because an earlier ambiguous attempt may still land (write-visibility window)",
            registry=r,
        )
        self.duplicates_resolved = Counter(
            "cvat_ext_sidecar_duplicates_resolved",
            "Second issues with the same finding fingerprint found in CVAT and resolved with a comment",
            registry=r,
        )
        self.parked = Counter(
            "cvat_ext_sidecar_parked",
            "Units and actions parked after CVAT kept refusing them (403/404), by what (unit|action)",
            ["what"],
            registry=r,
        )
        self.webhook_jobs_out_of_scope = Counter(
            "cvat_ext_sidecar_webhook_jobs_out_of_scope",
            "Queued job ids dropped after reading the job: outside the organization or scope",
            registry=r,
        )
        self.last_cycle = Gauge(
            "cvat_ext_sidecar_last_cycle_timestamp_seconds", "End of the last successful cycle", registry=r
        )

    def count_calls(self, before: Mapping[str, int], after: Mapping[str, int]) -> int:
        """Add the CVAT calls made between two snapshots of ``CvatClient.calls``; returns the total."""
        delta: TallyCounter[str] = TallyCounter()
        for call, n in after.items():
            diff = n - before.get(call, 0)
            if diff > 0:
                delta[endpoint_label(call)] += diff
        for label, n in delta.items():
            self.cvat_calls.labels(endpoint=label).inc(n)
        return sum(delta.values())

    def render(self) -> bytes:
        return generate_latest(self.registry)

"""The QA contract shared by rules, consensus and the sidecar: what was found
(:mod:`~cvat_ext.qa.findings`) and what to do about it (:mod:`~cvat_ext.qa.decision`).

Both modules are plain data and pure functions (no CVAT, no I/O, no numpy), so every producer and
consumer of findings can depend on them without depending on each other.
"""

from cvat_ext.qa.decision import Agreement, Decision, Policy, Verdict, decide
from cvat_ext.qa.findings import SEVERITY_RANK, Action, Finding, Severity, Source, Votes, has_errors

__all__ = [
    "SEVERITY_RANK",
    "Action",
    "Agreement",
    "Decision",
    "Finding",
    "Policy",
    "Severity",
    "Source",
    "Verdict",
    "Votes",
    "decide",
    "has_errors",
]

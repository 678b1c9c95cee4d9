"""An issue's text and the finding fingerprint it carries.

Every issue the sidecar opens ends its message with ``[cvat-ext fp=<16 hex digits>]``, the
fingerprint of its finding (:attr:`cvat_ext.qa.findings.Finding.fingerprint`). CVAT stores an
issue's message as its first comment, so the sidecar can find its own issues again from CVAT alone:
after a crash between CVAT's answer and the state write (:mod:`cvat_ext.sidecar.issues`), and when
a late create leaves a second copy (:mod:`cvat_ext.sidecar.duplicates`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from cvat_ext.cvat.records import Issue
from cvat_ext.qa.findings import Finding
from cvat_ext.sidecar.interface import CvatApi

FP_TAG = re.compile(r"\[cvat-ext fp=([0-9a-f]{16})\]")
#: the start of the one comment on an issue a person resolved while its finding persists
STILL_PRESENT = "still present: "


def issue_message(finding: Finding) -> str:
    """The issue text: the finding's message, its origin, and the fingerprint tag."""
    origin = f"rule {finding.code}" if finding.source == "rule" else f"consensus {finding.code}"
    return f"{finding.message} ({origin}, {finding.severity}) [cvat-ext fp={finding.fingerprint}]"


def fingerprinted(client: CvatApi, issues: Iterable[Issue], frame: int, fingerprint: str) -> list[Issue]:
    """The issues among ``issues`` on ``frame`` whose first comment carries ``fingerprint`` (id order).

    CVAT calls: one comment listing per issue on that frame.
    """
    found: list[Issue] = []
    for issue in sorted(issues, key=lambda i: i.id):
        if issue.frame != frame:
            continue
        for comment in client.list_comments(issue.id)[:1]:
            m = FP_TAG.search(comment.message)
            if m and m.group(1) == fingerprint:
                found.append(issue)
    return found

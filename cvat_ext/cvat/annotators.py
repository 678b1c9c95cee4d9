"""How an annotator is named: the one rule the sidecar and the CLI share.

A consensus replica job is named after its CVAT assignee's username, so a person reads the same
name in issues, the task guide, the report pages, logs, metrics and the state store, and their
numbers pool across jobs. Two exceptions keep names unique within one parent job:

* an unassigned replica is ``job<ID>``;
* a person holding two replicas of the same parent gets ``<username> (job<ID>)`` on each.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Protocol


class AssignedJob(Protocol):
    """What naming needs of a job: the client's ``Job`` and the state store's ``JobRow`` both fit."""

    @property
    def id(self) -> int: ...

    @property
    def assignee_username(self) -> str | None: ...


def replica_names(replicas: Sequence[AssignedJob]) -> list[str]:
    """One annotator name per replica job, in the order given (see the module docstring)."""
    users = [r.assignee_username or None for r in replicas]
    held = Counter(u for u in users if u is not None)
    names = []
    for replica, user in zip(replicas, users, strict=True):
        if user is None:
            names.append(f"job{replica.id}")
        elif held[user] > 1:
            names.append(f"{user} (job{replica.id})")
        else:
            names.append(user)
    return names


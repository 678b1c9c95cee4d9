"""Idempotent CVAT writes: every action runs under a key recorded in the state store.

Protocol of one action (the names in brackets are the crash-test boundaries passed to ``hook``)::

    started row written (payload = the decided values)        [<kind>:started]
    CVAT call                                                 [<kind>:called]
    done row + audit entry written in one transaction         [<kind>:done]

A restart finds the row in one of three states: none (the action is planned again), ``done``
(skipped, no CVAT call) or ``started`` (the CVAT call may or may not have happened: the action's
``reconcile`` looks at CVAT and either confirms the earlier call or repeats it with the stored
payload, so a reviewer chosen before the crash is the one assigned after it).

A create (issue, comment) whose earlier attempt failed ambiguously (timeout, reset, 5xx: CVAT may
have committed it, possibly after the client gave up) is repeated only once ``settle_s`` seconds
(the CVAT write-visibility window) have passed since that attempt without ``reconcile`` finding
it; before that :class:`~cvat_ext.errors.CvatWritePendingError` says "try again later". Actions
CVAT keeps refusing, or that a later cycle replaced, are closed with :meth:`ActionRunner.close`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from cvat_ext.errors import CvatWritePendingError, LeaseLostError
from cvat_ext.sidecar.state import StateStore

log = logging.getLogger(__name__)

Hook = Callable[[str], None]


def no_hook(boundary: str) -> None:
    """The production hook: nothing."""


@dataclass(frozen=True)
class ActionOutcome:
    result: dict[str, Any]
    performed: bool  # False when the action was already done (or confirmed by reconcile)


class ActionRunner:
    """Runs keyed actions for one sidecar replica (``owner``)."""

    def __init__(self, store: StateStore, owner: str, *, hook: Hook = no_hook, lease_ttl_s: float = 300.0) -> None:
        self.store = store
        self.owner = owner
        self.hook = hook
        self.lease_ttl_s = lease_ttl_s
        #: the lease the current work runs under; renewed before every CVAT write
        self.lease: str | None = None

    @contextmanager
    def under_lease(self, key: str) -> Iterator[None]:
        """Actions inside renew ``key`` first and stop with LeaseLostError if another replica took it
        (the holder was too slow: its lease expired)."""
        previous, self.lease = self.lease, key
        try:
            yield
        finally:
            self.lease = previous

    def _renew(self) -> None:
        if self.lease is not None and not self.store.try_lease(self.lease, self.owner, self.lease_ttl_s):
            raise LeaseLostError(f"{self.lease}: lease expired and was taken over by another replica")

    def payload_of(self, key: str) -> dict[str, Any] | None:
        """The payload stored for a started or done action (the decision made before a crash)."""
        row = self.store.get_action(key)
        return row.payload if row is not None else None

    def is_done(self, key: str) -> bool:
        row = self.store.get_action(key)
        return row is not None and row.status == "done"

    def run(
        self,
        key: str,
        kind: str,
        *,
        job_id: int | None,
        payload: dict[str, Any],
        do: Callable[[dict[str, Any]], dict[str, Any]],
        audit: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]],
        reconcile: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
        settle_s: float = 0.0,
    ) -> ActionOutcome:
        """Run ``do(payload)`` once per ``key``.

        ``audit(payload, result)`` returns the audit entry fields (action, reason, job_id, ...).
        ``reconcile(payload)`` returns the result when CVAT shows the action already happened,
        else None (then ``do`` runs with the stored payload, but not within ``settle_s`` seconds
        of the earlier attempt: CvatWritePendingError).
        """
        row = self.store.get_action(key)
        if row is not None and row.status == "done":
            return ActionOutcome(row.result or {}, performed=False)
        self._renew()  # one write per action: cheap, and it bounds a slow holder's overlap to one call
        if row is not None:
            payload = row.payload  # the decision taken before the interruption wins
            if reconcile is not None:
                found = reconcile(payload)
                if found is not None:
                    log.info("action %s: found done in CVAT after an interruption", key)
                    self._finish(key, payload, found, audit)
                    return ActionOutcome(found, performed=False)
                waited = self.store.clock() - row.updated_at
                if waited < settle_s:
                    raise CvatWritePendingError(
                        f"action {key}: the attempt {waited:.0f} s ago may still land in CVAT; not repeated "
                        f"before the {settle_s:g} s write-visibility window has passed",
                        key=key,
                        wait_s=settle_s - waited,
                    )
        self.store.start_action(key, kind, job_id, payload, self.owner)
        self.hook(f"{kind}:started")
        result = do(payload)
        self.hook(f"{kind}:called")
        self._finish(key, payload, result, audit)
        self.hook(f"{kind}:done")
        return ActionOutcome(result, performed=True)

    def close(self, key: str, status: str, *, reason: str, audit: dict[str, Any]) -> None:
        """Close a ``started`` action without doing it: ``parked`` (CVAT keeps refusing it) or
        ``superseded`` (a later cycle replaced it); the audit entry says why."""
        entry = {"replica": self.owner, "reason": reason, **audit}
        self.store.finish_action(key, {"closed": status, "reason": reason}, entry, status=status)
        log.info("action %s closed as %s: %s", key, status, reason)

    def _finish(
        self,
        key: str,
        payload: dict[str, Any],
        result: dict[str, Any],
        audit: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]],
    ) -> None:
        entry = {"replica": self.owner, **audit(payload, result)}
        self.store.finish_action(key, result, entry)

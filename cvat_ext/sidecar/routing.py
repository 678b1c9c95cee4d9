"""The expert reviewer pool and least-loaded assignment.

The pool is the configured usernames plus every active org member holding one of the configured
roles. Load is the number of not-completed jobs a reviewer is assigned to, counted from the state
store's job cache (no CVAT call). A job never goes to one of its own annotators.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from cvat_ext.errors import CvatExtError
from cvat_ext.sidecar.config import ReviewerSettings
from cvat_ext.sidecar.expiring import ExpiringCache
from cvat_ext.sidecar.interface import CvatApi
from cvat_ext.sidecar.state import StateStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reviewer:
    id: int
    username: str


class NoReviewerError(CvatExtError):
    """No reviewer in the pool may take the job (all are its annotators, or the pool is empty)."""


class ReviewerPool:
    """Resolves the configured pool to CVAT users (cached ``ttl_s``) and picks reviewers."""

    def __init__(
        self,
        client: CvatApi,
        store: StateStore,
        settings: ReviewerSettings,
        *,
        ttl_s: float,
        clock: Callable[[], float],
    ) -> None:
        self.client = client
        self.store = store
        self.settings = settings
        # one value: the resolved pool
        self._cache: ExpiringCache[None, list[Reviewer]] = ExpiringCache(ttl_s=ttl_s, clock=clock, max_entries=1)

    def members(self) -> list[Reviewer]:
        """The pool, sorted by username (one or two CVAT calls per ``ttl_s``)."""
        cached = self._cache.get(None)
        if cached is not None:
            return cached
        found: dict[int, Reviewer] = {}
        if self.settings.usernames:
            wanted = set(self.settings.usernames)
            for user in self.client.list_users():
                if user.username in wanted:
                    found[user.id] = Reviewer(user.id, user.username)
            missing = wanted - {r.username for r in found.values()}
            if missing:
                log.warning("reviewer pool: no CVAT user named %s in this organization", sorted(missing))
        for role in self.settings.roles:
            for m in self.client.list_memberships(role=role):
                if m.is_active:
                    found[m.user_id] = Reviewer(m.user_id, m.username)
        return self._cache.put(None, sorted(found.values(), key=lambda r: r.username))

    def is_reviewer(self, user_id: int | None) -> bool:
        return user_id is not None and any(r.id == user_id for r in self.members())

    def least_loaded(self, *, exclude: set[int]) -> Reviewer:
        """The pool member with the fewest open jobs (ties: username), never one in ``exclude`` nor one
        the qualification gate holds as not qualified."""
        exclude = exclude | self.store.not_qualified_users()
        candidates = [r for r in self.members() if r.id not in exclude]
        if not candidates:
            raise NoReviewerError(
                f"no eligible reviewer: pool {[r.username for r in self.members()]} minus the job's annotators is empty"
            )
        load = self.store.assigned_counts(r.id for r in candidates)
        return min(candidates, key=lambda r: (load.get(r.id, 0), r.username))

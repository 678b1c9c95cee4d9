"""Who may read the report pages: CVAT decides, the sidecar remembers for a while.

The pages show people's performance, so they are never public. A manager signs in with their own
CVAT credentials (a personal access token, or username and password); the sidecar asks CVAT who
that is (``GET /api/users/self``) and, per configured organization, which role they hold
(``GET /api/memberships`` in that organization). Only ``owner``, ``maintainer`` and
``supervisor`` members see an organization; a CVAT superuser sees every configured organization,
and the personal workspace (organization ``""``) is shown to superusers only. The credentials are
used for that check and dropped; the sidecar keeps a random session id (an ``HttpOnly``,
``SameSite=Strict`` cookie) that expires after ``ttl_s``.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from cvat_ext.errors import CvatAuthError, CvatExtError, CvatPermissionError

if TYPE_CHECKING:
    from cvat_ext.cvat.client import CvatClient

MANAGER_ROLES = frozenset({"owner", "maintainer", "supervisor"})
SESSION_COOKIE = "cvat_ext_session"


class AccessDenied(CvatExtError):
    """The credentials are wrong (``status`` 401) or the user manages none of the organizations (403)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Viewer:
    """A signed-in manager and the organizations (slugs) they may see."""

    username: str
    orgs: frozenset[str]


class Verifier(Protocol):
    def __call__(self, *, token: str | None, username: str | None, password: str | None) -> Viewer: ...


def cvat_verifier(orgs: Sequence[str], make_client: Callable[..., CvatClient]) -> Verifier:
    """Check credentials against CVAT; ``make_client(org=..., access_token=..., username=..., password=...)``."""

    def verify(*, token: str | None, username: str | None, password: str | None) -> Viewer:
        if not token and not (username and password):
            raise AccessDenied("give a personal access token, or a username and a password", 401)
        allowed: set[str] = set()
        me = None
        for org in orgs:
            try:
                with make_client(org=org or None, access_token=token or None, username=None if token else username,
                                 password=None if token else password) as client:
                    me = me or client.whoami()
                    if me.is_superuser:
                        allowed.add(org)
                    elif org:
                        roles = {m.role for m in client.list_memberships() if m.user_id == me.id and m.is_active}
                        if roles & MANAGER_ROLES:
                            allowed.add(org)
            except CvatAuthError:
                raise AccessDenied("CVAT rejected these credentials", 401) from None
            except CvatPermissionError:
                continue  # not a member of this organization
        if me is None or not allowed:
            raise AccessDenied("these pages are for organization owners, maintainers and supervisors", 403)
        return Viewer(me.username, frozenset(allowed))

    return verify


class Sessions:
    """Signed-in viewers by random session id, each valid for ``ttl_s`` seconds (thread-safe, bounded)."""

    def __init__(self, *, ttl_s: float = 8 * 3600, max_sessions: int = 1000,
                 clock: Callable[[], float] = time.time) -> None:
        self.ttl_s = ttl_s
        self.max_sessions = max_sessions
        self.clock = clock
        self._lock = threading.Lock()
        self._by_id: dict[str, tuple[Viewer, float]] = {}

    def create(self, viewer: Viewer) -> str:
        sid = secrets.token_urlsafe(32)
        now = self.clock()
        with self._lock:
            self._by_id = {k: v for k, v in self._by_id.items() if v[1] > now}
            if len(self._by_id) >= self.max_sessions:  # drop the oldest rather than grow without bound
                oldest = min(self._by_id, key=lambda k: self._by_id[k][1])
                del self._by_id[oldest]
            self._by_id[sid] = (viewer, now + self.ttl_s)
        return sid

    def get(self, sid: str | None) -> Viewer | None:
        if not sid:
            return None
        with self._lock:
            found = self._by_id.get(sid)
            if found is None:
                return None
            if found[1] <= self.clock():
                del self._by_id[sid]
                return None
            return found[0]

    def drop(self, sid: str | None) -> None:
        with self._lock:
            self._by_id.pop(sid or "", None)

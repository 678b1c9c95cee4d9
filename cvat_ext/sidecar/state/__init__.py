"""Durable sidecar state: :class:`StateStore` (SQL, two dialects) and :func:`open_store`."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from cvat_ext.errors import ConfigError
from cvat_ext.sidecar.state.base import (
    ActionRow,
    AuditRecord,
    IssueRow,
    JobRow,
    Person,
    QualificationRow,
    ScoreRow,
    StateStore,
    WorkRow,
)

__all__ = ["ActionRow", "AuditRecord", "IssueRow", "JobRow", "Person", "QualificationRow", "ScoreRow", "StateStore",
           "WorkRow", "open_store"]


def open_store(url: str, *, clock: Callable[[], float] = time.time, must_exist: bool = False) -> StateStore:
    """Open (and migrate) the store at ``url``: ``sqlite:///relative.db``, ``sqlite:////abs/path.db``,
    ``sqlite:///:memory:`` or ``postgresql://...``. ``must_exist`` (commands that only read the
    sidecar's history): a SQLite file that is not there is an error, not a new empty store, so a
    mistyped path never shows an empty history."""
    if url.startswith("sqlite://"):
        from cvat_ext.sidecar.state.sqlite import SqliteStateStore

        path = url[len("sqlite://") :]
        path = path[1:] if path.startswith("/") else path
        if not path:
            raise ConfigError("state url: sqlite:/// needs a file path, e.g. sqlite:///./state.db")
        if must_exist and path != ":memory:" and not Path(path).is_file():
            raise ConfigError(f"state store {path} does not exist: pass --state with the sidecar's state.url")
        return SqliteStateStore(path, clock=clock)
    if url.startswith(("postgresql://", "postgres://")):
        from cvat_ext.sidecar.state.postgres import PostgresStateStore

        return PostgresStateStore(url, clock=clock)
    raise ConfigError("state url: expected sqlite:///PATH or postgresql://... (value hidden)")

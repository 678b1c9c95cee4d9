"""SQLite state store: the default, embedded, for a single sidecar replica.

Several processes on one file also work (``BEGIN IMMEDIATE`` + busy timeout), but use
PostgreSQL for replicas on different hosts.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cvat_ext.errors import StateStoreError
from cvat_ext.sidecar.state.base import StateStore

_APPEND_ONLY = """
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
"""


class SqliteStateStore(StateStore):
    """State in one SQLite file (``":memory:"`` for tests)."""

    serial_ddl = "INTEGER PRIMARY KEY AUTOINCREMENT"

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock=clock)
        self.path = str(path)
        self.description = f"state store sqlite:{self.path}"
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            # autocommit mode; transactions are explicit (BEGIN IMMEDIATE takes the write lock up front)
            self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
            self._conn.execute("PRAGMA journal_mode=WAL" if self.path != ":memory:" else "PRAGMA journal_mode=MEMORY")
            self._conn.execute("PRAGMA busy_timeout=30000")
        except sqlite3.Error as exc:
            raise StateStoreError(f"{self.description}: cannot open: {exc}") from exc
        self.migrate()

    def _raw_execute(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        cur = self._conn.execute(sql, tuple(params))
        rows = cur.fetchall()
        cur.close()
        return rows

    def _script(self, ddl: str) -> None:
        with self._lock:
            try:
                self._conn.executescript(ddl)
            except sqlite3.Error as exc:
                raise StateStoreError(f"{self.description}: creating the schema failed: {exc}") from exc

    def _append_only_ddl(self) -> str:
        return _APPEND_ONLY

    def _has_table(self, name: str) -> bool:
        return bool(self._execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)))

    begin_sql = "BEGIN IMMEDIATE"

"""PostgreSQL state store: several sidecar replicas share one database.

Replicas coordinate through row leases (``leases`` table, one atomic upsert with an expiry, see
:meth:`StateStore.try_lease`); everything else is idempotent by key, so a replica that dies
mid-unit leaves nothing half-done that the next lease holder cannot finish.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from cvat_ext.errors import StateStoreError
from cvat_ext.sidecar.state.base import StateStore

_APPEND_ONLY = """
CREATE OR REPLACE FUNCTION cvat_ext_audit_append_only() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION 'audit log is append-only'; END; $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS audit_append_only ON audit;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit
FOR EACH ROW EXECUTE FUNCTION cvat_ext_audit_append_only();
"""


class PostgresStateStore(StateStore):
    """State in a PostgreSQL database given by a libpq URL (``postgresql://user:pw@host:5432/db``)."""

    serial_ddl = "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"

    def __init__(self, url: str, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock=clock)
        import psycopg  # only PostgreSQL deployments need the driver loaded

        self._psycopg = psycopg
        host = url.rsplit("@", 1)[-1]  # never the credentials
        self.description = f"state store postgresql://{host}"
        try:
            self._conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise StateStoreError(f"{self.description}: cannot connect: {_first_line(exc)}") from None
        self.migrate()

    def _raw_execute(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._conn.cursor() as cur:
            cur.execute(sql.replace("?", "%s"), tuple(params))
            return list(cur.fetchall()) if cur.description is not None else []

    def _script(self, ddl: str) -> None:
        with self._lock, self._transaction():
            # one schema creator at a time when replicas start together
            self._execute("SELECT pg_advisory_xact_lock(4242001)")
            for statement in _split(ddl):
                self._execute(statement)

    def _append_only_ddl(self) -> str:
        return _APPEND_ONLY

    def _lock_schema(self) -> None:
        # one schema creator (or migrator) at a time when replicas start together
        self._execute("SELECT pg_advisory_xact_lock(4242001)")

    def _has_table(self, name: str) -> bool:
        return self._execute("SELECT to_regclass(?)", (name,))[0][0] is not None


def _split(ddl: str) -> list[str]:
    """Statements of a DDL script; ``$$ ... $$`` bodies keep their semicolons."""
    out: list[str] = []
    buf: list[str] = []
    in_body = False
    for line in ddl.splitlines():
        buf.append(line)
        if line.count("$$") % 2 == 1:
            in_body = not in_body
        if not in_body and line.rstrip().endswith(";"):
            out.append("\n".join(buf).strip().rstrip(";"))
            buf = []
    if "".join(buf).strip():
        out.append("\n".join(buf).strip())
    return [s for s in out if s]


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__

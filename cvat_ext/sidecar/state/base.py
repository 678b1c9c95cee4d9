"""The sidecar's durable state: one SQL schema, two dialects (SQLite, PostgreSQL).

What is kept (table: meaning):

* ``cursors``: change-detection cursors (``updated_date`` high-water marks, ISO 8601 UTC);
* ``jobs``: the last seen summary of every job in scope (type, parent, stage, state, assignee,
  ``updated_date``), so a cycle knows the replicas of a parent without asking CVAT;
* ``pending``: job ids to look at next cycle (webhook deliveries, work that failed on a CVAT error);
* ``units``: the input signature of every work unit (a job, or a consensus parent with its
  replicas) last processed, so unchanged inputs are never scored twice;
* ``actions``: every CVAT write the sidecar decided, by idempotency key, ``started`` then ``done``
  (or ``parked``: CVAT kept refusing it with 403/404; ``superseded``: a later cycle replaced it);
* ``watches``: issue creates that failed ambiguously (timeout, reset, 5xx), with the finding's
  job, frame and fingerprint, until when their job is checked for duplicate issues;
* ``issues``: published issues by finding fingerprint (``open`` / ``resolved``);
* ``leases``: row leases with an expiry, so replicas never act on the same unit at once;
* ``denials``: per unit, the cycles in a row CVAT refused it (403), counted by every replica and
  kept across restarts, until the unit goes through or leaves the queue (parked, gone, bad data);
* ``scores``: the latest result per unit (agreement, rule errors, decision) for the task guide;
* ``guides``: hash and time of the last guide update per task;
* ``work``: each annotator job (who, when started and completed, what it measured) for scorecards;
* ``qualification``: each annotator's standing against gold and the checks behind it;
* ``users``: the CVAT username of every assignee seen, so job rows carry the name people read;
* ``annotator_models``: each annotator's fitted consensus model, per pooling scope (a project or
  a task), CVAT user id (a rename keeps the pool; ``username`` is the latest name seen, for people
  to read) and scored parent job: the prior that job's fit started from and the posterior it
  produced (see :meth:`StateStore.pooled_prior`);
* ``annotator_models_by_name``: models a version 3 store kept by username only, until that name
  is seen with a user id (:meth:`StateStore.pooled_prior` then moves them under the id);
* ``audit``: the append-only log (a trigger rejects UPDATE and DELETE).

Times are epoch seconds (float) from the injected clock, except ``audit.at`` (ISO 8601 UTC).

One store serves several CVAT organizations: every table but ``meta`` has an ``org`` column (the
slug; ``""`` = personal workspace) that is part of its key, and :meth:`StateStore.scoped` gives
the view of one organization (all methods then read and write only its rows). ``meta`` holds the
schema version; :meth:`StateStore.migrate` upgrades older stores in place (version 1, the
single-organization schema, keeps its rows under :data:`LEGACY_ORG` until
:meth:`StateStore.adopt_legacy` hands them to the organization they belonged to).
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cvat_ext.errors import StateStoreError

log = logging.getLogger(__name__)

#: 3 added the ``users`` and ``annotator_models`` tables (created on migrate; no row changes);
#: 4 keys ``annotator_models`` by CVAT user id (version 3's rows move to ``annotator_models_by_name``,
#: and those whose name the ``users`` table knows for one id move back under that id);
#: 5 added the ``denials`` table (created on migrate; no row changes)
SCHEMA_VERSION = 5
#: the org column of rows migrated from a version 1 (single-organization) store
LEGACY_ORG = "*legacy*"


@dataclass(frozen=True, slots=True)
class JobRow:
    """What the state remembers of one job (a projection of the client's ``Job``)."""

    id: int
    task_id: int
    parent_job_id: int | None
    type: str
    stage: str
    state: str
    assignee_id: int | None
    updated_date: str
    project_id: int | None = None
    assignee_username: str | None = None


@dataclass(frozen=True, slots=True)
class Person:
    """A CVAT user as the annotator pool keys them: ``user_id`` (kept across renames) and the
    ``username`` last seen (what people read)."""

    user_id: int
    username: str


@dataclass(frozen=True, slots=True)
class ActionRow:
    key: str
    kind: str
    job_id: int | None
    status: str  # started | done | parked | superseded
    payload: dict[str, Any]
    result: dict[str, Any] | None
    updated_at: float = 0.0  # clock seconds of the last attempt (or of finishing)


@dataclass(frozen=True, slots=True)
class IssueRow:
    fingerprint: str
    job_id: int
    issue_id: int | None
    frame: int
    status: str  # open | resolved | dismissed (resolved by a person while the finding persists)
    message: str
    generation: int = 0  # times resolved: keys of later resolve/reopen actions differ


@dataclass(frozen=True, slots=True)
class ScoreRow:
    unit_key: str
    task_id: int
    job_id: int
    kind: str
    agreement: float | None
    rule_errors: int
    findings: int
    decision: str
    detail: dict[str, Any]
    at: float


@dataclass(frozen=True, slots=True)
class WorkRow:
    """One annotator's job: when it was first seen assigned and when completed, and what it measured."""

    job_id: int
    user_id: int
    username: str
    project_id: int | None
    task_id: int
    job_type: str
    started_at: float
    completed_at: float | None = None
    completed_date: str | None = None  # the job's updated_date when it was seen completed
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class QualificationRow:
    """An annotator's standing against gold: ``qualified`` | ``not_qualified`` | ``pending``."""

    user_id: int
    username: str
    status: str
    checks: list[dict[str, Any]]
    updated_at: float


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audit entry: when, who (replica), what (action), on what (job/frame/user), why,
    and the before -> after values."""

    seq: int
    at: str
    replica: str
    action: str
    job_id: int | None
    task_id: int | None
    frame: int | None
    user_id: int | None
    reason: str
    before: dict[str, Any]
    after: dict[str, Any]
    key: str
    org: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "org": self.org,
            "at": self.at,
            "replica": self.replica,
            "action": self.action,
            "job_id": self.job_id,
            "task_id": self.task_id,
            "frame": self.frame,
            "user_id": self.user_id,
            "reason": self.reason,
            "before": self.before,
            "after": self.after,
            "key": self.key,
        }


_META_DDL = "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)"

_V3_MODEL_COLUMNS = (
    "scope TEXT NOT NULL, username TEXT NOT NULL, job_id BIGINT NOT NULL, seq BIGINT NOT NULL, prior TEXT, "
    "posterior TEXT NOT NULL, updated_at DOUBLE PRECISION NOT NULL"
)

#: version 2 keyed tables: name -> (columns after ``org``, primary key after ``org``, indexes)
_TABLES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "cursors": ("name TEXT NOT NULL, value TEXT NOT NULL", "name", ()),
    "jobs": (
        "id BIGINT NOT NULL, task_id BIGINT NOT NULL, parent_job_id BIGINT, type TEXT NOT NULL, stage TEXT NOT NULL, "
        "state TEXT NOT NULL, assignee_id BIGINT, updated_date TEXT NOT NULL, project_id BIGINT",
        "id",
        ("parent_job_id", "task_id"),
    ),
    "pending": ("job_id BIGINT NOT NULL, enqueued_at DOUBLE PRECISION NOT NULL, reason TEXT NOT NULL", "job_id", ()),
    "units": (
        "key TEXT NOT NULL, signature TEXT NOT NULL, task_id BIGINT, updated_at DOUBLE PRECISION NOT NULL",
        "key",
        (),
    ),
    "actions": (
        "key TEXT NOT NULL, kind TEXT NOT NULL, job_id BIGINT, status TEXT NOT NULL, payload TEXT NOT NULL, "
        "result TEXT, owner TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL",
        "key",
        (),
    ),
    "issues": (
        "fingerprint TEXT NOT NULL, job_id BIGINT NOT NULL, issue_id BIGINT, frame BIGINT NOT NULL, "
        "status TEXT NOT NULL, message TEXT NOT NULL, generation BIGINT NOT NULL, "
        "created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL",
        "fingerprint",
        ("job_id",),
    ),
    "watches": (
        "key TEXT NOT NULL, job_id BIGINT NOT NULL, payload TEXT NOT NULL, until DOUBLE PRECISION NOT NULL",
        "key",
        (),
    ),
    "leases": ("key TEXT NOT NULL, owner TEXT NOT NULL, expires_at DOUBLE PRECISION NOT NULL", "key", ()),
    "denials": ("key TEXT NOT NULL, count BIGINT NOT NULL, updated_at DOUBLE PRECISION NOT NULL", "key", ()),
    "scores": (
        "unit_key TEXT NOT NULL, task_id BIGINT NOT NULL, job_id BIGINT NOT NULL, kind TEXT NOT NULL, "
        "agreement DOUBLE PRECISION, rule_errors BIGINT NOT NULL, findings BIGINT NOT NULL, decision TEXT NOT NULL, "
        "detail TEXT NOT NULL, at DOUBLE PRECISION NOT NULL",
        "unit_key",
        ("task_id",),
    ),
    "guides": (
        "task_id BIGINT NOT NULL, content_hash TEXT NOT NULL, updated_at DOUBLE PRECISION NOT NULL",
        "task_id",
        (),
    ),
    # one row per annotator job (workforce scorecards), written as the job starts and completes
    "work": (
        "job_id BIGINT NOT NULL, user_id BIGINT NOT NULL, username TEXT NOT NULL, project_id BIGINT, "
        "task_id BIGINT NOT NULL, job_type TEXT NOT NULL, started_at DOUBLE PRECISION NOT NULL, "
        "completed_at DOUBLE PRECISION, completed_date TEXT, facts TEXT NOT NULL",
        "job_id",
        ("user_id", "project_id"),
    ),
    # qualification against gold per annotator: status and the gold checks behind it
    "qualification": (
        "user_id BIGINT NOT NULL, username TEXT NOT NULL, status TEXT NOT NULL, checks TEXT NOT NULL, "
        "updated_at DOUBLE PRECISION NOT NULL",
        "user_id",
        (),
    ),
    "users": ("user_id BIGINT NOT NULL, username TEXT NOT NULL", "user_id", ()),
    # pooling across jobs: one row per (scope, annotator, parent job); seq orders the folds
    "annotator_models": (
        "scope TEXT NOT NULL, user_id BIGINT NOT NULL, username TEXT NOT NULL, job_id BIGINT NOT NULL, "
        "seq BIGINT NOT NULL, prior TEXT, posterior TEXT NOT NULL, updated_at DOUBLE PRECISION NOT NULL",
        "scope, user_id, job_id",
        ("scope", "user_id"),
    ),
    # version 3's annotator_models (keyed by username), until each name is seen with an id
    "annotator_models_by_name": (
        _V3_MODEL_COLUMNS,
        "scope, username, job_id",
        ("username",),
    ),
}

_AUDIT_DDL = """CREATE TABLE IF NOT EXISTS audit (seq {serial}, at TEXT NOT NULL, replica TEXT NOT NULL,
    action TEXT NOT NULL, job_id BIGINT, task_id BIGINT, frame BIGINT, user_id BIGINT, reason TEXT NOT NULL,
    before TEXT NOT NULL, after TEXT NOT NULL, key TEXT NOT NULL, org TEXT NOT NULL DEFAULT '')"""


def _table_ddl(name: str) -> list[str]:
    columns, key, indexes = _TABLES[name]
    out = [f"CREATE TABLE IF NOT EXISTS {name} (org TEXT NOT NULL DEFAULT '', {columns}, PRIMARY KEY (org, {key}))"]
    # index names carry the version: version 1 names stay with the renamed tables until dropped
    out += [f"CREATE INDEX IF NOT EXISTS {name}_v2_{col} ON {name} (org, {col})" for col in indexes]
    return out


_AUDIT_COLUMNS = "seq, at, replica, action, job_id, task_id, frame, user_id, reason, before, after, key, org"


class _TxDepth:
    """Transaction nesting depth, shared by a store and its scoped views."""

    depth = 0


def _action_row(row: Sequence[Any]) -> ActionRow:
    key, kind, job_id, status, payload, result, updated_at = row
    return ActionRow(
        key, kind, job_id, status, json.loads(payload), json.loads(result) if result else None, float(updated_at)
    )


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class StateStore:
    """The SQL state store. Subclasses supply the connection and the dialect bits.

    All methods are safe to call from several threads (the webhook server enqueues while the
    cycle runs) and, for PostgreSQL, from several processes. SQL is written with ``?`` markers.
    """

    serial_ddl = "INTEGER PRIMARY KEY AUTOINCREMENT"
    description = "state store"
    begin_sql = "BEGIN"
    #: the DB-API connection (sqlite3 / psycopg), opened by the subclass
    _conn: Any

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        #: the organization this view reads and writes (see :meth:`scoped`)
        self.org = ""
        # one connection per store, shared by the cycle, the webhook thread and every scoped view
        self._lock = threading.RLock()
        self._tx = _TxDepth()

    def scoped(self, org: str) -> StateStore:
        """The view of organization ``org`` (same connection and transactions; do not close it)."""
        view = copy.copy(self)
        view.org = org
        return view

    # --- dialect hooks ----------------------------------------------------------------------
    def _raw_execute(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _begin(self) -> None:
        self._conn.execute(self.begin_sql)

    def _commit(self) -> None:
        self._conn.execute("COMMIT")

    def _rollback(self) -> None:
        self._conn.execute("ROLLBACK")

    def _script(self, ddl: str) -> None:
        for statement in ddl.split(";\n"):
            if statement.strip():
                self._execute(statement)

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._raw_execute(sql, params)
            except StateStoreError:
                raise
            except Exception as exc:  # driver errors differ per dialect; translated here
                raise self._wrap(exc, sql) from exc

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """A (re-entrant) transaction: the outermost one commits or rolls back."""
        with self._lock:
            outer = self._tx.depth == 0
            if outer:
                self._execute_control(self._begin)
            self._tx.depth += 1
            try:
                yield
            except BaseException:
                self._tx.depth -= 1
                if outer:
                    self._execute_control(self._rollback)
                raise
            self._tx.depth -= 1
            if outer:
                self._execute_control(self._commit)

    def _execute_control(self, step: Callable[[], None]) -> None:
        try:
            step()
        except Exception as exc:
            raise StateStoreError(f"{self.description}: transaction failed: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _append_only_ddl(self) -> str:
        return ""

    # --- schema -------------------------------------------------------------------------------
    def _lock_schema(self) -> None:
        """Inside the migration transaction: keep other processes out until it commits."""

    def _has_table(self, name: str) -> bool:
        raise NotImplementedError

    def schema_version(self) -> int | None:
        rows = self._execute("SELECT value FROM meta WHERE name = 'schema_version'")
        return int(rows[0][0]) if rows else None

    def migrate(self) -> None:
        """Create the tables, or upgrade an older store in place (idempotent; one transaction)."""
        with self._transaction():
            self._lock_schema()
            self._execute(_META_DDL)
            version = self.schema_version()
            if version is None and self._has_table("jobs"):
                version = 1  # a version 1 store always wrote its version; be lenient anyway
            if version is not None and version > SCHEMA_VERSION:
                raise StateStoreError(
                    f"{self.description}: schema version {version} is newer than this sidecar's "
                    f"({SCHEMA_VERSION}); upgrade the sidecar"
                )
            if version == 1:
                self._migrate_v1()
            if version == 3:
                self._migrate_v3()
            for name in _TABLES:
                for statement in _table_ddl(name):
                    self._execute(statement)
            if version == 3:
                self._adopt_known_names()
            self._execute(_AUDIT_DDL.replace("{serial}", self.serial_ddl))
            self._execute(
                "INSERT INTO meta(name, value) VALUES ('schema_version', ?) ON CONFLICT (name) DO UPDATE "
                "SET value = excluded.value",
                (str(SCHEMA_VERSION),),
            )
        self._script(self._append_only_ddl())

    def _migrate_v1(self) -> None:
        """Version 1 -> 2: every keyed table gains ``org`` in its key (rows kept under LEGACY_ORG);
        the audit log gains an ``org`` column (old entries: ``""``; ADD COLUMN touches no row, so
        the append-only triggers do not fire)."""
        log.info("%s: migrating the state schema from version 1 to %d", self.description, SCHEMA_VERSION)
        for name, (columns, _, _) in _TABLES.items():
            if not self._has_table(name):
                continue
            names = ", ".join(c.split()[0] for c in columns.split(", ") if c.split()[0].isidentifier())
            self._execute(f"ALTER TABLE {name} RENAME TO {name}_v1")
            for statement in _table_ddl(name):
                self._execute(statement)
            self._execute(f"INSERT INTO {name} (org, {names}) SELECT ?, {names} FROM {name}_v1", (LEGACY_ORG,))
            self._execute(f"DROP TABLE {name}_v1")
        if self._has_table("audit"):
            self._execute("ALTER TABLE audit ADD COLUMN org TEXT NOT NULL DEFAULT ''")

    def _migrate_v3(self) -> None:
        """Version 3 -> 4, step 1 (in the migration's transaction): the username-keyed models become
        ``annotator_models_by_name``; the id-keyed table is then created empty."""
        log.info("%s: migrating the state schema from version 3 to %d", self.description, SCHEMA_VERSION)
        self._execute("ALTER TABLE annotator_models RENAME TO annotator_models_by_name")
        # its index keeps its name through the rename: free the name for the new table's index
        self._execute("DROP INDEX IF EXISTS annotator_models_v2_scope")

    def _adopt_known_names(self) -> None:
        """Version 3 -> 4, step 2: models under a name the ``users`` table gives to exactly one id
        move under that id (the sighting that named the user happened before the migration)."""
        rows = self._execute(
            "SELECT u.org, u.user_id, u.username FROM users u WHERE NOT EXISTS (SELECT 1 FROM users v "
            "WHERE v.org = u.org AND v.username = u.username AND v.user_id <> u.user_id) AND EXISTS "
            "(SELECT 1 FROM annotator_models_by_name m WHERE m.org = u.org AND m.username = u.username)"
        )
        for org, user_id, username in rows:
            self.scoped(str(org))._adopt_name(Person(int(user_id), str(username)))

    def _adopt_name(self, person: Person) -> int:
        """Move the models kept under ``person.username`` alone (version 3) under ``person.user_id``,
        in every scope; returns the rows moved. They are older than any fold under the id, so they
        go before them in ``seq``; a job the id already has a row for keeps that row."""
        query = (
            "SELECT scope, job_id, seq, prior, posterior, updated_at FROM annotator_models_by_name "
            "WHERE org = ? AND username = ? ORDER BY scope, seq"
        )
        if not self._execute(query, (self.org, person.username)):
            return 0  # the usual case, without taking the write lock
        with self._transaction():
            rows = self._execute(query, (self.org, person.username))
            moved = 0
            for scope in sorted({str(r[0]) for r in rows}):
                mine = [r for r in rows if r[0] == scope]
                first = self._execute(
                    "SELECT MIN(seq) FROM annotator_models WHERE org = ? AND scope = ? AND user_id = ?",
                    (self.org, scope, person.user_id),
                )[0][0]
                shift = 0 if first is None else int(first) - 1 - max(int(r[2]) for r in mine)
                for _, job_id, seq, prior, posterior, updated_at in mine:
                    moved += len(self._execute(
                        "INSERT INTO annotator_models(org, scope, user_id, username, job_id, seq, prior, posterior, "
                        "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (org, scope, user_id, job_id) "
                        "DO NOTHING RETURNING 1",
                        (self.org, scope, person.user_id, person.username, job_id, int(seq) + shift, prior,
                         posterior, updated_at),
                    ))
            self._execute(
                "DELETE FROM annotator_models_by_name WHERE org = ? AND username = ?", (self.org, person.username)
            )
        log.info("%s: %d pooled models of %r (kept by name) now belong to user id %d",
                 self.description, moved, person.username, person.user_id)
        return moved

    def adopt_legacy(self, org: str) -> int:
        """Hand the rows a version 1 store had (one organization's) to ``org``; returns the rows
        moved (0 once done). Call before the first cycle, with the organization that store served."""
        moved = 0
        with self._transaction():
            for name in _TABLES:
                n = self._execute(f"SELECT COUNT(*) FROM {name} WHERE org = ?", (LEGACY_ORG,))[0][0]
                if n:
                    self._execute(f"UPDATE {name} SET org = ? WHERE org = ?", (org, LEGACY_ORG))
                    moved += int(n)
        if moved:
            log.info("%s: %d rows of the single-organization store now belong to org %r", self.description, moved, org)
        return moved

    # --- cursors --------------------------------------------------------------------------------
    def get_cursor(self, name: str) -> str | None:
        rows = self._execute("SELECT value FROM cursors WHERE org = ? AND name = ?", (self.org, name))
        return str(rows[0][0]) if rows else None

    def advance_cursor(self, name: str, value: str) -> None:
        """Move a cursor forward (never back; ISO 8601 UTC strings compare in time order)."""
        self._execute(
            "INSERT INTO cursors(org, name, value) VALUES (?, ?, ?) ON CONFLICT (org, name) DO UPDATE "
            "SET value = excluded.value WHERE cursors.value < excluded.value",
            (self.org, name, value),
        )

    def set_cursor(self, name: str, value: str) -> None:
        self._execute(
            "INSERT INTO cursors(org, name, value) VALUES (?, ?, ?) ON CONFLICT (org, name) DO UPDATE "
            "SET value = excluded.value",
            (self.org, name, value),
        )

    # --- job cache ------------------------------------------------------------------------------
    def upsert_jobs(self, rows: Iterable[JobRow]) -> None:
        with self._transaction():
            for r in rows:
                self._execute(
                    "INSERT INTO jobs(org, id, task_id, parent_job_id, type, stage, state, assignee_id, updated_date, "
                    "project_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (org, id) DO UPDATE SET "
                    "task_id = excluded.task_id, parent_job_id = excluded.parent_job_id, type = excluded.type, "
                    "stage = excluded.stage, state = excluded.state, assignee_id = excluded.assignee_id, "
                    "updated_date = excluded.updated_date, project_id = excluded.project_id",
                    (
                        self.org,
                        r.id,
                        r.task_id,
                        r.parent_job_id,
                        r.type,
                        r.stage,
                        r.state,
                        r.assignee_id,
                        r.updated_date,
                        r.project_id,
                    ),
                )
                if r.assignee_id is not None and r.assignee_username:
                    # a user renamed in CVAT shows under the new name from the next sighting on
                    self._execute(
                        "INSERT INTO users(org, user_id, username) VALUES (?, ?, ?) ON CONFLICT (org, user_id) "
                        "DO UPDATE SET username = excluded.username",
                        (self.org, r.assignee_id, r.assignee_username),
                    )

    def _job_rows(self, where: str, params: Sequence[Any]) -> list[JobRow]:
        rows = self._execute(
            "SELECT j.id, j.task_id, j.parent_job_id, j.type, j.stage, j.state, j.assignee_id, j.updated_date, "
            "j.project_id, u.username FROM jobs j LEFT JOIN users u ON u.org = j.org AND u.user_id = j.assignee_id "
            f"WHERE j.org = ? AND {where} ORDER BY j.id",
            (self.org, *params),
        )
        return [JobRow(*row) for row in rows]

    def get_job(self, job_id: int) -> JobRow | None:
        rows = self._job_rows("id = ?", (job_id,))
        return rows[0] if rows else None

    def replicas_of(self, parent_job_id: int) -> list[JobRow]:
        return self._job_rows("parent_job_id = ? AND type = 'consensus_replica'", (parent_job_id,))

    def jobs_of_task(self, task_id: int) -> list[JobRow]:
        return self._job_rows("task_id = ?", (task_id,))

    def assigned_counts(self, user_ids: Iterable[int]) -> dict[int, int]:
        """Open (not completed) jobs per assignee, from the job cache: the reviewer load."""
        ids = list(user_ids)
        counts = {uid: 0 for uid in ids}
        if not ids:
            return counts
        marks = ", ".join("?" for _ in ids)
        rows = self._execute(
            f"SELECT assignee_id, COUNT(*) FROM jobs WHERE org = ? AND assignee_id IN ({marks}) "
            "AND state <> 'completed' GROUP BY assignee_id",
            (self.org, *ids),
        )
        counts.update({int(uid): int(n) for uid, n in rows})
        return counts

    # --- pending queue --------------------------------------------------------------------------
    def enqueue(self, job_ids: Iterable[int], reason: str) -> None:
        now = self.clock()
        with self._transaction():
            for job_id in job_ids:
                self._execute(
                    "INSERT INTO pending(org, job_id, enqueued_at, reason) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (org, job_id) DO NOTHING",
                    (self.org, int(job_id), now, reason),
                )

    def pending(self) -> list[int]:
        rows = self._execute("SELECT job_id FROM pending WHERE org = ? ORDER BY enqueued_at, job_id", (self.org,))
        return [int(r[0]) for r in rows]

    def dequeue(self, job_ids: Iterable[int]) -> None:
        with self._transaction():
            for job_id in job_ids:
                self._execute("DELETE FROM pending WHERE org = ? AND job_id = ?", (self.org, int(job_id)))

    # --- units ----------------------------------------------------------------------------------
    def unit_signature(self, key: str) -> str | None:
        rows = self._execute("SELECT signature FROM units WHERE org = ? AND key = ?", (self.org, key))
        return str(rows[0][0]) if rows else None

    def set_unit_signature(self, key: str, signature: str, task_id: int | None) -> None:
        self._execute(
            "INSERT INTO units(org, key, signature, task_id, updated_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (org, key) DO UPDATE "
            "SET signature = excluded.signature, task_id = excluded.task_id, updated_at = excluded.updated_at",
            (self.org, key, signature, task_id, self.clock()),
        )

    # --- actions --------------------------------------------------------------------------------
    def get_action(self, key: str) -> ActionRow | None:
        rows = self._execute(
            "SELECT key, kind, job_id, status, payload, result, updated_at FROM actions WHERE org = ? AND key = ?",
            (self.org, key),
        )
        return _action_row(rows[0]) if rows else None

    def start_action(self, key: str, kind: str, job_id: int | None, payload: dict[str, Any], owner: str) -> None:
        now = self.clock()
        self._execute(
            "INSERT INTO actions(org, key, kind, job_id, status, payload, result, owner, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, 'started', ?, NULL, ?, ?, ?) ON CONFLICT (org, key) DO UPDATE "
            "SET owner = excluded.owner, updated_at = excluded.updated_at",
            (self.org, key, kind, job_id, json.dumps(payload, sort_keys=True), owner, now, now),
        )

    def finish_action(
        self, key: str, result: dict[str, Any], audit: dict[str, Any] | None = None, *, status: str = "done"
    ) -> None:
        """Close an action (``done``, ``parked`` or ``superseded``) and append its audit entry in the
        same transaction."""
        if status not in ("done", "parked", "superseded"):
            raise StateStoreError(f"action {key}: cannot close as {status!r}; expected done|parked|superseded")
        with self._transaction():
            self._execute(
                "UPDATE actions SET status = ?, result = ?, updated_at = ? WHERE org = ? AND key = ?",
                (status, json.dumps(result, sort_keys=True), self.clock(), self.org, key),
            )
            if audit is not None:
                self._append_audit(key=key, **audit)

    def actions(self, *, status: str | None = None, idle_for_s: float | None = None) -> list[ActionRow]:
        """Actions (optionally by status, and untouched for ``idle_for_s`` seconds), oldest first."""
        sql = "SELECT key, kind, job_id, status, payload, result, updated_at FROM actions WHERE org = ?"
        params: list[Any] = [self.org]
        if status is not None:
            sql += " AND status = ?"
            params.append(status)
        if idle_for_s is not None:
            sql += " AND updated_at < ?"
            params.append(self.clock() - idle_for_s)
        rows = self._execute(sql + " ORDER BY created_at, key", params)
        return [_action_row(row) for row in rows]

    # --- watches (ambiguous creates) --------------------------------------------------------------
    def watch(self, key: str, job_id: int, payload: dict[str, Any], until: float) -> None:
        """Check ``job_id`` for duplicates of the create under ``key`` until ``until`` (clock seconds);
        a later failure of the same create moves ``until`` on."""
        self._execute(
            "INSERT INTO watches(org, key, job_id, payload, until) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (org, key) DO UPDATE SET until = excluded.until WHERE watches.until < excluded.until",
            (self.org, key, job_id, json.dumps(payload, sort_keys=True), until),
        )

    def watches(self) -> list[tuple[str, int, dict[str, Any]]]:
        """Live watches as (key, job_id, payload), by job; expired ones are deleted first."""
        with self._transaction():
            self._execute("DELETE FROM watches WHERE org = ? AND until < ?", (self.org, self.clock()))
            rows = self._execute(
                "SELECT key, job_id, payload FROM watches WHERE org = ? ORDER BY job_id, key", (self.org,)
            )
        return [(str(k), int(j), json.loads(p)) for k, j, p in rows]

    # --- issues ---------------------------------------------------------------------------------
    def issues_of_job(self, job_id: int) -> list[IssueRow]:
        rows = self._execute(
            "SELECT fingerprint, job_id, issue_id, frame, status, message, generation FROM issues "
            "WHERE org = ? AND job_id = ? ORDER BY fingerprint",
            (self.org, job_id),
        )
        return [IssueRow(*r) for r in rows]

    def get_issue(self, fingerprint: str) -> IssueRow | None:
        rows = self._execute(
            "SELECT fingerprint, job_id, issue_id, frame, status, message, generation FROM issues "
            "WHERE org = ? AND fingerprint = ?",
            (self.org, fingerprint),
        )
        return IssueRow(*rows[0]) if rows else None

    def put_issue(self, row: IssueRow) -> None:
        now = self.clock()
        self._execute(
            "INSERT INTO issues(org, fingerprint, job_id, issue_id, frame, status, message, generation, created_at, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (org, fingerprint) DO UPDATE SET "
            "issue_id = excluded.issue_id, status = excluded.status, message = excluded.message, "
            "generation = excluded.generation, updated_at = excluded.updated_at",
            (
                self.org,
                row.fingerprint,
                row.job_id,
                row.issue_id,
                row.frame,
                row.status,
                row.message,
                row.generation,
                now,
                now,
            ),
        )

    # --- leases ---------------------------------------------------------------------------------
    def try_lease(self, key: str, owner: str, ttl_s: float) -> bool:
        """Take or renew the lease on ``key`` for ``ttl_s`` seconds; False when another owner
        holds an unexpired one. One atomic upsert, so two replicas can never both win."""
        now = self.clock()
        rows = self._execute(
            "INSERT INTO leases(org, key, owner, expires_at) VALUES (?, ?, ?, ?) ON CONFLICT (org, key) DO UPDATE "
            "SET owner = excluded.owner, expires_at = excluded.expires_at "
            "WHERE leases.owner = excluded.owner OR leases.expires_at < ? RETURNING owner",
            (self.org, key, owner, now + ttl_s, now),
        )
        return bool(rows) and rows[0][0] == owner

    def release_lease(self, key: str, owner: str) -> None:
        self._execute("DELETE FROM leases WHERE org = ? AND key = ? AND owner = ?", (self.org, key, owner))

    # --- refusals (units CVAT answers 403) --------------------------------------------------------
    def count_denial(self, key: str) -> int:
        """One more cycle in a row in which CVAT refused unit ``key``; returns the count so far
        (every replica's refusals, across restarts)."""
        rows = self._execute(
            "INSERT INTO denials(org, key, count, updated_at) VALUES (?, ?, 1, ?) ON CONFLICT (org, key) DO UPDATE "
            "SET count = denials.count + 1, updated_at = excluded.updated_at RETURNING count",
            (self.org, key, self.clock()),
        )
        return int(rows[0][0])

    def clear_denials(self, key: str) -> None:
        """Unit ``key`` went through or left the queue: its refusals no longer run in a row."""
        self._execute("DELETE FROM denials WHERE org = ? AND key = ?", (self.org, key))

    # --- scores and guides ------------------------------------------------------------------------
    def put_score(self, row: ScoreRow) -> None:
        self._execute(
            "INSERT INTO scores(org, unit_key, task_id, job_id, kind, agreement, rule_errors, findings, decision, "
            "detail, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (org, unit_key) DO UPDATE SET "
            "agreement = excluded.agreement, "
            "rule_errors = excluded.rule_errors, findings = excluded.findings, decision = excluded.decision, "
            "detail = excluded.detail, at = excluded.at",
            (
                self.org,
                row.unit_key,
                row.task_id,
                row.job_id,
                row.kind,
                row.agreement,
                row.rule_errors,
                row.findings,
                row.decision,
                json.dumps(row.detail, sort_keys=True),
                row.at,
            ),
        )

    def scores_of_task(self, task_id: int) -> list[ScoreRow]:
        rows = self._execute(
            "SELECT unit_key, task_id, job_id, kind, agreement, rule_errors, findings, decision, detail, at "
            "FROM scores WHERE org = ? AND task_id = ? ORDER BY job_id, unit_key",
            (self.org, task_id),
        )
        return [ScoreRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], json.loads(r[8]), r[9]) for r in rows]

    def all_scores(self) -> list[ScoreRow]:
        rows = self._execute(
            "SELECT unit_key, task_id, job_id, kind, agreement, rule_errors, findings, decision, detail, at "
            "FROM scores WHERE org = ? ORDER BY job_id, unit_key",
            (self.org,),
        )
        return [ScoreRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], json.loads(r[8]), r[9]) for r in rows]

    def jobs_by_ids(self, job_ids: Iterable[int]) -> list[JobRow]:
        wanted = sorted(set(job_ids))
        out: list[JobRow] = []
        for start in range(0, len(wanted), 500):  # bounded IN lists
            chunk = wanted[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            out += self._job_rows(f"id IN ({marks})", chunk)
        return out

    def issue_counts_by_job(self) -> dict[int, tuple[int, int]]:
        """Per job: issues the sidecar published, and how many of them are resolved."""
        rows = self._execute(
            "SELECT job_id, COUNT(*), SUM(CASE WHEN status = 'resolved' THEN 1 ELSE 0 END) FROM issues "
            "WHERE org = ? GROUP BY job_id",
            (self.org,),
        )
        return {int(j): (int(n), int(r or 0)) for j, n, r in rows}

    def scored_tasks(self) -> list[int]:
        """Tasks with at least one score, ascending."""
        return [int(r[0]) for r in self._execute(
            "SELECT DISTINCT task_id FROM scores WHERE org = ? ORDER BY task_id", (self.org,))]

    def open_issues_by_task(self) -> dict[int, int]:
        """Open published issues per task (tasks known from the ``jobs`` table)."""
        rows = self._execute(
            "SELECT j.task_id, COUNT(*) FROM issues i JOIN jobs j ON j.org = i.org AND j.id = i.job_id "
            "WHERE i.org = ? AND i.status = 'open' GROUP BY j.task_id",
            (self.org,),
        )
        return {int(t): int(n) for t, n in rows}

    def tasks_needing_guide(self) -> list[int]:
        """Tasks with scores newer than their last guide update (or never published)."""
        rows = self._execute(
            "SELECT DISTINCT s.task_id FROM scores s LEFT JOIN guides g ON g.org = s.org AND g.task_id = s.task_id "
            "WHERE s.org = ? AND (g.task_id IS NULL OR s.at > g.updated_at) ORDER BY s.task_id",
            (self.org,),
        )
        return [int(r[0]) for r in rows]

    def guide_state(self, task_id: int) -> tuple[str, float] | None:
        rows = self._execute(
            "SELECT content_hash, updated_at FROM guides WHERE org = ? AND task_id = ?", (self.org, task_id)
        )
        return (str(rows[0][0]), float(rows[0][1])) if rows else None

    def set_guide_state(self, task_id: int, content_hash: str) -> None:
        self._execute(
            "INSERT INTO guides(org, task_id, content_hash, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (org, task_id) DO UPDATE "
            "SET content_hash = excluded.content_hash, updated_at = excluded.updated_at",
            (self.org, task_id, content_hash, self.clock()),
        )

    # --- workforce ------------------------------------------------------------------------------
    # --- annotator models (pooling across jobs) -----------------------------------------------------
    def pooled_prior(self, scope: str, person: Person, job_id: int) -> dict[str, Any] | None:
        """The prior for fitting ``person`` on parent job ``job_id`` within ``scope``.

        A job scored before gets the prior it was first fitted from, so scoring it again (its
        replicas changed, or a cycle replayed after a crash) replaces its contribution instead of
        adding it twice; a new job gets the latest posterior of the scope (None: no history).
        Models a version 3 store kept under this username move under the user id first."""
        self._adopt_name(person)
        own = self._execute(
            "SELECT prior FROM annotator_models WHERE org = ? AND scope = ? AND user_id = ? AND job_id = ?",
            (self.org, scope, person.user_id, job_id),
        )
        if own:
            return json.loads(own[0][0]) if own[0][0] is not None else None
        head = self._execute(
            "SELECT posterior FROM annotator_models WHERE org = ? AND scope = ? AND user_id = ? "
            "ORDER BY seq DESC LIMIT 1",
            (self.org, scope, person.user_id),
        )
        return json.loads(head[0][0]) if head else None

    def fold_models(
        self, scope: str, job_id: int, folds: Iterable[tuple[Person, dict[str, Any] | None, dict[str, Any]]]
    ) -> None:
        """Record, in one transaction, each (person, prior, posterior) of parent job ``job_id``:
        the posterior fitted from ``prior`` (what :meth:`pooled_prior` gave). A job already folded
        keeps its place and its first prior; only its posterior is replaced. The person's rows
        everywhere take the username given (a rename shows at once)."""
        with self._transaction():
            for person, prior, posterior in folds:
                self._adopt_name(person)
                seq = self._execute(
                    "SELECT COALESCE(MAX(seq), 0) + 1 FROM annotator_models WHERE org = ? AND scope = ? "
                    "AND user_id = ?",
                    (self.org, scope, person.user_id),
                )[0][0]
                self._execute(
                    "INSERT INTO annotator_models(org, scope, user_id, username, job_id, seq, prior, posterior, "
                    "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (org, scope, user_id, job_id) DO "
                    "UPDATE SET posterior = excluded.posterior, updated_at = excluded.updated_at",
                    (
                        self.org,
                        scope,
                        person.user_id,
                        person.username,
                        job_id,
                        int(seq),
                        None if prior is None else json.dumps(prior, sort_keys=True),
                        json.dumps(posterior, sort_keys=True),
                        self.clock(),
                    ),
                )
                self._execute(
                    "UPDATE annotator_models SET username = ? WHERE org = ? AND user_id = ? AND username <> ?",
                    (person.username, self.org, person.user_id, person.username),
                )

    def pooled_models(self, scope: str | None = None) -> list[tuple[str, str, int, dict[str, Any]]]:
        """Per (scope, person): the username last seen, the jobs folded in and the latest posterior,
        sorted by scope and username."""
        where, params = ("AND scope = ?", (scope,)) if scope is not None else ("", ())
        rows = self._execute(
            "SELECT scope, user_id, username, seq, posterior FROM annotator_models WHERE org = ? "
            f"{where} ORDER BY scope, user_id, seq",
            (self.org, *params),
        )
        latest: dict[tuple[str, int], tuple[str, int, dict[str, Any]]] = {}
        for sc, user_id, user, _, posterior in rows:
            jobs = latest.get((sc, user_id), ("", 0, {}))[1] + 1
            latest[(sc, user_id)] = (str(user), jobs, json.loads(posterior))
        out = [(sc, user, jobs, model) for (sc, _), (user, jobs, model) in latest.items()]
        return sorted(out, key=lambda row: (row[0], row[1]))

    def start_work(self, row: WorkRow) -> None:
        """Remember that ``row.username`` works on ``row.job_id`` (first sighting wins; a new assignee restarts it)."""
        self._execute(
            "INSERT INTO work(org, job_id, user_id, username, project_id, task_id, job_type, started_at, "
            "completed_at, completed_date, facts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, '{}') "
            "ON CONFLICT (org, job_id) DO UPDATE SET user_id = excluded.user_id, username = excluded.username, "
            "started_at = excluded.started_at, completed_at = NULL, completed_date = NULL, facts = '{}' "
            "WHERE work.user_id <> excluded.user_id",
            (self.org, row.job_id, row.user_id, row.username, row.project_id, row.task_id, row.job_type,
             row.started_at),
        )

    def complete_work(self, job_id: int, *, completed_at: float, completed_date: str, facts: dict[str, Any]) -> None:
        self._execute(
            "UPDATE work SET completed_at = ?, completed_date = ?, facts = ? WHERE org = ? AND job_id = ?",
            (completed_at, completed_date, json.dumps(facts, sort_keys=True), self.org, job_id),
        )

    def work(self, *, job_id: int | None = None, project_id: int | None = None, user_id: int | None = None,
             completed: bool | None = None) -> list[WorkRow]:
        sql = ("SELECT job_id, user_id, username, project_id, task_id, job_type, started_at, completed_at, "
               "completed_date, facts FROM work WHERE org = ?")
        params: list[Any] = [self.org]
        for column, value in (("job_id", job_id), ("project_id", project_id), ("user_id", user_id)):
            if value is not None:
                sql += f" AND {column} = ?"
                params.append(value)
        if completed is not None:
            sql += " AND completed_at IS NOT NULL" if completed else " AND completed_at IS NULL"
        rows = self._execute(sql + " ORDER BY started_at, job_id", params)
        return [WorkRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], json.loads(r[9])) for r in rows]

    def get_qualification(self, user_id: int) -> QualificationRow | None:
        rows = self._execute(
            "SELECT user_id, username, status, checks, updated_at FROM qualification WHERE org = ? AND user_id = ?",
            (self.org, user_id),
        )
        return QualificationRow(rows[0][0], rows[0][1], rows[0][2], json.loads(rows[0][3]), rows[0][4]) if rows \
            else None

    def qualifications(self) -> list[QualificationRow]:
        rows = self._execute(
            "SELECT user_id, username, status, checks, updated_at FROM qualification WHERE org = ? ORDER BY username",
            (self.org,),
        )
        return [QualificationRow(r[0], r[1], r[2], json.loads(r[3]), r[4]) for r in rows]

    def put_qualification(self, row: QualificationRow) -> None:
        self._execute(
            "INSERT INTO qualification(org, user_id, username, status, checks, updated_at) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (org, user_id) DO UPDATE SET username = excluded.username, status = excluded.status, "
            "checks = excluded.checks, updated_at = excluded.updated_at",
            (self.org, row.user_id, row.username, row.status, json.dumps(row.checks, sort_keys=True),
             row.updated_at),
        )

    def not_qualified_users(self) -> set[int]:
        return {int(r[0]) for r in self._execute(
            "SELECT user_id FROM qualification WHERE org = ? AND status = 'not_qualified'", (self.org,))}

    # --- audit ----------------------------------------------------------------------------------
    def _append_audit(
        self,
        *,
        key: str,
        replica: str,
        action: str,
        reason: str,
        job_id: int | None = None,
        task_id: int | None = None,
        frame: int | None = None,
        user_id: int | None = None,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
    ) -> None:
        self._execute(
            "INSERT INTO audit(at, replica, action, job_id, task_id, frame, user_id, reason, before, after, key, org) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                _iso(self.clock()),
                replica,
                action,
                job_id,
                task_id,
                frame,
                user_id,
                reason,
                json.dumps(before or {}, sort_keys=True),
                json.dumps(after or {}, sort_keys=True),
                key,
                self.org,
            ),
        )

    def append_audit(self, **entry: Any) -> None:
        """Append one audit entry (see :class:`AuditRecord` for the fields; ``key`` optional)."""
        entry.setdefault("key", "")
        with self._transaction():
            self._append_audit(**entry)

    def iter_audit(self, *, since_seq: int = 0, batch: int = 1000) -> Iterator[AuditRecord]:
        """The audit log of every organization in order, streamed in batches."""
        last = since_seq
        while True:
            rows = self._execute(
                f"SELECT {_AUDIT_COLUMNS} FROM audit WHERE seq > ? ORDER BY seq LIMIT ?", (last, batch)
            )
            for r in rows:
                yield AuditRecord(
                    int(r[0]),
                    r[1],
                    r[2],
                    r[3],
                    r[4],
                    r[5],
                    r[6],
                    r[7],
                    r[8],
                    json.loads(r[9]),
                    json.loads(r[10]),
                    r[11],
                    r[12],
                )
            if len(rows) < batch:
                return
            last = int(rows[-1][0])

    def _wrap(self, exc: Exception, sql: str) -> StateStoreError:
        verb = sql.split(None, 1)[0] if sql.strip() else "?"
        return StateStoreError(f"{self.description}: {verb} failed: {exc}")

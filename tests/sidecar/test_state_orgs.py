"""Several organizations in one state store, and the migration from the single-organization
schema (version 1), on SQLite and on PostgreSQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from cvat_ext.errors import StateStoreError
from cvat_ext.sidecar.state import IssueRow, JobRow, open_store
from cvat_ext.sidecar.state.base import LEGACY_ORG, SCHEMA_VERSION

# the schema as the single-organization sidecar (schema version 1) created it
V1_DDL = """
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE cursors (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE jobs (id BIGINT PRIMARY KEY, task_id BIGINT NOT NULL, parent_job_id BIGINT, type TEXT NOT NULL,
    stage TEXT NOT NULL, state TEXT NOT NULL, assignee_id BIGINT, updated_date TEXT NOT NULL, project_id BIGINT);
CREATE INDEX jobs_parent ON jobs (parent_job_id);
CREATE INDEX jobs_task ON jobs (task_id);
CREATE TABLE pending (job_id BIGINT PRIMARY KEY, enqueued_at DOUBLE PRECISION NOT NULL, reason TEXT NOT NULL);
CREATE TABLE units (key TEXT PRIMARY KEY, signature TEXT NOT NULL, task_id BIGINT,
    updated_at DOUBLE PRECISION NOT NULL);
CREATE TABLE actions (key TEXT PRIMARY KEY, kind TEXT NOT NULL, job_id BIGINT, status TEXT NOT NULL,
    payload TEXT NOT NULL, result TEXT, owner TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL);
CREATE TABLE issues (fingerprint TEXT PRIMARY KEY, job_id BIGINT NOT NULL, issue_id BIGINT, frame BIGINT NOT NULL,
    status TEXT NOT NULL, message TEXT NOT NULL, generation BIGINT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL);
CREATE INDEX issues_job ON issues (job_id);
CREATE TABLE leases (key TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at DOUBLE PRECISION NOT NULL);
CREATE TABLE scores (unit_key TEXT PRIMARY KEY, task_id BIGINT NOT NULL, job_id BIGINT NOT NULL, kind TEXT NOT NULL,
    agreement DOUBLE PRECISION, rule_errors BIGINT NOT NULL, findings BIGINT NOT NULL, decision TEXT NOT NULL,
    detail TEXT NOT NULL, at DOUBLE PRECISION NOT NULL);
CREATE INDEX scores_task ON scores (task_id);
CREATE TABLE guides (task_id BIGINT PRIMARY KEY, content_hash TEXT NOT NULL, updated_at DOUBLE PRECISION NOT NULL);
CREATE TABLE audit (seq {serial}, at TEXT NOT NULL, replica TEXT NOT NULL, action TEXT NOT NULL, job_id BIGINT,
    task_id BIGINT, frame BIGINT, user_id BIGINT, reason TEXT NOT NULL, before TEXT NOT NULL, after TEXT NOT NULL,
    key TEXT NOT NULL);
INSERT INTO meta VALUES ('schema_version', '1')
"""
V1_ROWS: list[tuple[str, tuple[Any, ...]]] = [
    ("cursors", ("jobs.updated_date", "2026-11-23T00:00:00.000000Z")),
    ("jobs", (7, 3, None, "annotation", "annotation", "completed", 5, "2026-11-23T00:00:00.000000Z", 1)),
    ("pending", (7, 10.0, "changed")),
    ("units", ("job:7", "sig-7", 3, 10.0)),
    ("actions", ("issue:00aa", "issue", 7, "done", "{}", '{"issue_id": 41}', "r1", 10.0, 10.0)),
    ("issues", ("00aa", 7, 41, 2, "open", "car missing", 0, 10.0, 10.0)),
    ("leases", ("job:7", "r1", 1.0)),
    ("scores", ("job:7", 3, 7, "rules", None, 1, 1, "pass", "{}", 10.0)),
    ("guides", (3, "hash", 10.0)),
]
AUDIT_ROW = ("2026-11-23T00:00:00.000Z", "r1", "issue.open", 7, 3, 2, 5, "rule", "{}", "{}", "issue:00aa")


def write_v1(conn: Any, serial: str, marker: str) -> None:
    for statement in V1_DDL.replace("{serial}", serial).split(";\n"):
        conn.execute(statement)
    for table, row in V1_ROWS:
        conn.execute(f"INSERT INTO {table} VALUES ({', '.join(marker for _ in row)})", row)
    cols = "at, replica, action, job_id, task_id, frame, user_id, reason, before, after, key"
    conn.execute(f"INSERT INTO audit ({cols}) VALUES ({', '.join(marker for _ in AUDIT_ROW)})", AUDIT_ROW)


def make_v1_sqlite(path: Path) -> None:
    """Rewrite a current SQLite state file (one organization's rows) in the version 1 schema."""
    conn = sqlite3.connect(path, isolation_level=None)
    tables = ("cursors", "jobs", "pending", "units", "actions", "issues", "leases", "scores", "guides", "audit")
    saved: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {}
    for table in tables:
        cur = conn.execute(f"SELECT * FROM {table}")
        names = [d[0] for d in cur.description]
        keep = [i for i, n in enumerate(names) if n != "org" and not (table == "audit" and n == "seq")]
        saved[table] = ([names[i] for i in keep], [tuple(r[i] for i in keep) for r in cur.fetchall()])
    for table in (*tables, "meta"):
        conn.execute(f"DROP TABLE {table}")
    statements = V1_DDL.replace("{serial}", "INTEGER PRIMARY KEY AUTOINCREMENT").split(";\n")
    for statement in statements:
        conn.execute(statement)
    for table, (names, rows) in saved.items():
        for row in rows:
            conn.execute(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' for _ in row)})", row)
    conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state.db"
    return str(request.getfixturevalue("postgres_url"))


def _v1(backend: str) -> None:
    if backend.startswith("sqlite"):
        conn = sqlite3.connect(backend[len("sqlite:///") :], isolation_level=None)
        write_v1(conn, "INTEGER PRIMARY KEY AUTOINCREMENT", "?")
        conn.close()
        return
    import psycopg

    with psycopg.connect(backend, autocommit=True) as pg:
        write_v1(pg, "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "%s")


def test_same_ids_in_two_orgs_never_collide(backend: str) -> None:
    with open_store(backend) as root:
        a, b = root.scoped("a"), root.scoped("b")
        row = JobRow(7, 3, None, "annotation", "annotation", "completed", 5, "2026-11-23T00:00:00.000000Z")
        a.upsert_jobs([row])
        b.upsert_jobs([JobRow(7, 9, None, "annotation", "validation", "new", None, "2026-11-24T00:00:00.000000Z")])
        assert a.get_job(7) == row and b.get_job(7) is not None and b.get_job(7) != row
        a.enqueue([7], "changed")
        assert a.pending() == [7] and b.pending() == []
        assert a.try_lease("job:7", "r1", 30) and b.try_lease("job:7", "r2", 30)
        a.put_issue(IssueRow("00aa", 7, 41, 2, "open", "m"))
        assert b.get_issue("00aa") is None and a.get_issue("00aa") is not None
        a.set_cursor("jobs.updated_date", "x")
        assert b.get_cursor("jobs.updated_date") is None
        a.start_action("k", "issue", 7, {}, "r1")
        assert b.get_action("k") is None and a.get_action("k") is not None
        a.append_audit(replica="r1", action="issue.open", reason="r", job_id=7)
        b.append_audit(replica="r2", action="issue.open", reason="r", job_id=7)
        assert [e.org for e in root.iter_audit()] == ["a", "b"]


def test_version_1_store_is_migrated_and_adopted(backend: str) -> None:
    _v1(backend)
    with open_store(backend) as root:
        assert root.schema_version() == SCHEMA_VERSION
        # until adopted, the old rows belong to no configured organization
        assert root.scoped("qa").get_issue("00aa") is None
        assert root.scoped(LEGACY_ORG).get_issue("00aa") is not None
        assert root.adopt_legacy("qa") == len(V1_ROWS)
        assert root.adopt_legacy("qa") == 0  # idempotent
        qa = root.scoped("qa")
        assert qa.get_issue("00aa") == IssueRow("00aa", 7, 41, 2, "open", "car missing", 0)
        assert qa.pending() == [7] and qa.unit_signature("job:7") == "sig-7"
        assert qa.get_cursor("jobs.updated_date") == "2026-11-23T00:00:00.000000Z"
        job = qa.get_job(7)
        assert job is not None and job.assignee_id == 5
        assert qa.get_action("issue:00aa") is not None and qa.scores_of_task(3)[0].decision == "pass"
        assert qa.guide_state(3) == ("hash", 10.0)
        old = list(root.iter_audit())
        assert [(e.action, e.org, e.key) for e in old] == [("issue.open", "", "issue:00aa")]
        qa.append_audit(replica="r1", action="issue.resolve", reason="fixed", job_id=7)
        assert [e.org for e in root.iter_audit()] == ["", "qa"]
    # the audit log stays append-only after the migration
    with open_store(backend) as root, pytest.raises(StateStoreError, match="append-only"):
        root._execute("DELETE FROM audit")


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    with open_store(url) as root:
        root._execute("UPDATE meta SET value = '99' WHERE name = 'schema_version'")
    with pytest.raises(StateStoreError, match="schema version 99 is newer"):
        open_store(url)

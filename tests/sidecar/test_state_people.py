"""Pools keyed by CVAT user id (state schema 4): the migration from version 3 (pools keyed by
username), which keeps every row, and a kill -9 in the middle of it, which loses nothing. On
SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from cvat_ext.sidecar.state import Person, open_store
from cvat_ext.sidecar.state.base import SCHEMA_VERSION

REPO = Path(__file__).resolve().parents[2]

# annotator_models as a version 3 store created it
V3_MODELS_DDL = (
    "CREATE TABLE annotator_models (org TEXT NOT NULL DEFAULT '', scope TEXT NOT NULL, username TEXT NOT NULL, "
    "job_id BIGINT NOT NULL, seq BIGINT NOT NULL, prior TEXT, posterior TEXT NOT NULL, "
    "updated_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (org, scope, username, job_id))",
    "CREATE INDEX annotator_models_v2_scope ON annotator_models (org, scope)",
)
# (org, scope, username, job_id, seq, prior, posterior)
V3_MODELS = [
    ("qa", "project:1", "ann1", 10, 1, None, {"n": 1}),
    ("qa", "project:1", "ann1", 11, 2, {"n": 1}, {"n": 2}),
    ("qa", "task:5", "ann2", 20, 1, None, {"m": 1}),
    ("qa", "project:1", "carol", 10, 1, None, {"c": 1}),  # a name never seen with an id yet
    ("qa", "project:1", "dup", 10, 1, None, {"d": 1}),  # a name two ids had: no guess
    ("other", "project:1", "ann1", 30, 1, None, {"o": 1}),  # another organization's ann1
]
# (org, user_id, username): what the users table knew
V3_USERS = [("qa", 3, "ann1"), ("qa", 4, "ann2"), ("qa", 5, "dup"), ("qa", 6, "dup")]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state.db"
    return str(request.getfixturevalue("postgres_url"))


@contextmanager
def raw(backend: str) -> Iterator[Any]:
    """A plain autocommit connection and its parameter marker (no migration on open)."""
    if backend.startswith("sqlite"):
        conn = sqlite3.connect(backend[len("sqlite:///"):], isolation_level=None)
        try:
            yield conn, "?"
        finally:
            conn.close()
        return
    import psycopg

    with psycopg.connect(backend, autocommit=True) as pg:
        yield pg, "%s"


def make_v3(backend: str) -> None:
    """A store as version 3 left it: pools by username, users known by id."""
    open_store(backend).close()
    with raw(backend) as (conn, mark):
        for table in ("annotator_models", "annotator_models_by_name"):
            conn.execute(f"DROP TABLE {table}")
        for statement in V3_MODELS_DDL:
            conn.execute(statement)
        for org, scope, user, job, seq, prior, posterior in V3_MODELS:
            conn.execute(f"INSERT INTO annotator_models VALUES ({', '.join([mark] * 8)})",
                         (org, scope, user, job, seq, None if prior is None else json.dumps(prior),
                          json.dumps(posterior), 1.0))
        for row in V3_USERS:
            conn.execute(f"INSERT INTO users (org, user_id, username) VALUES ({mark}, {mark}, {mark})", row)
        conn.execute("UPDATE meta SET value = '3' WHERE name = 'schema_version'")


def stored_version(backend: str) -> int:
    with raw(backend) as (conn, _):
        return int(conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()[0])


def check_migrated(backend: str) -> None:
    """Every version 3 row is still there: under its user id where the name was known for one id,
    else by name until its first sighting with an id."""
    with open_store(backend) as root:
        assert root.schema_version() == SCHEMA_VERSION
        qa = root.scoped("qa")
        assert qa.pooled_models() == [("project:1", "ann1", 2, {"n": 2}), ("task:5", "ann2", 1, {"m": 1})]
        # ann1's second job starts again from what it first started from; a new job from the head
        assert qa.pooled_prior("project:1", Person(3, "ann1"), 11) == {"n": 1}
        assert qa.pooled_prior("project:1", Person(3, "ann1"), 12) == {"n": 2}
        # carol is first seen with an id now: her pool is hers from here on
        carol = Person(8, "carol")
        assert qa.pooled_prior("project:1", carol, 12) == {"c": 1}
        qa.fold_models("project:1", 12, [(carol, {"c": 1}, {"c": 2})])
        assert ("project:1", "carol", 2, {"c": 2}) in qa.pooled_models()
        # "dup" named two people: the first one seen with that name (and an id) takes the rows
        assert qa.pooled_prior("project:1", Person(6, "dup"), 12) == {"d": 1}
        assert qa.pooled_prior("project:1", Person(5, "dup"), 12) is None
        # the other organization's ann1 is not qa's
        assert root.scoped("other").pooled_prior("project:1", Person(3, "ann1"), 31) == {"o": 1}
        assert root._execute("SELECT COUNT(*) FROM annotator_models_by_name")[0][0] == 0


def test_version_3_pools_are_kept(backend: str) -> None:
    make_v3(backend)
    check_migrated(backend)


_MIGRATE_AND_DIE = textwrap.dedent("""
    import sys, time
    from cvat_ext.sidecar.state import base, open_store

    step = getattr(base.StateStore, sys.argv[2])

    def then_wait(self, *args):
        step(self, *args)
        print("reached", flush=True)  # tell the test where we are, then wait for the kill
        time.sleep(120)

    setattr(base.StateStore, sys.argv[2], then_wait)
    open_store(sys.argv[1])
""")


@pytest.mark.parametrize("step", ["_migrate_v3", "_adopt_known_names"])
def test_kill_9_mid_migration_loses_nothing(backend: str, step: str) -> None:
    make_v3(backend)
    child = subprocess.Popen([sys.executable, "-c", _MIGRATE_AND_DIE, backend, step], cwd=REPO,
                             env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        line = child.stdout.readline()  # blocks until the step is done (or the child ended)
        assert line.strip() == "reached", f"the migration never reached {step} (exit {child.poll()})"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert stored_version(backend) == 3  # nothing of the half-done migration was committed
    check_migrated(backend)

"""The state store contract, on SQLite and on PostgreSQL (a throwaway server)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cvat_ext.errors import ConfigError, StateStoreError
from cvat_ext.sidecar.state import IssueRow, JobRow, Person, StateStore, open_store
from cvat_ext.sidecar.state.base import SCHEMA_VERSION
from tests.sidecar.crash import Clock


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state.db"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(backend: str, clock: Clock) -> Iterator[StateStore]:
    with open_store(backend, clock=clock) as s:
        yield s


def test_lease_is_exclusive_until_expiry(store: StateStore, clock: Clock) -> None:
    assert store.try_lease("consensus:1", "a", 30)
    assert not store.try_lease("consensus:1", "b", 30)
    assert store.try_lease("consensus:1", "a", 30)  # renew
    clock.t += 31
    assert store.try_lease("consensus:1", "b", 30)  # expired: taken over
    assert not store.try_lease("consensus:1", "a", 30)
    store.release_lease("consensus:1", "a")  # not the holder: no effect
    assert not store.try_lease("consensus:1", "a", 30)
    store.release_lease("consensus:1", "b")
    assert store.try_lease("consensus:1", "a", 30)


def test_lease_race_has_one_winner(backend: str, clock: Clock) -> None:
    stores = [open_store(backend, clock=clock) for _ in range(4)]
    wins: list[str] = []
    barrier = threading.Barrier(len(stores))

    def grab(i: int) -> None:
        barrier.wait()
        for n in range(20):
            if stores[i].try_lease(f"unit:{n}", f"r{i}", 60):
                wins.append(f"unit:{n}")

    threads = [threading.Thread(target=grab, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.close()
    assert sorted(wins) == sorted(f"unit:{n}" for n in range(20))  # each unit won exactly once


def test_denials_count_in_a_row_per_unit_across_stores(backend: str, clock: Clock) -> None:
    """Every replica's refusals of a unit add up, a reopened store keeps them, clearing restarts."""
    with open_store(backend, clock=clock) as a, open_store(backend, clock=clock) as b:
        assert [a.count_denial("consensus:1"), b.count_denial("consensus:1")] == [1, 2]
        assert a.count_denial("job:7") == 1  # per unit
        assert a.scoped("other-org").count_denial("consensus:1") == 1  # per organization
    with open_store(backend, clock=clock) as again:
        assert again.count_denial("consensus:1") == 3
        again.clear_denials("consensus:1")
        assert again.count_denial("consensus:1") == 1
        assert again.count_denial("job:7") == 2


def test_cursor_only_moves_forward(store: StateStore) -> None:
    assert store.get_cursor("jobs") is None
    store.advance_cursor("jobs", "2026-11-01T10:00:00.000000Z")
    store.advance_cursor("jobs", "2026-11-01T09:00:00.000000Z")
    assert store.get_cursor("jobs") == "2026-11-01T10:00:00.000000Z"
    store.advance_cursor("jobs", "2026-11-02T00:00:00.000000Z")
    assert store.get_cursor("jobs") == "2026-11-02T00:00:00.000000Z"


def test_jobs_pending_and_load(store: StateStore) -> None:
    store.upsert_jobs(
        [
            JobRow(10, 1, None, "annotation", "annotation", "new", 7, "t1"),
            JobRow(11, 1, 10, "consensus_replica", "annotation", "completed", 8, "t1"),
            JobRow(12, 1, 10, "consensus_replica", "annotation", "new", 7, "t1"),
        ]
    )
    assert [r.id for r in store.replicas_of(10)] == [11, 12]
    assert store.assigned_counts([7, 8, 9]) == {7: 2, 8: 0, 9: 0}  # completed jobs are no load
    store.enqueue([12, 11], "webhook update:job")
    store.enqueue([11], "changed")
    assert sorted(store.pending()) == [11, 12]
    store.dequeue([11])
    assert store.pending() == [12]


def test_actions_and_audit(store: StateStore) -> None:
    store.start_action("issue:abc", "issue", 5, {"frame": 3}, "r1")
    assert [a.key for a in store.actions(status="started")] == ["issue:abc"]
    store.finish_action(
        "issue:abc",
        {"issue_id": 9},
        {"replica": "r1", "action": "issue.open", "reason": "x", "job_id": 5, "frame": 3, "after": {"issue_id": 9}},
    )
    row = store.get_action("issue:abc")
    assert row is not None and row.status == "done" and row.result == {"issue_id": 9}
    audit = list(store.iter_audit())
    assert [(a.action, a.job_id, a.frame, a.after) for a in audit] == [("issue.open", 5, 3, {"issue_id": 9})]
    store.put_issue(IssueRow("abc", 5, 9, 3, "open", "m"))
    assert store.issues_of_job(5) == [IssueRow("abc", 5, 9, 3, "open", "m")]


@pytest.mark.parametrize("statement", ["UPDATE audit SET reason = 'forged'", "DELETE FROM audit"])
def test_audit_log_is_append_only(store: StateStore, statement: str) -> None:
    store.append_audit(replica="r1", action="job.reassign", reason="agreement 0.41 < 0.70", job_id=4)
    with pytest.raises(StateStoreError, match="append-only"):
        store._execute(statement)
    assert [a.reason for a in store.iter_audit()] == ["agreement 0.41 < 0.70"]


def test_audit_iterates_in_batches(store: StateStore) -> None:
    for i in range(25):
        store.append_audit(replica="r", action="a", reason=str(i))
    assert [a.reason for a in store.iter_audit(batch=7)] == [str(i) for i in range(25)]
    assert [a.seq for a in store.iter_audit(since_seq=20)] == [21, 22, 23, 24, 25]


@pytest.mark.parametrize(
    ("url", "message"),
    [("mysql://x", "expected sqlite"), ("sqlite://", "needs a file path")],
)
def test_bad_store_url(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_store(url)


@pytest.mark.postgres
def test_postgres_unreachable_names_host_not_password() -> None:
    with pytest.raises(StateStoreError) as err:
        open_store("postgresql://bob:hunter2@127.0.0.1:1/db")
    assert "hunter2" not in str(err.value) and "127.0.0.1:1/db" in str(err.value)


ANN1, ANN2 = Person(3, "ann1"), Person(4, "ann2")


def test_annotator_models_fold_once_per_job(store: StateStore) -> None:
    """Pooling: a new job starts from the latest posterior; a job scored again starts from the prior
    it was first fitted from, and keeps its place (issue 11, people not jobs)."""
    org = store.scoped("org")
    assert org.pooled_prior("project:1", ANN1, 10) is None
    org.fold_models("project:1", 10, [(ANN1, None, {"n": 1}), (ANN2, None, {"n": 1, "who": "ann2"})])
    assert org.pooled_prior("project:1", ANN1, 11) == {"n": 1}
    org.fold_models("project:1", 11, [(ANN1, {"n": 1}, {"n": 2})])
    assert org.pooled_prior("project:1", ANN1, 10) is None  # job 10 again: its first prior
    assert org.pooled_prior("project:1", ANN1, 11) == {"n": 1}
    org.fold_models("project:1", 10, [(ANN1, None, {"n": 1, "again": True})])  # job 10 re-scored
    assert org.pooled_prior("project:1", ANN1, 12) == {"n": 2}  # the head is still job 11
    assert org.pooled_models() == [("project:1", "ann1", 2, {"n": 2}),
                                   ("project:1", "ann2", 1, {"n": 1, "who": "ann2"})]
    assert org.pooled_models("task:3") == []
    # scopes and organizations are apart
    assert org.pooled_prior("project:2", ANN1, 12) is None
    assert store.scoped("other").pooled_prior("project:1", ANN1, 12) is None


def test_a_renamed_person_keeps_their_pool(store: StateStore) -> None:
    org = store.scoped("org")
    org.fold_models("project:1", 10, [(ANN1, None, {"n": 1})])
    renamed = Person(ANN1.user_id, "ann1-new")
    assert org.pooled_prior("project:1", renamed, 11) == {"n": 1}
    org.fold_models("project:1", 11, [(renamed, {"n": 1}, {"n": 2})])
    # one pool, shown under the name last seen; a new person with the old name starts afresh
    assert org.pooled_models() == [("project:1", "ann1-new", 2, {"n": 2})]
    assert org.pooled_prior("project:1", Person(9, "ann1"), 12) is None


def test_job_rows_carry_the_assignee_username(store: StateStore) -> None:
    store.upsert_jobs([JobRow(5, 1, 4, "consensus_replica", "annotation", "new", 3, "2033-01-01T00:00:00Z", 7, "ann1"),
                       JobRow(6, 1, 4, "consensus_replica", "annotation", "new", None, "2033-01-01T00:00:00Z", 7)])
    assert [(r.id, r.assignee_username) for r in store.replicas_of(4)] == [(5, "ann1"), (6, None)]
    # renamed in CVAT: the next sighting of any of their jobs renames them everywhere
    store.upsert_jobs([JobRow(7, 1, None, "annotation", "annotation", "new", 3, "2033-01-01T00:00:00Z", 7, "ann1b")])
    assert store.get_job(5).assignee_username == "ann1b"  # type: ignore[union-attr]


def test_a_version_2_store_gains_the_people_tables(backend: str, clock: Clock) -> None:
    with open_store(backend, clock=clock) as s:
        s.upsert_jobs([JobRow(5, 1, 4, "consensus_replica", "annotation", "new", 3, "2033-01-01T00:00:00Z", 7)])
        for table in ("users", "annotator_models", "annotator_models_by_name"):
            s._execute(f"DROP TABLE {table}")
        s._execute("UPDATE meta SET value = '2' WHERE name = 'schema_version'")
    with open_store(backend, clock=clock) as s:
        assert s.schema_version() == SCHEMA_VERSION
        assert s.get_job(5) == JobRow(5, 1, 4, "consensus_replica", "annotation", "new", 3, "2033-01-01T00:00:00Z", 7)
        s.fold_models("task:1", 4, [(ANN1, None, {"n": 1})])
        assert s.pooled_prior("task:1", ANN1, 8) == {"n": 1}


def test_a_version_4_store_gains_the_denials_table(backend: str, clock: Clock) -> None:
    with open_store(backend, clock=clock) as s:
        s.upsert_jobs([JobRow(5, 1, 4, "consensus_replica", "annotation", "new", 3, "2033-01-01T00:00:00Z", 7)])
        s._execute("DROP TABLE denials")
        s._execute("UPDATE meta SET value = '4' WHERE name = 'schema_version'")
    with open_store(backend, clock=clock) as s:
        assert s.schema_version() == SCHEMA_VERSION == 5
        assert s.get_job(5) is not None and s.count_denial("job:5") == 1

"""The cycle against an in-memory CVAT: decisions, idempotence, crash/restart at every action
boundary, failures that stay queued, issues resolved after a fix."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from cvat_ext.annotations.model import JobAnnotations
from cvat_ext.sidecar.config import SidecarSettings, load_settings
from cvat_ext.sidecar.service import SidecarService
from cvat_ext.sidecar.state import open_store
from tests.sidecar.crash import Clock, Crash, die
from tests.sidecar.fakes import BoxCountRules, FakeCvat, ScriptedConsensus, box

__all__ = ["Clock"]  # test_units imports it from here

SLOPPY = 103


def world() -> FakeCvat:
    cvat = FakeCvat()
    for uid, name, role in [
        (1, "qabot", "maintainer"),
        (11, "ann1", "worker"),
        (12, "ann2", "worker"),
        (13, "ann3", "worker"),
        (21, "rev1", "supervisor"),
        (22, "rev2", "supervisor"),
    ]:
        cvat.add_user(uid, name, role)
    cvat.add_job(100, 5, replicas=3, assignee=None)
    for jid, uid in [(101, 11), (102, 12), (103, 13)]:
        cvat.add_job(jid, 5, type="consensus_replica", parent=100, state="completed", assignee=uid)
    cvat.add_job(200, 6, state="completed", assignee=12)
    cvat.annotations[200] = JobAnnotations(shapes=tuple(box(f, 20.0 * f, w=4) for f in range(6)))
    return cvat


def settings(tmp_path: Path, **extra: object) -> SidecarSettings:
    return load_settings(
        None,
        overrides={
            "cvat": {"url": "http://cvat.invalid:8080", "access_token": "tok-SECRET-123", "org": "qa"},
            "state": {"url": f"sqlite:///{tmp_path}/state.db"},
            "reviewers": {"roles": ["supervisor"]},
            "guide": {"min_interval_s": 0},
            **extra,
        },
    )


def agreement(job_id: int) -> float:
    return 0.2 if job_id == SLOPPY else 0.9


def service(
    cvat: FakeCvat,
    cfg: SidecarSettings,
    clock: Clock,
    *,
    hook=None,
    owner: str = "r1",
    consensus: ScriptedConsensus | None = None,
) -> SidecarService:
    kwargs = {"hook": hook} if hook is not None else {}
    return SidecarService(
        cfg,
        client=cvat,
        rules=BoxCountRules(),
        consensus=consensus or ScriptedConsensus(agreement),
        clock=clock,
        sleep=clock.sleep,
        owner=owner,
        **kwargs,
    )


def outcome(cvat: FakeCvat) -> dict[str, object]:
    """What a manager would see in CVAT (ids excluded)."""
    return {
        "issues": sorted((i.job_id, i.frame, i.resolved, i.assignee_id) for i in cvat.issues.values()),
        "jobs": {j.id: (j.assignee_id, j.stage, j.state) for j in cvat.jobs.values()},
        "guides": len(cvat.guides),
    }


def test_first_cycle_publishes_and_routes(tmp_path: Path) -> None:
    cvat, clock = world(), Clock()
    with service(cvat, settings(tmp_path), clock) as svc:
        report = svc.run_once()
    issues = sorted((i.job_id, i.frame, i.assignee_id) for i in cvat.issues.values())
    # the sloppy replica gets issues on its bad frames, assigned to its annotator; job 200 one per tiny box
    assert [i for i in issues if i[0] == SLOPPY] == [(SLOPPY, 2, 13), (SLOPPY, 5, 13)]
    assert [i for i in issues if i[0] == 200] == [(200, f, 12) for f in range(6)]
    assert not [i for i in issues if i[0] in (101, 102)]
    # agreement 0.67 < 0.7: parent to the least-loaded reviewer; then job 200 (6 errors > 5) to the other
    assert cvat.jobs[100].assignee_id == 21 and (cvat.jobs[100].stage, cvat.jobs[100].state) == ("validation", "new")
    assert cvat.jobs[200].assignee_id == 22 and cvat.jobs[200].stage == "validation"
    assert report.issues_opened == 8 and report.jobs_scored == 4
    # every task got a guide summary with a PNG chart
    assert len(cvat.guides) == 2 and cvat.assets and cvat.assets[0][:8] == b"\x89PNG\r\n\x1a\n"
    guide = cvat.guides[cvat.task_guides[5]].markdown
    assert "| 100 | 0.67 |" in guide and "/api/assets/" in guide
    # each issue message carries its fingerprint
    assert all("[cvat-ext fp=" in c[0].message for c in cvat.comments.values())


def test_second_cycle_changes_nothing(tmp_path: Path) -> None:
    cvat, clock = world(), Clock()
    cfg = settings(tmp_path)
    with service(cvat, cfg, clock) as svc:
        svc.run_once()
        before = outcome(cvat)
        calls = Counter(cvat.calls)
        clock.t += 60
        report = svc.run_once()
    assert outcome(cvat) == before
    new_calls = Counter(cvat.calls) - calls
    assert new_calls == Counter({"GET /api/jobs": 1}), new_calls
    assert report.changed_jobs == 0 and report.issues_opened == 0


def _kinds_and_boundaries() -> list[str]:
    return [f"{kind}:{step}" for kind in ("issue", "job", "guide") for step in ("started", "called", "done")]


@pytest.mark.parametrize("boundary", _kinds_and_boundaries())
@pytest.mark.parametrize("occurrence", [1, 2])
def test_kill_at_boundary_then_restart(tmp_path: Path, boundary: str, occurrence: int) -> None:
    reference, ref_clock = world(), Clock()
    ref_dir = tmp_path / "ref"
    with service(reference, settings(ref_dir), ref_clock) as svc:
        svc.run_once()
    expected = outcome(reference)

    cvat, clock = world(), Clock()
    cfg = settings(tmp_path)
    seen: Counter[str] = Counter()

    def hook(name: str) -> None:
        seen[name] += 1
        if name == boundary and seen[name] == occurrence:
            raise Crash(name)

    die(service(cvat, cfg, clock, hook=hook, owner="dead"), clock, cfg.state.lease_ttl_s)
    with service(cvat, cfg, clock, owner="alive") as svc2:
        svc2.run_once()
        clock.t += 60
        svc2.run_once()
    assert outcome(cvat) == expected
    with open_store(cfg.state.url.get_secret_value()) as root:
        store = root.scoped("qa")
        assert store.actions(status="started") == []
        audit = [a for a in store.iter_audit() if a.action == "issue.open"]
        assert len(audit) == len({a.after["issue_id"] for a in audit}) == len(cvat.issues)
        reassign = [a for a in store.iter_audit() if a.action == "job.reassign"]
        assert sorted(a.job_id for a in reassign) == [100, 200]


def test_cvat_error_leaves_unit_queued_then_done(tmp_path: Path) -> None:
    cvat, clock = world(), Clock()
    cvat.fail["GET /api/jobs/{id}/annotations"] = 1
    with service(cvat, settings(tmp_path), clock) as svc:
        first = svc.run_once()
        assert first.failed_units == 1 and svc.store.pending()
        clock.t += 30
        second = svc.run_once()
    assert second.failed_units == 0 and second.scored_units == 1
    clean = _clean_outcome(tmp_path / "clean")
    got = outcome(cvat)
    assert got["issues"] == clean["issues"]
    # job 200 went first this time, so each reviewer got the other job (least loaded)
    assert {got["jobs"][100][0], got["jobs"][200][0]} == {21, 22}  # type: ignore[index]


def _clean_outcome(path: Path) -> dict[str, object]:
    cvat, clock = world(), Clock()
    with service(cvat, settings(path), clock) as svc:
        svc.run_once()
    return outcome(cvat)


def test_fixed_replica_gets_its_issues_resolved(tmp_path: Path) -> None:
    cvat, clock = world(), Clock()
    fixed = {"done": False}

    def agree(job_id: int) -> float:
        return 0.9 if fixed["done"] or job_id != SLOPPY else 0.2

    with service(cvat, settings(tmp_path), clock, consensus=ScriptedConsensus(agree)) as svc:
        svc.run_once()
        assert sum(not i.resolved for i in cvat.issues.values() if i.job_id == SLOPPY) == 2
        fixed["done"] = True
        cvat.edit_job(SLOPPY, state="completed")  # the annotator saved a fix
        clock.t += 30
        report = svc.run_once()
        assert report.issues_resolved == 2
        assert all(i.resolved for i in cvat.issues.values() if i.job_id == SLOPPY)
        ids = sorted(cvat.issues)
        # the annotator breaks it again: the same issues reopen, none is added
        fixed["done"] = False
        cvat.edit_job(SLOPPY, state="completed")
        clock.t += 30
        again = svc.run_once()
        assert again.issues_opened == 2 and sorted(cvat.issues) == ids
        assert not any(i.resolved for i in cvat.issues.values() if i.job_id == SLOPPY)
        # and fixed once more: resolved again (new action keys, not the first resolve's)
        fixed["done"] = True
        cvat.edit_job(SLOPPY, state="completed")
        clock.t += 30
        assert svc.run_once().issues_resolved == 2
    assert all(i.resolved for i in cvat.issues.values() if i.job_id == SLOPPY)


def test_no_reviewer_outside_the_annotators(tmp_path: Path) -> None:
    cvat, clock = world(), Clock()
    cfg = settings(tmp_path, reviewers={"usernames": ["ann3"], "roles": []})
    with service(cvat, cfg, clock) as svc:
        report = svc.run_once()
    # ann3 annotated a replica of parent 100: never its reviewer
    assert cvat.jobs[100].assignee_id is None
    assert "no eligible reviewer" in report.decisions[100]
    assert cvat.jobs[200].assignee_id == 13


def test_job_deleted_mid_cycle_is_dropped_not_retried_forever(tmp_path: Path) -> None:
    from cvat_ext.errors import CvatNotFoundError

    cvat, clock = world(), Clock()
    real, real_bytes = cvat.get_annotations, cvat.get_annotations_bytes

    def missing() -> CvatNotFoundError:
        return CvatNotFoundError("job 200: GET /api/jobs/200/annotations -> 404 Not Found", status=404)

    def gone(job_id: int) -> JobAnnotations:
        if job_id == 200:
            raise missing()
        return real(job_id)

    def gone_bytes(job_id: int) -> bytes:
        if job_id == 200:
            raise missing()
        return real_bytes(job_id)

    cvat.get_annotations = gone  # type: ignore[method-assign]
    cvat.get_annotations_bytes = gone_bytes  # type: ignore[method-assign]
    with service(cvat, settings(tmp_path), clock) as svc:
        report = svc.run_once()
        assert report.failed_units == 0 and svc.store.pending() == []
        assert [a.action for a in svc.store.iter_audit() if a.job_id == 200] == ["unit.gone"]


def test_plain_job_is_checked_only_when_its_annotator_finished(tmp_path: Path) -> None:
    cvat, clock = world(), Clock()
    cvat.edit_job(200, state="in progress")
    with service(cvat, settings(tmp_path), clock) as svc:
        svc.run_once()
        assert not [i for i in cvat.issues.values() if i.job_id == 200]
        cvat.edit_job(200, state="completed")
        clock.t += 30
        svc.run_once()
        assert len([i for i in cvat.issues.values() if i.job_id == 200]) == 6
        # a reviewer finishing the review does not trigger another check
        cvat.edit_job(200, stage="validation", state="completed")
        calls = cvat.calls["GET /api/jobs/{id}/annotations"]
        clock.t += 30
        assert svc.run_once().scored_units == 0
        assert cvat.calls["GET /api/jobs/{id}/annotations"] == calls


def test_a_holder_whose_lease_expired_stops_before_its_next_write(tmp_path: Path) -> None:
    cvat, clock = world(), Clock()
    cfg = settings(tmp_path)
    other = open_store(cfg.state.url.get_secret_value(), clock=clock).scoped("qa")
    stalled = {"done": False}

    def hook(name: str) -> None:
        # r1 stalls after its first issue for longer than the lease; r2 takes the unit over
        if name == "issue:done" and not stalled["done"]:
            stalled["done"] = True
            clock.t += cfg.state.lease_ttl_s + 1
            assert other.try_lease("consensus:100", "r2", cfg.state.lease_ttl_s)

    with service(cvat, cfg, clock, hook=hook) as svc:
        report = svc.run_once()
        assert any("taken over by another replica" in e for e in report.errors)
        assert len([i for i in cvat.issues.values() if i.job_id == SLOPPY]) == 1  # stopped before the second
        assert 103 in svc.store.pending()  # left queued: nothing lost
        other.release_lease("consensus:100", "r2")
        clock.t += 30
        svc.run_once()
    other.close()
    assert len([i for i in cvat.issues.values() if i.job_id == SLOPPY]) == 2


def test_health_turns_bad_while_cvat_fails_and_recovers(tmp_path: Path) -> None:
    cvat, clock = world(), Clock()
    cvat.fail["GET /api/jobs"] = 1
    with service(cvat, settings(tmp_path), clock) as svc:
        report = svc.run_once()
        assert report.aborted and svc.health() == (False, svc.health()[1])
        assert "503" in str(svc.health()[1]["last_error"])
        clock.t += 30
        assert svc.run_once().healthy and svc.health()[0]


@pytest.mark.parametrize("boundary", ["resolve:started", "resolve:called", "reopen:started", "reopen:called"])
def test_kill_while_resolving_or_reopening(tmp_path: Path, boundary: str) -> None:
    cvat, clock = world(), Clock()
    cfg = settings(tmp_path)
    state = {"fixed": False, "armed": False}

    def agree(job_id: int) -> float:
        return 0.9 if state["fixed"] or job_id != SLOPPY else 0.2

    def hook(name: str) -> None:
        if state["armed"] and name == boundary:
            state["armed"] = False
            raise Crash(name)

    consensus = ScriptedConsensus(agree)
    with service(cvat, cfg, clock, consensus=consensus, hook=hook) as svc:
        svc.run_once()  # issues opened
        for fixed in (True, False):  # fix (resolve), then break again (reopen)
            state["fixed"] = fixed
            state["armed"] = boundary.startswith("resolve" if fixed else "reopen")
            cvat.edit_job(SLOPPY, state="completed")
            clock.t += 30
            try:
                svc.run_once()
            except Crash:
                clock.t += cfg.state.lease_ttl_s + 1  # the restarted process
                svc.run_once()
            sloppy_issues = [i for i in cvat.issues.values() if i.job_id == SLOPPY]
            assert len(sloppy_issues) == 2
            assert all(i.resolved == fixed for i in sloppy_issues)
        assert svc.store.actions(status="started") == []
        flips = Counter(a.action for a in svc.store.iter_audit() if a.action in ("issue.resolve", "issue.reopen"))
    assert flips == Counter({"issue.resolve": 2, "issue.reopen": 2})


@pytest.mark.parametrize(("job_id", "body", "message"), [
    (200, b'{"shapes": [{"type": "rectangle", "frame": 0, "label_id": 1, "points": [1, 2]}]}', "has 2 numbers"),
    (200, b'{"shapes": [1,}', "invalid JSON"),
    (102, b'{"shapes": [1,}', "invalid JSON"),
    (102, b'{"shapes": [{"type": "rectangle", "frame": 0, "label_id": 1, "points": [1, 2]}]}', "has 2 numbers"),
])  # fmt: skip
def test_bad_annotations_from_cvat_skip_the_unit_naming_the_job(
    tmp_path: Path, job_id: int, body: bytes, message: str
) -> None:
    """A plain job's body (read as objects) and a replica's (read as columns) fail with one error
    naming the job and the object; the unit is dropped, not retried forever."""
    cvat, clock = world(), Clock()
    real = cvat.get_annotations_bytes
    cvat.get_annotations_bytes = lambda j: body if j == job_id else real(j)  # type: ignore[method-assign]
    with service(cvat, settings(tmp_path), clock) as svc:
        report = svc.run_once()
        unit = "consensus:100" if job_id == 102 else f"job:{job_id}"
        (error,) = [e for e in report.errors if e.startswith(f"{unit}: ")]
        assert error.startswith(f"{unit}: job {job_id}") and message in error
        assert [a.action for a in svc.store.iter_audit() if a.action == "unit.error"] == ["unit.error"]
        assert svc.store.pending() == []

"""Active-learning rounds end to end: the real cvat-sdk against the CVAT stand-in, a detector over HTTP.

The pool holds three scenes of near-duplicate frames; the test detector reports, per frame, the
confidence written into the frame (``pool.py``), so the most uncertain frames are known.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image

from cvat_ext.active_learning.predictors import FunctionPredictor, PredictorError, TaskAnnotationsPredictor
from cvat_ext.active_learning.round import (
    RoundError,
    RoundParams,
    list_rounds,
    round_task_name,
    run_round,
)
from cvat_ext.cvat import CvatClient
from cvat_ext.sidecar.state import StateStore, open_store
from tests.active_learning.detector_server import detector_function, url_of
from tests.active_learning.pool import pool_images
from tests.conftest import OrgWorld
from tests.cvat_standin import CvatStandIn

# scene 0: uncertain (0.45-0.55), scene 1: fairly sure negatives (0.1-0.2), scene 2: sure (0.95)
SCENES = [[0.5, 0.52, 0.48, 0.55, 0.45, 0.51], [0.1, 0.2, 0.15, 0.12, 0.18, 0.3], [0.95] * 6]


def _now() -> str:
    return datetime.now(UTC).isoformat()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    root = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    yield root.scoped("qa-eval")
    root.close()


@pytest.fixture
def client(cvat_standin: CvatStandIn, cvat_org_world: OrgWorld) -> Iterator[CvatClient]:
    with CvatClient(cvat_standin.url, access_token=cvat_org_world.bot_token, org=cvat_org_world.org_slug) as c:
        yield c


@pytest.fixture
def pool_task(client: CvatClient, cvat_org_world: OrgWorld) -> int:
    return client.create_task_from_images("pool", project_id=cvat_org_world.project_id,
                                          images=pool_images(SCENES)).id


def cvat_standin_task_without_data(standin: CvatStandIn, world: OrgWorld) -> int:
    """A task created over HTTP whose images were never uploaded (``POST /api/tasks`` only)."""
    import requests

    resp = requests.post(f"{standin.url}/api/tasks", json={"name": "empty", "project_id": world.project_id},
                         headers={"Authorization": f"Bearer {world.bot_token}", "X-Organization": world.org_slug},
                         timeout=10)
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


def _predictor(server: object, world: OrgWorld, **kw: object) -> FunctionPredictor:
    return FunctionPredictor(url_of(server), label_ids={"car": world.label_ids["car"]}, **kw)  # type: ignore[arg-type]


def _frame_bytes(client: CvatClient, task_id: int, frame: int) -> bytes:
    return client.get_task_frame(task_id, frame)


def test_round_puts_the_picked_frames_with_prelabels_into_a_new_task(
        client: CvatClient, store: StateStore, pool_task: int, cvat_org_world: OrgWorld,
        cvat_standin: CvatStandIn) -> None:
    w = cvat_org_world
    params = RoundParams(project_id=w.project_id, pool_task_id=pool_task, batch=4, segment_size=2,
                         assignee_ids=(w.user_ids["ann1"], w.user_ids["ann2"]))
    with detector_function() as server:
        before = client.calls["GET /api/tasks/{id}/data"]
        rec = run_round(client, store, params, _predictor(server, w), now_iso=_now)
        assert server.calls == len(pool_images(SCENES))  # every pool frame asked once, none twice
        # and read from CVAT once: the model, the features and the upload share one cache
        assert client.calls["GET /api/tasks/{id}/data"] - before == len(pool_images(SCENES))
    assert rec.status == "done" and rec.number == 1 and len(rec.picks) == 4
    assert rec.picks[0].frame in range(6)  # the most uncertain scene comes first
    assert rec.picks[0].signals["uncertainty"] > 0.9
    assert len({p.frame // 6 for p in rec.picks}) >= 2  # diversity: not four near-duplicates
    (task,) = client.find_tasks(project_id=w.project_id, name=round_task_name(1, pool_task))
    assert task.id == rec.task_id and task.size == 4
    for new_idx, pick in enumerate(rec.picks):  # rank order: the most informative first
        got = Image.open(io.BytesIO(client.get_task_frame(task.id, new_idx)))
        want = Image.open(io.BytesIO(_frame_bytes(client, pool_task, pick.frame)))
        assert got.tobytes() == want.tobytes()
    jobs = sorted(client.list_jobs(task_id=task.id), key=lambda j: j.id)
    assert [j.id for j in jobs] == list(rec.job_ids) and len(jobs) == 2
    assert [j.assignee_id for j in jobs] == [w.user_ids["ann1"], w.user_ids["ann2"]]
    shapes = [s for j in jobs for s in cvat_standin.get_annotations(j.id)["shapes"]]
    assert len(shapes) == 4 == rec.prelabels
    assert all(s["label_id"] == w.label_ids["car"] and s["source"] == "auto" for s in shapes)
    by_frame = {s["frame"]: s for s in shapes}
    for new_idx, pick in enumerate(rec.picks):
        conf = SCENES[pick.frame // 6][pick.frame % 6]
        assert by_frame[new_idx]["score"] == pytest.approx(conf, abs=0.003)
    guide = client.get_guide(client.get_task(task.id).guide_id)  # type: ignore[arg-type]
    assert "## Active-learning round 1 (cvat-ext)" in guide.markdown
    for new_idx, pick in enumerate(rec.picks):
        assert f"| {new_idx} | {pick.frame} | {pick.name} | {pick.score:.3f} | {pick.why} |" in guide.markdown
    (stored,) = list_rounds(store, project_id=w.project_id)
    assert stored.frames == rec.frames and stored.status == "done" and stored.task_id == task.id
    audit = [a for a in store.iter_audit() if a.action == "al_round"]
    assert len(audit) == 1 and audit[0].task_id == task.id


def test_the_next_round_excludes_frames_already_sent(client: CvatClient, store: StateStore, pool_task: int,
                                                     cvat_org_world: OrgWorld) -> None:
    w = cvat_org_world
    params = RoundParams(project_id=w.project_id, pool_task_id=pool_task, batch=5, diversity=0.0)
    with detector_function() as server:
        first = run_round(client, store, params, _predictor(server, w), now_iso=_now)
        second = run_round(client, store, params, _predictor(server, w), now_iso=_now)
        third = run_round(client, store, RoundParams(project_id=w.project_id, pool_task_id=pool_task, batch=50),
                          _predictor(server, w), now_iso=_now)
        with pytest.raises(RoundError, match="exhausted"):
            run_round(client, store, params, _predictor(server, w), now_iso=_now)
    assert (first.number, second.number, third.number) == (1, 2, 3)
    sent = [*first.frames, *second.frames, *third.frames]
    assert len(sent) == len(set(sent)) == 18
    # diversity 0: by uncertainty alone; scene 0 (around 0.5) is sent before scene 1 and scene 2
    assert set(first.frames) == {0, 1, 2, 3, 5}
    names = {client.get_task(r.task_id).name for r in (first, second, third) if r.task_id is not None}
    assert names == {round_task_name(n, pool_task) for n in (1, 2, 3)}


@pytest.mark.parametrize("crash_in", ["_upload_images", "put_annotations", "update_job"])
def test_a_crash_mid_round_is_resumed_without_a_second_task(
        client: CvatClient, store: StateStore, pool_task: int, cvat_org_world: OrgWorld,
        monkeypatch: pytest.MonkeyPatch, crash_in: str) -> None:
    w = cvat_org_world
    params = RoundParams(project_id=w.project_id, pool_task_id=pool_task, batch=3,
                         assignee_ids=(w.user_ids["ann3"],))
    original = getattr(type(client), crash_in)

    def crash(*args: object, **kwargs: object) -> object:
        raise KeyboardInterrupt("killed")

    with detector_function() as server:
        monkeypatch.setattr(type(client), crash_in, crash)
        with pytest.raises(KeyboardInterrupt):
            run_round(client, store, params, _predictor(server, w), now_iso=_now)
        (planned,) = list_rounds(store, project_id=w.project_id)
        assert planned.status == "started"
        monkeypatch.setattr(type(client), crash_in, original)
        calls_before = server.calls
        rec = run_round(client, store, params, _predictor(server, w), now_iso=_now)
        assert server.calls == calls_before  # the resumed round uses its saved plan and pre-labels
    assert rec.number == 1 and rec.frames == planned.frames and rec.status == "done"
    tasks = client.find_tasks(project_id=w.project_id, name=round_task_name(1, pool_task))
    assert len(tasks) == 1 and tasks[0].size == 3
    assert rec.prelabels == 3
    assert all(j.assignee_id == w.user_ids["ann3"] for j in client.list_jobs(task_id=tasks[0].id))


def test_a_function_that_is_down_stops_the_round_before_anything_is_created(
        client: CvatClient, store: StateStore, pool_task: int, cvat_org_world: OrgWorld) -> None:
    w = cvat_org_world
    with detector_function() as server:
        url = url_of(server)
    predictor = FunctionPredictor(url, label_ids={"car": w.label_ids["car"]}, timeout_s=2)
    params = RoundParams(project_id=w.project_id, pool_task_id=pool_task, batch=2)
    with pytest.raises(PredictorError, match="cannot connect to function"):
        run_round(client, store, params, predictor, now_iso=_now)
    assert list_rounds(store, project_id=w.project_id) == []
    assert [t.id for t in client.find_tasks(project_id=w.project_id, name=round_task_name(1, pool_task))] == []


def test_bad_pools_get_one_clear_error(client: CvatClient, store: StateStore, cvat_org_world: OrgWorld,
                                       cvat_standin: CvatStandIn) -> None:
    w = cvat_org_world
    empty = cvat_standin_task_without_data(cvat_standin, w)
    with detector_function() as server:
        with pytest.raises(RoundError, match=f"pool task {empty} has no images"):
            run_round(client, store, RoundParams(project_id=w.project_id, pool_task_id=empty, batch=2),
                      _predictor(server, w), now_iso=_now)
        other = cvat_standin.add_project("other", org="qa-eval", labels=[{"name": "car", "type": "rectangle"}])
        with pytest.raises(RoundError, match=f"not project {other}"):
            run_round(client, store, RoundParams(project_id=other, pool_task_id=w.task_id, batch=2),
                      _predictor(server, w), now_iso=_now)
    assert list_rounds(store, project_id=w.project_id) == []


def test_gt_mode_creates_the_pool_tasks_ground_truth_job(client: CvatClient, store: StateStore, pool_task: int,
                                                         cvat_org_world: OrgWorld) -> None:
    w = cvat_org_world
    params = RoundParams(project_id=w.project_id, pool_task_id=pool_task, batch=3, mode="gt")
    with detector_function() as server:
        rec = run_round(client, store, params, _predictor(server, w), now_iso=_now)
    (gt,) = client.list_jobs(task_id=pool_task, type="ground_truth")
    markdown = client.get_guide(client.get_task(pool_task).guide_id).markdown  # type: ignore[arg-type]
    assert "ground-truth job of pool task" in markdown and f"| {rec.picks[0].frame} |" in markdown
    assert rec.job_ids == (gt.id,) and rec.task_id == pool_task
    assert client.get_job_meta(gt.id).included_frames == tuple(sorted(rec.frames))


def test_scores_already_in_the_pool_task_can_drive_a_round(client: CvatClient, store: StateStore, pool_task: int,
                                                           cvat_org_world: OrgWorld,
                                                           cvat_standin: CvatStandIn) -> None:
    """``TaskAnnotationsPredictor``: scored shapes left by cvat-cli auto-annotate with our sdk functions."""
    w = cvat_org_world
    (job,) = client.list_jobs(task_id=pool_task)
    scores = {f: SCENES[f // 6][f % 6] for f in range(18)}
    cvat_standin.set_annotations(job.id, {"version": 0, "tags": [], "tracks": [], "shapes": [
        {"type": "rectangle", "frame": f, "label_id": w.label_ids["car"], "points": [1, 1, 9, 9], "score": s,
         "occluded": False, "outside": False, "z_order": 0, "rotation": 0, "group": 0, "source": "auto",
         "attributes": []} for f, s in scores.items()]})
    predictor = TaskAnnotationsPredictor([cvat_standin.get_annotations(job.id)])
    rec = run_round(client, store, RoundParams(project_id=w.project_id, pool_task_id=pool_task, batch=2,
                                               diversity=0.0), predictor, now_iso=_now)
    assert set(rec.frames) == {0, 5}  # 0.5 and 0.51: the two most uncertain
    assert rec.prelabels == 2

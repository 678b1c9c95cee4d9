"""Honeypots (CVAT's ``gt_pool`` validation mode) as ground truth for the consensus engine.

A ``gt_pool`` task keeps its validation frames in a pool outside every annotation job; each job
holds placeholder frames showing one of them. The sidecar reads the task's validation layout and
measures each replica on its honeypot frames against the GT of the frame shown there. Against the
CVAT stand-in, with the real cvat-sdk client and the real consensus engine.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cvat_ext.annotations.model import FrameInfo, JobAnnotations, JobMeta, Shape, ShapeType, Tag
from cvat_ext.cvat.records import ValidationLayout
from cvat_ext.cvat.wire import validation_layout_from_json
from cvat_ext.errors import CvatError
from cvat_ext.sidecar import engines
from cvat_ext.sidecar.ground_truth import GroundTruth
from cvat_ext.workforce.accuracy import accuracies_of, gt_check_line
from tests.conftest import OrgWorld
from tests.cvat_standin import CvatStandIn
from tests.sidecar.crash import Clock
from tests.sidecar.scenario import CARS_XYXY, _rect
from tests.sidecar.test_e2e_standin import make_settings
from tests.sidecar.test_people import RecordingEngine, _service

JOB_FRAMES = 12
POOL = 4
#: honeypot frame (in the annotation job) -> the validation frame it shows (in the pool)
HONEYPOTS = {1: 12, 4: 13, 6: 14, 9: 15, 11: 12}


def _box(frame: int, xyxy: tuple[float, ...], label_id: int = 1) -> Shape:
    return Shape(ShapeType.RECTANGLE, frame, label_id, np.asarray(xyxy, dtype=np.float64))


# --- the mapping, unit level ---------------------------------------------------------------------
def _meta(start: int, stop: int, deleted: tuple[int, ...] = ()) -> JobMeta:
    return JobMeta(start, stop, tuple(FrameInfo(640, 480) for _ in range(start, stop + 1)), deleted_frames=deleted)


def test_honeypot_frames_take_the_truth_of_the_frame_they_show() -> None:
    gt = GroundTruth(9, "v1", JobAnnotations(shapes=(_box(12, (0, 0, 10, 10)), _box(12, (20, 20, 40, 40)),
                                                     _box(13, (5, 5, 9, 9), 2), _box(3, (1, 1, 2, 2)))),
                     (3, 12, 13))
    # job 0-9 holds frame 3 (a GT frame of its own) and honeypots 1 -> 12, 4 -> 13, 6 -> 14 (14: not in GT)
    truth = gt.for_job(_meta(0, 9), [(1, 12), (4, 13), (6, 14), (11, 12)])
    assert truth.frames == (1, 3, 4) and truth.honeypots == 2
    on = {f: sorted((s.label_id, s.points.ravel().tolist()) for s in truth.annotations.shapes if s.frame == f)
          for f in truth.frames}
    assert on[1] == [(1, [0, 0, 10, 10]), (1, [20, 20, 40, 40])]
    assert on[4] == [(2, [5, 5, 9, 9])]
    assert on[3] == [(1, [1, 1, 2, 2])]
    # the GT tags of the frame shown go to the honeypot too (a correct tag there is no extra)
    tagged = GroundTruth(9, "v1", JobAnnotations(tags=(Tag(12, 3), Tag(3, 4))), (3, 12))
    tags = tagged.for_job(_meta(0, 9), [(1, 12)]).annotations.tags
    assert sorted((t.frame, t.label_id) for t in tags) == [(1, 3), (3, 4), (12, 3)]
    # a deleted honeypot frame is no truth; a job without honeypots keeps only its own GT frames
    assert gt.for_job(_meta(0, 9, deleted=(1,)), [(1, 12), (4, 13)]).frames == (3, 4)
    assert gt.for_job(_meta(0, 9)).frames == (3,)


@pytest.mark.parametrize(
    ("body", "expect", "error"),
    [
        ({"mode": "gt_pool", "frames_per_job_count": 2, "validation_frames": [10, 11], "disabled_frames": [11],
          "honeypot_count": 3, "honeypot_frames": [1, 4, 7], "honeypot_real_frames": [10, 11, 10]},
         ((1, 10), (7, 10)), None),
        ({"mode": "gt", "frames_per_job_count": None, "validation_frames": [2, 5], "disabled_frames": []}, (), None),
        ({"mode": None, "frames_per_job_count": None, "validation_frames": [], "disabled_frames": []}, (), None),
        ({"mode": "gt_pool", "honeypot_frames": [1, 4], "honeypot_real_frames": [10]}, None,
         r"task 5 validation layout: unexpected CVAT response: 2 honeypot_frames but 1 honeypot_real_frames"),
        ({"mode": "gt_pool", "honeypot_frames": ["x"], "honeypot_real_frames": [10]}, None,
         r"task 5 validation layout: unexpected CVAT response: honeypot_frames.0"),
    ],
)
def test_validation_layout_body(body: dict[str, Any], expect: tuple[tuple[int, int], ...] | None,
                                error: str | None) -> None:
    if error is not None:
        with pytest.raises(CvatError, match=error):
            validation_layout_from_json(body, where="task 5 validation layout")
        return
    layout = validation_layout_from_json(body, where="task 5 validation layout")
    # disabled validation frames measure nobody
    assert layout.active_honeypots() == expect


def test_honeypots_by_frame_whatever_the_order_given() -> None:
    layout = ValidationLayout("gt_pool", (20, 21), (), (15, 3, 12), (20, 20, 21))
    assert layout.active_honeypots() == ((3, 20), (12, 21), (15, 20))


# --- end to end against the stand-in --------------------------------------------------------------
def _honeypot_task(standin: CvatStandIn, world: OrgWorld, segment_size: int = JOB_FRAMES) -> tuple[int, int, int]:
    """A gt_pool consensus task in the world's project: parent jobs over frames 0..11, a pool of
    4 validation frames (12..15) with an accepted GT job, and the honeypots of :data:`HONEYPOTS`.
    ann1 draws the three cars of every frame; ann2 and ann3 both miss the first car on every other
    frame (a blind spot they share, which agreement alone takes for ann1's invention), and ann3
    draws a phantom car on every third. Returns (task, first
    parent, GT job)."""
    task = standin.add_task("honeypot task", project_id=world.project_id, frames=JOB_FRAMES + POOL,
                            segment_size=segment_size, consensus_replicas=3, owner="admin", validation_pool=POOL)
    parents = [j["id"] for j in standin.jobs(task_id=task, type="annotation")]
    car = world.label_ids["car"]
    rng = np.random.default_rng(7)
    for parent in parents:
        for job, annotator in zip(standin.jobs(parent_job_id=parent), ("ann1", "ann2", "ann3"), strict=True):
            standin.set_job(job["id"], stage="annotation", state="completed", assignee=annotator)
            shapes = []
            for frame in range(job["start_frame"], job["stop_frame"] + 1):
                for k, xyxy in enumerate(CARS_XYXY):
                    if annotator != "ann1" and k == 0 and frame % 2 == 1:
                        continue
                    shapes.append(_rect(frame, car, tuple(float(v) + rng.uniform(-1.5, 1.5) for v in xyxy)))
                if annotator == "ann3" and frame % 3 == 0:
                    shapes.append(_rect(frame, car, (300.0, 380.0, 420.0, 470.0)))
            standin.set_annotations(job["id"], {"version": 0, "tags": [], "tracks": [], "shapes": shapes})
    pool = list(range(JOB_FRAMES, JOB_FRAMES + POOL))
    gt_job = standin.add_gt_job(task, pool, assignee="rev1")
    standin.set_annotations(gt_job, {"version": 0, "tags": [], "tracks": [], "shapes": [
        _rect(f, car, xyxy) for f in pool for xyxy in CARS_XYXY]})
    standin.set_honeypots(task, HONEYPOTS)
    return task, parents[0], gt_job


class InputsRecorder(RecordingEngine):
    """The real engine, keeping every call's arguments (to score the same inputs again)."""

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.args: dict[int, tuple[Any, ...]] = {}

    def score(self, parent_job_id: int, replicas: Any, labels: Any, meta: Any, **kw: Any) -> Any:
        self.args[parent_job_id] = (replicas, labels, meta)
        return super().score(parent_job_id, replicas, labels, meta, **kw)


def _run(standin: CvatStandIn, world: OrgWorld, tmp_path: Path, task: int) -> tuple[InputsRecorder, Any, str]:
    cfg = make_settings(standin, world, f"sqlite:///{tmp_path}/state.db", scope={"task_ids": [task]})
    engine = InputsRecorder(cfg.consensus.engine)
    with _service(standin, world, cfg, Clock(), engine) as svc:
        report = svc.run_once()
        assert report.failed_units == 0, report.errors
        details = {s.job_id: s.detail for s in svc.store.scores_of_task(task) if s.kind == "consensus"}
        guide = svc.client.get_guide(svc.client.get_task(task).guide_id).markdown  # type: ignore[arg-type]
    return engine, details, guide


def test_honeypots_anchor_the_estimates(cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, tmp_path: Path) -> None:
    standin, world = cvat_standin, cvat_org_world
    task, parent, gt_job = _honeypot_task(standin, world)
    engine, details, guide = _run(standin, world, tmp_path, task)
    # the engine gets the honeypot frames, each with the three GT cars of the frame it shows
    annotations, frames = engine.given[parent]
    assert tuple(frames) == tuple(sorted(HONEYPOTS))
    per_frame = {f: sum(1 for s in annotations.shapes if s.frame == f) for f in frames}
    assert per_frame == {h: len(CARS_XYXY) for h in HONEYPOTS}
    gt = details[parent]["ground_truth"]
    assert (gt["job_id"], gt["frames"], gt["honeypots"], gt["objects"]) == (gt_job, 5, 5, 5 * len(CARS_XYXY))
    assert "honeypots_unread" not in gt
    assert gt_check_line(parent, gt) in guide and "(5 of them honeypots)" in guide
    # every annotator's numbers say how many GT objects informed them
    anchored = {a.name: a for a in accuracies_of(details[parent])}
    assert {n: a.gt_objects for n, a in anchored.items()} == {n: 15 for n in ("ann1", "ann2", "ann3")}

    # the same inputs without the honeypots: ann3's estimate lies further from its true F1
    plain = engines.ConsensusEngineRunner(engine.settings)
    blind = {a.name: a for a in plain.score(parent, *engine.args[parent]).annotators}
    # true F1 over the job's 36 cars: ann1 drew them all; ann2 30 of them; ann3 30 and 4 phantoms
    true_f1 = {"ann1": 1.0, "ann2": 2 * 30 / (30 + 36), "ann3": 2 * 30 / (34 + 36)}
    error = {n: (abs(anchored[n].truth["f1"] - f1), abs(blind[n].truth["f1"] - f1)) for n, f1 in true_f1.items()}
    assert all(blind[n].gt_objects == 0 for n in true_f1)
    # 15 GT objects: the correction by the model's error on them is shrunk by the share of it their
    # sampling noise explains (docs/developers/annotator-model.md, "Ground truth"), so ann3's 0.08
    # is taken 60 % of the way
    assert all(with_gt < without and with_gt <= 0.04 for with_gt, without in error.values()), error


@pytest.mark.parametrize("status", [404, 403])
def test_an_unreadable_layout_is_said_once_and_in_the_report(
    cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, tmp_path: Path, caplog: pytest.LogCaptureFixture,
    status: int,
) -> None:
    standin, world = cvat_standin, cvat_org_world
    task, _, gt_job = _honeypot_task(standin, world, segment_size=6)  # two parents: 0-5, 6-11
    standin.faults.add("GET", r"^/api/tasks/\d+/validation_layout/?$", "status", status=status, times=10)
    with caplog.at_level(logging.WARNING, logger="cvat_ext.sidecar"):
        engine, details, guide = _run(standin, world, tmp_path, task)
    assert len(details) == 2
    for parent, detail in details.items():
        assert engine.given[parent] is None  # no GT frame inside the job: nothing to anchor on
        gt = detail["ground_truth"]
        assert (gt["job_id"], gt["frames"], gt["honeypots"]) == (gt_job, 0, 0)
        assert f"CVAT answered {status}" in gt["honeypots_unread"]
        assert "honeypot frames are not used" in gt_check_line(parent, gt)
        assert gt_check_line(parent, gt) in guide
    said = [r for r in caplog.records if "validation layout could not be read" in r.getMessage()]
    assert len(said) == 1 and f"task {task}:" in said[0].getMessage()

"""A task with a ground-truth job, seeded into the CVAT stand-in: a precise and a sloppy annotator.

Task "gold task" (20 frames of the org world's project, segment 10): job A (frames 0-9) done by
ann1, who draws the three cars of every frame within 1 px; job B (frames 10-19) done by ann3, who
misses the first car and calls the second a person on every frame. The GT job (rev1, acceptance /
completed) covers frames 1, 3, 5, 7 (job A) and 11, 13, 15, 17 (job B): 4 gold frames per job.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from tests.conftest import OrgWorld
from tests.cvat_standin import CvatStandIn
from tests.sidecar.scenario import CARS_XYXY, _rect

GOLD_FRAMES = (1, 3, 5, 7, 11, 13, 15, 17)


@dataclass(frozen=True)
class GoldTask:
    task_id: int
    precise_job: int
    sloppy_job: int
    gt_job: int


def _drawn(world: OrgWorld, frames: range, *, sloppy: bool, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    car, person = world.label_ids["car"], world.label_ids["person"]
    shapes = []
    for frame in frames:
        for k, xyxy in enumerate(CARS_XYXY):
            if sloppy and k == 0:
                continue
            label = person if sloppy and k == 1 else car
            shapes.append(_rect(frame, label, tuple(v + rng.uniform(-1, 1) for v in xyxy)))
    return {"version": 0, "tags": [], "shapes": shapes, "tracks": []}


def seed_gold_task(standin: CvatStandIn, world: OrgWorld) -> GoldTask:
    task_id = standin.add_task("gold task", project_id=world.project_id, frames=20, segment_size=10, owner="qabot")
    job_a, job_b = (j["id"] for j in standin.jobs(task_id=task_id, type="annotation"))
    gt = standin.add_gt_job(task_id, GOLD_FRAMES, assignee="rev1")
    standin.set_annotations(gt, {"version": 0, "tags": [], "tracks": [], "shapes": [
        _rect(f, world.label_ids["car"], xyxy) for f in GOLD_FRAMES for xyxy in CARS_XYXY]})
    standin.set_annotations(job_a, _drawn(world, range(0, 10), sloppy=False, seed=1))
    standin.set_annotations(job_b, _drawn(world, range(10, 20), sloppy=True, seed=2))
    standin.set_job(job_a, stage="annotation", state="completed", assignee="ann1")
    standin.set_job(job_b, stage="annotation", state="completed", assignee="ann3")
    return GoldTask(task_id, job_a, job_b, gt)


#: the honeypot task: annotation frames 0..19 (jobs 0-9 and 10-19), validation pool 20..23
POOL_FRAMES = (20, 21, 22, 23)
#: honeypot frame (inside an annotation job) -> the validation frame it shows
HONEYPOTS = {1: 20, 4: 21, 6: 22, 8: 23, 11: 21, 13: 22, 15: 23, 18: 20}
PHANTOM_XYXY = (300.0, 380.0, 420.0, 470.0)


def shown_cars(pool_frame: int) -> tuple[tuple[float, ...], ...]:
    """The cars validation frame ``pool_frame`` shows: two of the three, a different pair from
    frame to frame, so that gold taken from the wrong frame would not match."""
    dropped = (pool_frame - POOL_FRAMES[0]) % len(CARS_XYXY)
    return tuple(xyxy for k, xyxy in enumerate(CARS_XYXY) if k != dropped)


def _drawn_on_honeypots(world: OrgWorld, frames: range, *, sloppy: bool, seed: int) -> dict[str, Any]:
    """What an annotator draws: on a honeypot frame the cars it shows (the sloppy one misses the
    first and adds a phantom car), elsewhere the three cars."""
    rng = random.Random(seed)
    car = world.label_ids["car"]
    shapes = []
    for frame in frames:
        cars = shown_cars(HONEYPOTS[frame]) if frame in HONEYPOTS else CARS_XYXY
        if sloppy:
            cars = (*cars[1:], PHANTOM_XYXY)
        shapes += [_rect(frame, car, tuple(v + rng.uniform(-1, 1) for v in xyxy)) for xyxy in cars]
    return {"version": 0, "tags": [], "shapes": shapes, "tracks": []}


def seed_honeypot_task(standin: CvatStandIn, world: OrgWorld) -> GoldTask:
    """A ``gt_pool`` task ("honeypot task"): jobs A (0-9, ann1, precise) and B (10-19, ann3, sloppy),
    both completed, never seeing a GT job; the pool frames 20..23 have an accepted GT job, and each
    job holds 4 honeypots (:data:`HONEYPOTS`). On gold ann1 scores 1.0 and ann3 0.5 (per honeypot
    frame, 1 of the 2 cars shown plus a phantom)."""
    task_id = standin.add_task("honeypot task", project_id=world.project_id, frames=24, segment_size=10,
                               owner="qabot", validation_pool=len(POOL_FRAMES))
    job_a, job_b = (j["id"] for j in standin.jobs(task_id=task_id, type="annotation"))
    gt = standin.add_gt_job(task_id, POOL_FRAMES, assignee="rev1")
    standin.set_annotations(gt, {"version": 0, "tags": [], "tracks": [], "shapes": [
        _rect(f, world.label_ids["car"], xyxy) for f in POOL_FRAMES for xyxy in shown_cars(f)]})
    standin.set_honeypots(task_id, HONEYPOTS)
    standin.set_annotations(job_a, _drawn_on_honeypots(world, range(0, 10), sloppy=False, seed=3))
    standin.set_annotations(job_b, _drawn_on_honeypots(world, range(10, 20), sloppy=True, seed=4))
    standin.set_job(job_a, stage="annotation", state="completed", assignee="ann1")
    standin.set_job(job_b, stage="annotation", state="completed", assignee="ann3")
    return GoldTask(task_id, job_a, job_b, gt)

"""A consensus task where ann3 is sloppy, seeded into the CVAT stand-in (``cvat_org_world``).

Parent job 1 (frames 0-9): three cars per frame; ann1 and ann2 draw them within 1-2 px, ann3
misses the first car on frames 2, 5 and 8, adds a phantom car on frame 3 and calls a car a
person on frame 7. Parent job 2 (frames 10-19): all three annotators agree.
"""

from __future__ import annotations

import random
from typing import Any

from tests.conftest import OrgWorld
from tests.cvat_standin import CvatStandIn

CARS_XYXY = ((40.0, 60.0, 140.0, 130.0), (250.0, 200.0, 380.0, 300.0), (450.0, 80.0, 600.0, 210.0))
SLOPPY_MISSES = (2, 5, 8)
SLOPPY_EXTRA_FRAME = 3
SLOPPY_WRONG_LABEL_FRAME = 7
SLOPPY_FRAMES = (*SLOPPY_MISSES, SLOPPY_EXTRA_FRAME, SLOPPY_WRONG_LABEL_FRAME)


def _rect(frame: int, label_id: int, xyxy: tuple[float, ...]) -> dict[str, Any]:
    return {
        "type": "rectangle",
        "frame": frame,
        "label_id": label_id,
        "points": [round(v, 2) for v in xyxy],
        "rotation": 0.0,
        "occluded": False,
        "outside": False,
        "z_order": 0,
        "group": 0,
        "source": "manual",
        "attributes": [],
        "elements": [],
    }


def replica_annotations(world: OrgWorld, frames: range, annotator: str, *, sloppy: bool, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    jitter = {"ann1": 1.0, "ann2": 2.0, "ann3": 2.0}[annotator]
    car, person = world.label_ids["car"], world.label_ids["person"]
    shapes = []
    for frame in frames:
        for k, xyxy in enumerate(CARS_XYXY):
            if sloppy and k == 0 and frame in SLOPPY_MISSES:
                continue
            label = person if sloppy and k == 1 and frame == SLOPPY_WRONG_LABEL_FRAME else car
            shapes.append(_rect(frame, label, tuple(v + rng.uniform(-jitter, jitter) for v in xyxy)))
        if sloppy and frame == SLOPPY_EXTRA_FRAME:
            shapes.append(_rect(frame, car, (300.0, 380.0, 420.0, 470.0)))
    return {"version": 0, "tags": [], "shapes": shapes, "tracks": []}


def seed_sloppy_consensus(standin: CvatStandIn, world: OrgWorld) -> None:
    """Fill every replica; ann3 is sloppy on the first parent only."""
    for p_idx, parent in enumerate(world.parent_job_ids):
        frames = range(p_idx * 10, p_idx * 10 + 10)
        for r_idx, annotator in enumerate(("ann1", "ann2", "ann3")):
            job_id = world.replica_of(parent, annotator)
            sloppy = annotator == "ann3" and p_idx == 0
            standin.set_annotations(
                job_id, replica_annotations(world, frames, annotator, sloppy=sloppy, seed=100 * p_idx + r_idx)
            )

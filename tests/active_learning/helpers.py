"""Builders for active-learning tests: signals from plain lists, files in CVAT's JSON shapes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cvat_ext.active_learning.signals import FrameSet, Prelabels, Signal


def frames(n: int, start: int = 0) -> FrameSet:
    return FrameSet.single_job(np.arange(start, start + n))


def detections(rows: Sequence[tuple[int, float]]) -> Prelabels:
    """``(frame, score)`` rows, label 1."""
    return Prelabels(
        np.array([f for f, _ in rows], dtype=np.int64),
        np.array([s for _, s in rows], dtype=np.float64),
        np.ones(len(rows), dtype=np.int64),
    )


def signal(name: str, values: Sequence[float]) -> Signal:
    return Signal(name, np.asarray(values, dtype=np.float64))


def predictions_json(rows: Sequence[tuple[int, float]], label_id: int = 1) -> dict[str, Any]:
    """A CVAT LabeledData body as auto-annotation leaves it (rectangles with scores)."""
    shapes = [
        {"type": "rectangle", "frame": f, "label_id": label_id, "points": [10.0, 10.0, 50.0, 60.0], "score": s,
         "source": "auto", "occluded": False, "outside": False, "z_order": 0, "rotation": 0.0, "group": 0,
         "attributes": [], "elements": [], "id": i + 1}
        for i, (f, s) in enumerate(rows)
    ]
    return {"version": 0, "tags": [], "shapes": shapes, "tracks": []}


def meta_json(start: int, stop: int, *, wh: tuple[int, int] = (640, 480)) -> dict[str, Any]:
    """A ``GET /api/jobs/{id}/data/meta`` body for frames start..stop."""
    frames = [{"width": wh[0], "height": wh[1], "name": f"f{i:05d}.jpg", "related_files": 0}
              for i in range(start, stop + 1)]
    return {"start_frame": start, "stop_frame": stop, "frame_filter": "", "frames": frames, "deleted_frames": [],
            "included_frames": None, "chunk_size": 36, "size": len(frames)}


def write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path

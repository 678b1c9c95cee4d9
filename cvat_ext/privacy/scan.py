"""Scanning a CVAT task's frames for faces and plates that are still visible.

Every frame of every annotation job of the task is fetched (original quality, the file as
stored), decoded and run through the detector; frames with a region scoring at least
``min_score`` are findings. A blurred region no longer looks like a face to the detectors, so a
finding means "not blurred, or blurred too weakly" (or a false detection: check it).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from cvat_ext.errors import ConfigError
from cvat_ext.privacy.detectors import KINDS, PiiDetector

if TYPE_CHECKING:
    from cvat_ext.cvat.client import CvatClient

__all__ = ["FrameFinding", "scan_task"]


@dataclass(frozen=True)
class FrameFinding:
    """A frame with visible PII: ``regions`` as ``(kind, xyxy, score)``."""

    task_id: int
    job_id: int
    frame: int
    regions: tuple[tuple[str, tuple[float, float, float, float], float], ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "task_id": self.task_id,
            "job_id": self.job_id,
            "frame": self.frame,
            "regions": [{"kind": k, "xyxy": list(b), "score": s} for k, b, s in self.regions],
        }


def _decode(data: bytes, where: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise ConfigError(f"{where}: frame is not a readable image ({exc})") from exc


def scan_task(
    client: CvatClient,
    task_id: int,
    detector: PiiDetector,
    *,
    min_score: float = 0.5,
    on_frame: Callable[[int], None] | None = None,
) -> Iterator[FrameFinding]:
    """Yield a finding per frame of ``task_id`` with visible faces or plates, frame by frame."""
    jobs = [j for j in client.list_jobs(task_id=task_id) if j.type == "annotation"]
    if not jobs:
        raise ConfigError(f"task {task_id}: no annotation jobs (is its data attached?)")
    for job in sorted(jobs, key=lambda j: j.start_frame):
        for frame in range(job.start_frame, job.stop_frame + 1):
            where = f"task {task_id} job {job.id} frame {frame}"
            found = detector(_decode(client.get_frame(job.id, frame), where))
            if on_frame is not None:
                on_frame(frame)
            keep = np.flatnonzero(found.score >= min_score)
            if keep.size:
                yield FrameFinding(
                    task_id,
                    job.id,
                    frame,
                    tuple(
                        (
                            KINDS[int(found.class_id[i])],
                            tuple(np.round(found.xyxy[i], 1).tolist()),
                            round(float(found.score[i]), 4),
                        )
                        for i in keep
                    ),
                )

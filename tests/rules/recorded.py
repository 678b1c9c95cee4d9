"""Recorded CVAT 2.73 bodies (``tests/data/cvat-2.73/recorded``, see ``tests.shared_data``) as our types."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from cvat_ext.annotations.cvat_json import parse_job_annotations, parse_job_meta, parse_labels
from cvat_ext.annotations.model import JobAnnotations, JobMeta, LabelSet
from tests import shared_data

RECORDED = shared_data.RECORDED_DIR


def body(name: str, index: int = 0) -> Any:
    path = RECORDED / name
    if not path.is_file():
        pytest.fail(f"recording {path} not found")
    return json.loads(path.read_text())["exchanges"][index]["response"]["body"]


def recorded_job(name: str) -> tuple[JobAnnotations, LabelSet, JobMeta]:
    """Annotations of a recorded job, the task's labels, and a 640x480 frame meta covering its frames.

    The replica meta (34, job 132) covers frames 0-9; the other parent job (frames 10-19) has the same
    frame size, so its meta is that one shifted.
    """
    ann = parse_job_annotations(body(name), where=name)
    labels = parse_labels(body("22_labels_list_task.json"))
    meta = parse_job_meta(body("34_job_data_meta.json"))
    if ann.frames() and min(ann.frames()) >= 10:
        meta = dataclasses.replace(meta, start_frame=10, stop_frame=19)
    return ann, labels, meta

"""The CLI's readers of labels, frame meta and annotations: kind first, then the parser.

A file of the wrong kind is refused before its parser sees it (a meta parses as an empty job);
the option it came from is named so the user knows what to fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cvat_ext.annotations.cvat_json import load_json_file, parse_job_annotations, parse_job_meta, parse_labels
from cvat_ext.annotations.model import JobAnnotations, JobMeta, LabelSet
from cvat_ext.inputs.kinds import FileKind, expect_kind

if TYPE_CHECKING:
    from cvat_ext.annotations.columnar_json import ReplicaColumns

__all__ = ["read_annotations", "read_labels", "read_meta"]


def read_labels(path: Path, option: str = "--labels") -> LabelSet:
    """A labels file (``GET /api/labels``: a list or a page)."""
    expect_kind(path, FileKind.LABELS, option)
    return parse_labels(load_json_file(path), where=str(path))


def read_meta(path: Path, option: str = "--meta") -> JobMeta:
    """A job frame meta file (``GET /api/jobs/{id}/data/meta``)."""
    expect_kind(path, FileKind.META, option)
    return parse_job_meta(load_json_file(path), where=str(path))


def read_annotations(path: Path, option: str = "--annotations") -> JobAnnotations:
    """A job annotations file (``GET /api/jobs/{id}/annotations``), parsed whole."""
    expect_kind(path, FileKind.ANNOTATIONS, option)
    return parse_job_annotations(load_json_file(path), where=str(path))


def read_rule_input(path: Path, option: str = "--annotations") -> JobAnnotations | ReplicaColumns:
    """A job annotations file for the rules: its columns, or its objects when it has tracks (the
    track rules read keyframes). Errors are the ones :func:`read_annotations` raises."""
    from cvat_ext.annotations.columnar_json import read_annotations_file

    expect_kind(path, FileKind.ANNOTATIONS, option)
    columns = read_annotations_file(path)
    return read_annotations(path, option) if columns.from_tracks else columns

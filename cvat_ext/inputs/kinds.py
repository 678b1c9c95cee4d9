"""Which kind of file is this? Sniffed from the first keys, so a labels file given as annotations
fails with one line instead of parsing as an empty job.

The readers are lenient where CVAT is (missing annotation lists count as empty), so a frame meta,
a labels page or a findings report all "parse" as annotations without a single object. The sniff
reads JSON events from the start of the file until one key decides the kind (CVAT writes the
deciding keys first: ``tags`` of annotations, ``chunks_updated_date`` of a meta), at
most :data:`MAX_EVENTS` events: about a millisecond whatever the file's size. YAML rule
packs are recognised by a top-level ``rules:``/``include:``/``overrides:`` line.

Kinds and their deciding keys (``root.key`` for objects, ``[0].key`` for the first list item):

========================  ===============================================================
annotations               ``tags`` ``shapes`` ``tracks`` ``intervals``
meta                      ``frames`` ``chunks_updated_date`` ``chapters`` ``included_frames``
labels                    ``[0].name`` with ``[0].attributes``/``color``/``sublabels``/``type``,
                          or a page ``results`` whose first item does
findings                  ``findings`` with ``summary.pack``; ``[0].rule_id``
consensus report          ``summary.annotators`` ``pairs`` ``keypoint_sigmas``
rules                     ``rules`` ``include`` ``overrides``; in YAML, such a top-level line
CVAT record               ``url`` (a job, task or project: none of the inputs)
========================  ===============================================================
"""

from __future__ import annotations

import re
from enum import StrEnum
from os import PathLike
from pathlib import Path
from typing import Final

import ijson

from cvat_ext.errors import InputMismatchError

__all__ = ["MAX_EVENTS", "FileKind", "expect_kind", "sniff_kind"]

#: JSON events read before giving up on deciding (a key decides long before on real files)
MAX_EVENTS: Final = 4096


class FileKind(StrEnum):
    ANNOTATIONS = "annotations"
    META = "meta"
    LABELS = "labels"
    FINDINGS = "findings"
    CONSENSUS_REPORT = "consensus report"
    RULES = "rules"
    CVAT_RECORD = "cvat record"


#: what each kind is, for messages: "this is <what>, not <what>"
DESCRIPTION: Final[dict[FileKind, str]] = {
    FileKind.ANNOTATIONS: "job annotations (GET /api/jobs/{id}/annotations)",
    FileKind.META: "a job frame meta (GET /api/jobs/{id}/data/meta)",
    FileKind.LABELS: "a labels file (GET /api/labels)",
    FileKind.FINDINGS: "rule findings (cvat-ext rules check --format json)",
    FileKind.CONSENSUS_REPORT: "a consensus report (cvat-ext qa consensus --report-out)",
    FileKind.RULES: "a rule pack (YAML with rules:)",
    FileKind.CVAT_RECORD: "a CVAT job, task or project record (GET /api/jobs/{id} & co.)",
}

_ROOT_KEYS: Final[dict[str, FileKind]] = {
    # not "version": a rule pack written as JSON starts with it too (CVAT writes "tags" right after)
    **dict.fromkeys(("tags", "shapes", "tracks", "intervals"), FileKind.ANNOTATIONS),
    **dict.fromkeys(("rules", "include", "overrides"), FileKind.RULES),
    # start_frame/stop_frame/frame_filter are in job and task records too: not deciding. A report's
    # "frames" comes after its "summary", which decides first.
    **dict.fromkeys(("frames", "chunks_updated_date", "chapters", "included_frames", "deleted_frames"), FileKind.META),
    **dict.fromkeys(("pairs", "keypoint_sigmas", "annotators"), FileKind.CONSENSUS_REPORT),
    # every CVAT object record (job, task, project, user) starts with its url; the inputs do not
    "url": FileKind.CVAT_RECORD,
}
_SUMMARY_KEYS: Final[dict[str, FileKind]] = {
    "pack": FileKind.FINDINGS,
    "rules": FileKind.FINDINGS,
    "annotators": FileKind.CONSENSUS_REPORT,
    "clusters": FileKind.CONSENSUS_REPORT,
}
_LABEL_ITEM_KEYS: Final = frozenset({"attributes", "color", "sublabels", "svg", "has_parent"})
_YAML_RULES_LINE: Final = re.compile(rb"^(rules|include|overrides)\s*:", re.MULTILINE)


def _from_item_keys(keys: set[str]) -> FileKind | None:
    if "rule_id" in keys:
        return FileKind.FINDINGS
    if "name" in keys and keys & _LABEL_ITEM_KEYS:
        return FileKind.LABELS
    return None


def _sniff_json(path: Path) -> FileKind | None:
    """The kind decided by the first deciding key, None when none came in :data:`MAX_EVENTS`."""
    root_keys: set[str] = set()
    item_keys: set[str] = set()
    with path.open("rb") as fh:
        for n, (prefix, event, value) in enumerate(ijson.parse(fh)):
            if n >= MAX_EVENTS:
                break
            if event != "map_key":
                if prefix in ("item", "results.item") and event == "end_map":
                    return _from_item_keys(item_keys)  # the first item tells; no need for more
                continue
            if prefix == "":
                root_keys.add(value)
                if value in _ROOT_KEYS:
                    return _ROOT_KEYS[value]
            elif prefix == "summary" and value in _SUMMARY_KEYS:
                return _SUMMARY_KEYS[value]
            elif prefix in ("item", "results.item"):
                item_keys.add(value)
    if "findings" in root_keys:
        return FileKind.FINDINGS
    return _from_item_keys(item_keys)


def sniff_kind(path: str | PathLike[str]) -> FileKind | None:
    """The kind of the file at ``path``, or None when its start decides nothing (an empty list,
    an unknown layout: the reader then says what is wrong). Unreadable files and pipes (which a
    sniff would drain) give None too, for the reader to report or read."""
    p = Path(path)
    try:
        if not p.is_file():
            return None  # a pipe (``--labels <(curl ...)``) can be read once: that is the reader's
    except OSError:
        return None
    try:
        return _sniff_json(p)
    except (ijson.JSONError, ValueError):
        pass  # not JSON (or not UTF-8): a YAML rule pack, or the reader's error to give
    except OSError:
        return None
    try:
        with p.open("rb") as fh:
            head = fh.read(65536)
    except OSError:
        return None
    return FileKind.RULES if _YAML_RULES_LINE.search(head) else None


def expect_kind(path: str | PathLike[str], expected: FileKind | tuple[FileKind, ...], option: str) -> None:
    """Raise :class:`InputMismatchError` when ``path`` is recognisably another kind than ``expected``.

    ``option`` names where the file was given (``--annotations``), to say what to fix:
    ``labels.json: this is a labels file (GET /api/labels), not job annotations (...): check --annotations``.
    """
    wanted = expected if isinstance(expected, tuple) else (expected,)
    found = sniff_kind(path)
    if found is None or found in wanted:
        return
    want = " or ".join(DESCRIPTION[k] for k in wanted)
    raise InputMismatchError(f"{path}: this is {DESCRIPTION[found]}, not {want}: check {option}")

"""A consensus run's findings as report JSON lines and ``findings.csv`` rows, from the columns.

The per-object writer builds a :class:`~cvat_ext.qa.findings.Finding`, a dict and a CSV row per
finding (300,000 on a 10,000-frame job with a sloppy annotator). Here the text is assembled from
the :class:`~cvat_ext.consensus.report.FindingBlock` columns, a window of clusters at a time:

* per **cluster**: the frame, the box (rounded with NumPy, one ``repr`` per row), the similarity
  and score texts, one pre-formatted middle part of the JSON line, and the CSV row's cells and
  message head (a quoted message puts its quote between them);
* per **member pattern** (present / missing / labels by annotator) and **label**: their JSON and
  CSV texts and each kind's message suffix, formatted once for the run
  (:func:`~cvat_ext.consensus.report.finding_message` stays the one definition of the messages:
  the suffixes are cut from it);
* per **finding**: one f-string joining those parts (no dict, no ``Finding``, no ``json.dumps``).

Order: the report lists findings by frame, each block's findings in cluster order and kind
order, blocks in run order, tag findings last on their frame (``heapq.merge`` of the blocks). A
window takes every block's rows of a frame range and sorts its findings by frame, stably, which
is that order when each block is sorted by frame; :func:`supported` checks that (and that every
number is one the templates write as ``json`` would) before a run is written this way.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from cvat_ext.consensus import report
from cvat_ext.consensus.report import (
    CLUSTER_FINDING_KINDS,
    ConsensusResult,
    FindingBlock,
    FindingKind,
    finding_message,
)
from cvat_ext.consensus.report_text import csv_field, float_texts, json_and_csv_texts, needs_quotes, round_like_python

__all__ = ["Batch", "finding_batches", "supported"]

#: a batch of table rows: the report's JSON lines and the CSV text (rows ending ``\r\n``)
Batch = tuple[list[str], str]

#: clusters formatted at once (a window holds every block's clusters of a frame range)
WINDOW_CLUSTERS = 16_384
_SHAPE_TYPES = np.array([t.value for t in report.ShapeType], dtype=object)
_KINDS = [k.value for k in CLUSTER_FINDING_KINDS]
_LOW = CLUSTER_FINDING_KINDS.index(FindingKind.LOW_OVERLAP)
#: ``finding_message`` of an empty label and shape type on frame 0 starts with this: the rest is
#: the kind's suffix
_BLANK_HEAD = "frame 0:  "
_JSON_BOOL = np.array(["false", "true"], dtype=object)
_CSV_BOOL = np.array(["False", "True"], dtype=object)


def supported(result: ConsensusResult) -> bool:
    """Whether :func:`finding_batches` writes ``result``'s findings in the report's order and
    bytes: every block sorted by frame, the tag findings too, every box finite."""
    for b in result.finding_blocks:
        if np.any(b.frame[1:] < b.frame[:-1]) or not np.isfinite(b.xyxy).all():
            return False
    tag_frames = [f.frame for f in result.extra_findings]
    return all(a <= b for a, b in itertools.pairwise(tag_frames))


#: a cluster's members: present, missing, (annotator, label) of the present ones
_Votes = tuple[tuple[str, ...], tuple[str, ...], tuple[tuple[str, str], ...]]


@dataclass(frozen=True)
class _Suffix:
    """A message's text after ``frame F: LABEL SHAPE_TYPE``: JSON-escaped, and as the end of a CSV
    row, plain and inside a quoted field; ``quote``: the field must be quoted."""

    json: str
    csv: str
    csv_quoted: str
    quote: bool


class _Texts:
    """Per-run caches: labels, member patterns and message suffixes, each formatted once."""

    def __init__(self, result: ConsensusResult) -> None:
        self.names = tuple(result.summary.annotators)
        self.label_name = result.label_name
        self.labels: dict[int, tuple[str, str, str, str, bool]] = {}
        self.patterns: dict[tuple[int, ...], tuple[str, str, list[int]]] = {}
        self.low: dict[str, int] = {}
        self.suffixes: list[_Suffix] = []
        self._suffix_id: dict[str, int] = {}

    def label(self, label_id: int) -> tuple[str, str, str, str, bool]:
        """The label's name, its JSON string, the name JSON-escaped (no quotes), its CSV field and
        whether that field is quoted."""
        found = self.labels.get(label_id)
        if found is None:
            name = self.label_name(label_id)
            as_json = json.dumps(name)
            found = (name, as_json, as_json[1:-1], csv_field(name), needs_quotes([name])[0])
            self.labels[label_id] = found
        return found

    def suffix(self, kind: FindingKind, votes: _Votes, min_sim: float) -> int:
        """The id of the kind's message suffix for these votes (present, missing, by annotator)."""
        present, missing, by_annot = votes
        message = finding_message(kind, 0, "", "", present, missing, by_annot, min_sim)
        assert message.startswith(_BLANK_HEAD), message
        plain = message[len(_BLANK_HEAD) :]
        found = self._suffix_id.get(plain)
        if found is None:
            found = self._suffix_id[plain] = len(self.suffixes)
            quoted = plain.replace('"', '""') + '"\r\n'
            self.suffixes.append(_Suffix(json.dumps(plain)[1:-1], plain + "\r\n", quoted, needs_quotes([plain])[0]))
        return found

    def pattern(self, members: tuple[int, ...]) -> tuple[str, str, list[int]]:
        """A member label row's JSON part, CSV cells and suffix id per kind (-1 for low overlap,
        whose message holds the similarity)."""
        found = self.patterns.get(members)
        if found is None:
            pairs = list(zip(self.names, members, strict=True))
            present = tuple(n for n, m in pairs if m >= 0)
            missing = tuple(n for n, m in pairs if m < 0)
            by_annot = tuple((n, self.label_name(m)) for n, m in pairs if m >= 0)
            as_json = (
                f'"present": {json.dumps(list(present))}, "missing": {json.dumps(list(missing))}, '
                f'"labels_by_annotator": {json.dumps([list(p) for p in by_annot])}'
            )
            cells = [";".join(present), ";".join(missing), ";".join(f"{a}:{lb}" for a, lb in by_annot)]
            votes = (present, missing, by_annot)
            ids = [-1 if k is FindingKind.LOW_OVERLAP else self.suffix(k, votes, 0.0) for k in CLUSTER_FINDING_KINDS]
            found = self.patterns[members] = (as_json, ",".join(map(csv_field, cells)), ids)
        return found

    def low_overlap(self, sim_2f: str) -> int:
        """The low-overlap suffix id for a similarity written with two decimals."""
        found = self.low.get(sim_2f)
        if found is None:
            found = self.low[sim_2f] = self.suffix(FindingKind.LOW_OVERLAP, ((), (), ()), float(sim_2f))
        return found


def _window(parts: Sequence[tuple[FindingBlock, int, int]]) -> FindingBlock:
    """One block of the rows ``[lo, hi)`` of each ``(block, lo, hi)``, concatenated in that order."""
    return FindingBlock(
        *(np.concatenate([getattr(b, f.name)[lo:hi] for b, lo, hi in parts]) for f in dataclasses.fields(FindingBlock))
    )


def finding_batches(result: ConsensusResult) -> Iterator[Batch]:
    """Every finding's report line and CSV row, in the report's order, a window at a time
    (``result`` must be :func:`supported`)."""
    texts = _Texts(result)
    blocks = [b for b in result.finding_blocks if b.frame.size]
    tags = result.extra_findings
    tag_frames = np.fromiter((f.frame for f in tags), dtype=np.int64, count=len(tags))
    frames = np.sort(np.concatenate([b.frame for b in blocks] + [tag_frames]).astype(np.int64))
    if not frames.size:
        return
    first = np.array([int(b.frame[0]) for b in blocks], dtype=np.int64)
    last = np.array([int(b.frame[-1]) for b in blocks], dtype=np.int64)
    starts = np.unique(frames[::WINDOW_CLUSTERS])
    stops = np.append(starts[1:], frames[-1] + 1)
    for lo, hi in zip(starts.tolist(), stops.tolist(), strict=True):
        parts = []
        for i in np.flatnonzero((last >= lo) & (first < hi)).tolist():
            b = blocks[i]
            a, z = np.searchsorted(b.frame, [lo, hi]).tolist()
            parts.append((b, a, z))
        batch = _window_lines(_window(parts), texts) if parts else ([], [], np.zeros(0, np.int64))
        t_lo, t_hi = np.searchsorted(tag_frames, [lo, hi]).tolist()
        yield _with_tags(batch, tags[t_lo:t_hi], tag_frames[t_lo:t_hi])


def _window_lines(w: FindingBlock, texts: _Texts) -> tuple[list[str], list[str], npt.NDArray[np.int64]]:
    """The window's findings sorted by frame (stable): JSON lines, CSV rows, frames."""
    # the findings: (cluster, kind) in block, cluster, kind order, then stably by frame
    ks, cs = np.nonzero(w.flags)
    order = np.argsort(w.frame[ks], kind="stable")
    ks, cs = ks[order], cs[order]

    # per cluster
    frame_s = np.array(list(map(str, w.frame.tolist())), dtype=object)
    shape_type = _SHAPE_TYPES[w.type_code]
    label_ids, label_pos = np.unique(w.label, return_inverse=True)
    label_rows = [texts.label(int(i)) for i in label_ids.tolist()]
    label_name, label_json, label_esc, label_csv, label_quote = (
        np.array(col, dtype=object)[label_pos] for col in zip(*label_rows, strict=True)
    )
    first_row, pattern_pos = _distinct_rows(w.labels)
    pattern_rows = [texts.pattern(tuple(m)) for m in w.labels[first_row].tolist()]
    pattern_json = np.array([p[0] for p in pattern_rows], dtype=object)[pattern_pos]
    pattern_csv = np.array([p[1] for p in pattern_rows], dtype=object)[pattern_pos]
    suffix_of = np.array([p[2] for p in pattern_rows], dtype=np.int64).reshape(-1, len(_KINDS))
    box = float_texts(round_like_python(w.xyxy, 2))  # (4K,) row by row: x0, y0, x1, y1
    x0s, y0s, x1s, y1s = box[0::4], box[1::4], box[2::4], box[3::4]
    sim_json, sim_csv = json_and_csv_texts(round_like_python(w.min_similarity, 6))
    score_json, score_csv = json_and_csv_texts(round_like_python(w.score, 6))
    kept = w.kept.astype(np.int64)
    # the box as a list of finite floats, as json writes it
    mid_json = [
        f', "shape_type": "{st}", "label": {lj}, {pj}, "xyxy": [{x0}, {y0}, {x1}, {y1}], "min_similarity": {sm}, '
        f'"score": {sc}, "kept": {kp}, "message": "frame {fr}: {le} {st}'
        for st, lj, pj, x0, y0, x1, y1, sm, sc, kp, fr, le in zip(
            shape_type, label_json, pattern_json, x0s, y0s, x1s, y1s, sim_json, score_json, _JSON_BOOL[kept],
            frame_s, label_esc, strict=True,
        )
    ]  # fmt: skip
    # the CSV row after frame and kind, up to the message, and the message's head: a row whose
    # message is quoted puts a quote between them (and doubles the label's quotes, if any)
    csv_cells = [
        f",{st},{lc},{pc},{x0};{y0};{x1};{y1},{sm},{sc},{kp},"
        for st, lc, pc, x0, y0, x1, y1, sm, sc, kp in zip(
            shape_type, label_csv, pattern_csv, x0s, y0s, x1s, y1s, sim_csv, score_csv, _CSV_BOOL[kept], strict=True,
        )
    ]  # fmt: skip
    csv_head = [f"frame {fr}: {lb} {st}" for fr, lb, st in zip(frame_s, label_name, shape_type, strict=True)]
    csv_head_quoted = csv_head
    if any('"' in name for name in label_name.tolist()):
        csv_head_quoted = [h.replace('"', '""') for h in csv_head]  # only the label can hold a quote

    # per finding: its suffix, then the lines
    suffix_id = suffix_of[pattern_pos[ks], cs]
    low = np.flatnonzero(cs == _LOW)
    if low.size:
        # the message writes the similarity with 2 decimals: one suffix per distinct rounded value
        # (``format(v, ".2f")`` and ``format(round(v, 2), ".2f")`` are the same text)
        sims, sim_pos = np.unique(round_like_python(w.min_similarity[ks[low]], 2), return_inverse=True)
        suffix_id[low] = np.array([texts.low_overlap(f"{v:.2f}") for v in sims.tolist()], dtype=np.int64)[sim_pos]
    suffixes = texts.suffixes
    ids = suffix_id.tolist()
    sfx_json = [suffixes[i].json for i in ids]
    # a row's message is quoted when its suffix or its label needs it
    suffix_quote = np.array([x.quote for x in suffixes], dtype=np.bool_)
    quoted = (suffix_quote[suffix_id] | label_quote[ks].astype(np.bool_)).tolist()
    sfx_csv = [suffixes[i].csv_quoted if q else suffixes[i].csv for i, q in zip(ids, quoted, strict=True)]
    kind = [_KINDS[c] for c in cs.tolist()]
    k_list = ks.tolist()
    fr_f = frame_s[ks].tolist()
    json_lines = [
        f'{{"frame": {fr}, "kind": "{kd}"{mid_json[k]}{sj}"}}'
        for fr, kd, k, sj in zip(fr_f, kind, k_list, sfx_json, strict=True)
    ]
    csv_rows = [
        f'{fr},{kd}{csv_cells[k]}"{csv_head_quoted[k]}{sc}' if q else f"{fr},{kd}{csv_cells[k]}{csv_head[k]}{sc}"
        for fr, kd, k, sc, q in zip(fr_f, kind, k_list, sfx_csv, quoted, strict=True)
    ]
    return json_lines, csv_rows, w.frame[ks]


def _distinct_rows(rows: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """``(first, pos)``: a row index per distinct row of ``rows (K, R)`` and each row's position in
    ``first`` (as ``np.unique(axis=0)``, by one integer per row when the values allow it)."""
    if rows.size and rows.min() >= -1:
        base = int(rows.max()) + 2
        if base ** rows.shape[1] < 2**62:
            key = (rows + 1) @ (base ** np.arange(rows.shape[1], dtype=np.int64))
            _, first, pos = np.unique(key, return_index=True, return_inverse=True)
            return first, pos.reshape(-1)
    _, first, pos = np.unique(rows, axis=0, return_index=True, return_inverse=True)
    return first, pos.reshape(-1)


def _with_tags(
    batch: tuple[list[str], list[str], npt.NDArray[np.int64]], tags: Sequence[Any], tag_frames: npt.NDArray[np.int64]
) -> Batch:
    """The window's lines with its tag findings merged in (last on their frame), as a batch."""
    json_lines, csv_rows, frames = batch
    if tags:
        names = report.FINDING_COLUMNS
        buf = io.StringIO()
        writer = csv.writer(buf)
        for f in tags:
            row = report._clean(report.finding_record(f))
            json_lines.append(json.dumps(row))
            writer.writerow([report._cell(row[n]) for n in names])
            csv_rows.append(buf.getvalue())
            buf.seek(0)
            buf.truncate()
        order = np.argsort(np.concatenate([frames, tag_frames]), kind="stable").tolist()
        json_lines = [json_lines[i] for i in order]
        csv_rows = [csv_rows[i] for i in order]
    return json_lines, "".join(csv_rows)

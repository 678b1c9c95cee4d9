"""A consensus run's findings as report JSON lines and ``findings.csv`` rows, from the columns.

The per-object writer builds a :class:`~cvat_ext.qa.findings.Finding`, a dict and a CSV row per
finding (300,000 on a 10,000-frame job with a sloppy annotator). Here the text is assembled from
the :class:`~cvat_ext.consensus.report.FindingBlock` columns, a window of clusters at a time:

* per **cluster**: the frame, the box (rounded with NumPy, its four numbers joined in one encode
  per window, for JSON and for CSV), the similarity and score texts;
* per **(shape type, label, member pattern)**, a few dozen in a window: the text before the box,
  per kind; per **(triple, message suffix)**: the message after the frame (a quoted CSV message
  gets its quote before ``frame``);
* per member pattern (present / missing / labels by annotator) and label: their JSON and CSV
  texts and each kind's message suffix, formatted once for the run
  (:func:`~cvat_ext.consensus.report.finding_message` stays the one definition of the messages:
  the suffixes are cut from it);
* per **finding**: one f-string for its JSON line and one for its CSV row, from those parts
  gathered by cluster (no per-cluster line part is built and copied again, no dict, no
  ``Finding``, no ``json.dumps``).

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
from cvat_ext.consensus.report_text import (
    csv_field,
    float_row_texts,
    gather_texts,
    json_and_csv_texts,
    needs_quotes,
    round_like_python,
)
from cvat_ext.rows import distinct_rows

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

    # per cluster: the numbers' texts
    frame_s = np.array(list(map(str, w.frame.tolist())), dtype=object)
    box_json, box_csv = float_row_texts(round_like_python(w.xyxy, 2), (", ", ";"))
    sim_json, sim_csv = json_and_csv_texts(round_like_python(w.min_similarity, 6))
    score_json, score_csv = json_and_csv_texts(round_like_python(w.score, 6))
    kept = w.kept.astype(np.int64)

    # per (shape type, label, member pattern), a few dozen in a window: the texts they fix
    label_ids, label_pos = np.unique(w.label, return_inverse=True)
    label_rows = [texts.label(int(i)) for i in label_ids.tolist()]
    patterns = distinct_rows(w.labels)
    first_row, pattern_pos = patterns.first, patterns.inverse
    pattern_rows = [texts.pattern(tuple(m)) for m in w.labels[first_row].tolist()]
    suffix_of = np.array([p[2] for p in pattern_rows], dtype=np.int64).reshape(-1, len(_KINDS))
    triples = np.stack([w.type_code.astype(np.int64), label_pos.reshape(-1), pattern_pos], axis=1)
    distinct_triples = distinct_rows(triples)
    first_triple, triple_pos = distinct_triples.first, distinct_triples.inverse
    triple_rows = [
        (_SHAPE_TYPES[t], label_rows[lb], pattern_rows[pt]) for t, lb, pt in triples[first_triple].tolist()
    ]

    # per finding: its message suffix (by member pattern and kind; low overlap: by similarity)
    suffix_id = suffix_of[pattern_pos[ks], cs]
    low = np.flatnonzero(cs == _LOW)
    if low.size:
        # the message writes the similarity with 2 decimals: one suffix per distinct rounded value
        # (``format(v, ".2f")`` and ``format(round(v, 2), ".2f")`` are the same text)
        sims, sim_pos = np.unique(round_like_python(w.min_similarity[ks[low]], 2), return_inverse=True)
        suffix_id[low] = np.array([texts.low_overlap(f"{v:.2f}") for v in sims.tolist()], dtype=np.int64)[sim_pos]

    # the text before the box, per (triple, kind): kind, shape type, label, members
    n_kinds = len(_KINDS)
    head_json, head_csv = [], []
    for st, (_, label_json, _, label_csv, _), (pattern_json, pattern_csv, _) in triple_rows:
        for kind in _KINDS:
            head_json.append(
                f', "kind": "{kind}", "shape_type": "{st}", "label": {label_json}, {pattern_json}, "xyxy": ['
            )
            head_csv.append(f",{kind},{st},{label_csv},{pattern_csv},")
    finding_triple = triple_pos[ks]
    head_pos = finding_triple * n_kinds + cs
    # the message after the frame, per (triple, suffix): label, shape type, suffix; a CSV row's
    # message is quoted when its suffix or its label needs it (the quote goes before "frame")
    pairs = np.stack([finding_triple, suffix_id], axis=1)
    distinct_pairs = distinct_rows(pairs)
    first_pair, pair_pos = distinct_pairs.first, distinct_pairs.inverse
    tail_json, tail_csv, quote_csv = [], [], []
    for t, sid in pairs[first_pair].tolist():
        st, (name, _, escaped, _, label_quote), _ = triple_rows[t]
        suffix = texts.suffixes[sid]
        tail_json.append(f'{escaped} {st}{suffix.json}"}}')
        if suffix.quote or label_quote:
            tail_csv.append(f"{name} {st}".replace('"', '""') + suffix.csv_quoted)  # only the label can hold a quote
            quote_csv.append('"')
        else:
            tail_csv.append(f"{name} {st}{suffix.csv}")
            quote_csv.append("")

    # the lines: one f-string per finding, its cluster's texts gathered by ``ks``
    fr_f = frame_s[ks].tolist()
    json_lines = [
        f'{{"frame": {fr}{hd}{bx}], "min_similarity": {sm}, "score": {sc}, "kept": {kp}, "message": "frame {fr}: {tl}'
        for fr, hd, bx, sm, sc, kp, tl in zip(
            fr_f, gather_texts(head_json, head_pos), gather_texts(box_json, ks), gather_texts(sim_json, ks),
            gather_texts(score_json, ks), _JSON_BOOL[kept[ks]].tolist(), gather_texts(tail_json, pair_pos),
            strict=True,
        )
    ]  # fmt: skip
    csv_rows = [
        f"{fr}{hd}{bx},{sm},{sc},{kp},{q}frame {fr}: {tl}"
        for fr, hd, bx, sm, sc, kp, q, tl in zip(
            fr_f, gather_texts(head_csv, head_pos), gather_texts(box_csv, ks), gather_texts(sim_csv, ks),
            gather_texts(score_csv, ks), _CSV_BOOL[kept[ks]].tolist(), gather_texts(quote_csv, pair_pos),
            gather_texts(tail_csv, pair_pos), strict=True,
        )
    ]  # fmt: skip
    return json_lines, csv_rows, w.frame[ks]


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

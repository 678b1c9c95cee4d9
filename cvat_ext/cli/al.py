"""``cvat-ext al``: rank frames so the most informative are labeled first.

``rank`` reads model predictions (scores), consensus reports and rule findings, scores every
frame of the jobs given by ``--meta`` and prints the top K (table, CSV or JSON); with
``--create-gt-job TASK_ID`` it also creates the task's CVAT ground-truth job over those frames.
``round`` and ``rounds`` (:mod:`cvat_ext.cli.al_rounds`) run the loop against CVAT.
Bad input ends with one line naming the file and exit code 2 (top-level CLI).
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import click

from cvat_ext.active_learning import sources
from cvat_ext.active_learning.ranking import Ranking, RankParams, parse_weights, rank_frames
from cvat_ext.active_learning.signals import (
    ConsensusFrames,
    FindingCounts,
    FrameSet,
    IntArray,
    Prelabels,
    Signal,
    UncertaintyParams,
    disagreement_signal,
    findings_signal,
    uncertainty_signal,
)
from cvat_ext.cli.al_rounds import round_cmd, rounds_cmd
from cvat_ext.cli.cvat import Connection, connection_options
from cvat_ext.errors import ConfigError
from cvat_ext.inputs.crosscheck import check_overlap
from cvat_ext.inputs.files import read_meta
from cvat_ext.inputs.kinds import FileKind, expect_kind

log = logging.getLogger(__name__)



class _FrameRows(Protocol):
    """A table read from one input file: one task frame index per row."""

    @property
    def frame_idx(self) -> IntArray: ...


T = TypeVar("T", bound=_FrameRows)


@click.group(name="al", context_settings={"help_option_names": ["-h", "--help"]})
def group() -> None:
    """Active learning: rank frames so the most informative are labeled first; run rounds against CVAT."""


group.add_command(round_cmd)
group.add_command(rounds_cmd)


def _meta_args(values: Sequence[str]) -> list[tuple[str, Path]]:
    """``[NAME=]PATH`` per job; NAME defaults to the file name without extension."""
    out: list[tuple[str, Path]] = []
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or "/" in name or not name:
            name, path = Path(value).stem, value
        if not path:
            raise ConfigError(f"--meta {value!r}: expected [NAME=]PATH, e.g. job812=meta_812.json")
        if name in {n for n, _ in out}:
            raise ConfigError(f"--meta: job name {name!r} given twice (use NAME=PATH)")
        out.append((name, Path(path)))
    return out


def _band(value: str) -> tuple[float, float]:
    lo, sep, hi = value.partition(",")
    try:
        if not sep:
            raise ValueError
        return float(lo), float(hi)
    except ValueError:
        raise ConfigError(f"--ambiguous-band {value!r}: expected LOW,HIGH, e.g. 0.3,0.7") from None


def _checked(frames: FrameSet, path: Path, kind: FileKind, option: str, read: Callable[[Path], T], what: str) -> T:
    """One input file: its kind, then its rows against the --meta frames (all outside: an error;
    some outside: a warning, as predictions may cover a whole task)."""
    expect_kind(path, kind, option)
    table = read(path)
    frame_idx = table.frame_idx
    _, inside = frames.positions(frame_idx)
    outside = check_overlap(str(path), what, frame_idx, inside, f"the --meta jobs ({', '.join(frames.job_names)})")
    if outside:
        click.echo(f"warning: {path}: {outside} {what} on frames outside the --meta jobs were ignored", err=True)
    return table


def build_signals(
    frames: FrameSet,
    predictions: Sequence[Path],
    reports: Sequence[Path],
    findings: Sequence[Path],
    uncertainty: UncertaintyParams,
) -> list[Signal]:
    """Read the files and compute one signal per kind of input given."""
    signals: list[Signal] = []
    if predictions:
        det = Prelabels.concat(
            [
                _checked(frames, p, FileKind.ANNOTATIONS, "--predictions", sources.read_predictions, "detections")
                for p in predictions
            ]
        )
        signals.append(uncertainty_signal(frames, det, uncertainty))
    if reports:
        table = ConsensusFrames.concat(
            [
                _checked(
                    frames, p, FileKind.CONSENSUS_REPORT, "--consensus-report", sources.read_consensus_report, "frames"
                )
                for p in reports
            ]
        )
        signals.append(disagreement_signal(frames, table))
    if findings:
        counts = FindingCounts.concat(
            [_checked(frames, p, FileKind.FINDINGS, "--findings", sources.read_findings, "findings") for p in findings]
        )
        signals.append(findings_signal(frames, counts))
    return signals


def ranking_json(ranking: Ranking) -> dict[str, Any]:
    return {
        "frames": len(ranking.frames),
        "jobs": list(ranking.frames.job_names),
        "signals": list(ranking.signals),
        "weights": {k: v for k, v in ranking.weights.items() if k in ranking.signals},
        "nms_window": ranking.params.nms_window,
        "per_job_cap": ranking.params.per_job_cap,
        "picked": [
            {
                "rank": p.rank,
                "frame": p.frame,
                "job": p.job,
                "score": round(p.score, 6),
                "signals": {k: round(v, 6) for k, v in p.signals},
                "contributions": {k: round(v, 6) for k, v in p.contributions},
                "details": {k: round(v, 6) for k, v in p.details},
                "why": p.why(),
            }
            for p in ranking.picked
        ],
    }


def ranking_csv(ranking: Ranking) -> str:
    detail_names = [k for k, _ in ranking.picked[0].details] if ranking.picked else []
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["rank", "frame", "job", "score", *ranking.signals, *detail_names])
    for p in ranking.picked:
        writer.writerow(
            [p.rank, p.frame, p.job, f"{p.score:.6f}"]
            + [f"{v:.6f}" for _, v in p.signals]
            + [f"{v:.6g}" for _, v in p.details]
        )
    return buf.getvalue()


def ranking_table(ranking: Ranking) -> str:
    header = ["rank", "frame", "job", "score", *ranking.signals, "why"]
    rows = [
        [str(p.rank), str(p.frame), p.job, f"{p.score:.3f}", *(f"{v:.3f}" for _, v in p.signals), p.why()]
        for p in ranking.picked
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1] for r in (header, *rows)]
    weights = ", ".join(f"{k}={ranking.weights[k]:g}" for k in ranking.signals)
    lines.append(f"{len(ranking.picked)} of {len(ranking.frames)} frame(s) picked; weights {weights}")
    return "\n".join(lines)


@group.command("rank")
@click.option("--predictions", multiple=True, type=click.Path(path_type=Path),
              help="CVAT annotations JSON with scored shapes (auto-annotate output); repeatable.")
@click.option("--consensus-report", "reports", multiple=True, type=click.Path(path_type=Path),
              help="Report JSON of 'cvat-ext qa consensus --report-out'; repeatable (one per parent job).")
@click.option("--findings", multiple=True, type=click.Path(path_type=Path),
              help="Output of 'cvat-ext rules check --format json'; repeatable.")
@click.option("--meta", "metas", multiple=True, required=True,
              help="[NAME=]PATH job frame meta JSON (GET /api/jobs/{id}/data/meta); one per job, repeatable.")
@click.option("--top", "top_k", type=int, default=20, show_default=True, help="Frames to pick (0: all survivors).")
@click.option("--nms-window", type=int, default=0, show_default=True,
              help="A picked frame suppresses frames within this many task frames (0: off).")
@click.option("--per-job-cap", type=int, default=None, help="Pick at most this many frames per job.")
@click.option("--weights", default="", help="NAME=W,... over uncertainty, disagreement, findings "
              "[default: uncertainty=1,disagreement=1,findings=0.5].")
@click.option("--ambiguous-band", default="0.3,0.7", show_default=True, help="Score band counted as ambiguous.")
@click.option("--empty-prior", type=float, default=0.5, show_default=True,
              help="Uncertainty of a frame without detections.")
@click.option("--format", "out_format", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True)
@click.option("-o", "--out", type=click.Path(path_type=Path), default=None, help="Write here instead of stdout.")
@click.option("--create-gt-job", "gt_task_id", type=int, default=None,
              help="Create this task's CVAT ground-truth job over the picked frames.")
@connection_options
def rank(
    predictions: Sequence[Path],
    reports: Sequence[Path],
    findings: Sequence[Path],
    metas: Sequence[str],
    top_k: int,
    nms_window: int,
    per_job_cap: int | None,
    weights: str,
    ambiguous_band: str,
    empty_prior: float,
    out_format: str,
    out: Path | None,
    gt_task_id: int | None,
    conn: Connection,
) -> None:
    """Rank the frames of the --meta jobs by uncertainty, disagreement and findings; print the top K."""
    if not (predictions or reports or findings):
        raise ConfigError("nothing to rank by: give --predictions, --consensus-report and/or --findings")
    if top_k < 0:
        raise ConfigError(f"--top {top_k}: need >= 0")
    params = RankParams(
        weights=parse_weights(weights), top_k=top_k or None, nms_window=nms_window, per_job_cap=per_job_cap
    )
    uncertainty = UncertaintyParams(band=_band(ambiguous_band), empty_prior=empty_prior)
    frames = sources.frames_from_metas([(name, read_meta(path)) for name, path in _meta_args(metas)])
    ranking = rank_frames(frames, build_signals(frames, predictions, reports, findings, uncertainty), params)

    if out_format == "json":
        text = json.dumps(ranking_json(ranking), indent=1)
    elif out_format == "csv":
        text = ranking_csv(ranking)
    else:
        text = ranking_table(ranking)
    if out is None:
        click.echo(text.rstrip("\n"))
    else:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text if text.endswith("\n") else text + "\n")
        except OSError as exc:
            raise ConfigError(f"{out}: cannot write: {exc.strerror}") from exc

    if gt_task_id is not None:
        if not ranking.picked:
            raise ConfigError(f"task {gt_task_id}: no frame picked, no ground-truth job created")
        with conn.client() as client:
            job = client.create_gt_job(gt_task_id, ranking.frame_indices)
        click.echo(
            f"created ground-truth job {job.id} in task {gt_task_id} over {len(ranking.picked)} frame(s)", err=True
        )

"""``cvat-ext qa``: offline consensus QA on CVAT JSON files (agreement report, CSV tables, merge).

Inputs are what CVAT serves: one ``GET /api/jobs/{id}/annotations`` body per annotator, the labels
(``GET /api/labels``, a list or a paginated page) and the job's frame meta
(``GET /api/jobs/{id}/data/meta``). Bad input ends with one line naming the file (exit code 2).
Each annotation file is read once into columns (:mod:`cvat_ext.annotations.columnar_json`,
a few dozen bytes per object) and the engine cuts its chunks from them
(:mod:`cvat_ext.consensus.table_source`); nothing is parsed twice.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import click

from cvat_ext.errors import ConfigError


@click.group(name="qa")
def group() -> None:
    """Offline consensus QA on CVAT JSON files: agreement report and merge."""


def _replica_args(values: Sequence[str]) -> list[tuple[str, Path]]:
    out: list[tuple[str, Path]] = []
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"--annotations {value!r}: expected NAME=PATH, e.g. ann1=job_812.json")
        if name in {n for n, _ in out}:
            raise ConfigError(f"--annotations: annotator {name!r} given twice")
        out.append((name, Path(path)))
    if len(out) < 2:
        raise ConfigError(f"--annotations: need at least 2 replicas, got {len(out)}")
    return out


def _quorum(value: str) -> int | None:
    if value == "auto":
        return None
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"--quorum {value!r}: expected a positive count or 'auto'")
    return int(value)


def _keypoint_sigmas(values: Sequence[str]) -> str | dict[str, list[float]]:
    """``default`` | ``estimate`` | one ``SKELETON=S1,S2,...`` per skeleton label."""
    if not values:
        return "default"
    if len(values) == 1 and values[0] in ("default", "estimate"):
        return values[0]
    table: dict[str, list[float]] = {}
    for value in values:
        name, sep, numbers = value.partition("=")
        try:
            sigmas = [float(x) for x in numbers.split(",")]
        except ValueError:
            sigmas = []
        if not sep or not name or not sigmas:
            raise ConfigError(
                f"--keypoint-sigmas {value!r}: expected 'default', 'estimate' or SKELETON=S1,S2,... "
                "(one sigma per keypoint, in the label's sublabel order)"
            )
        table[name] = sigmas
    return table


@group.command("consensus")
@click.option(
    "--annotations",
    "replicas",
    multiple=True,
    required=True,
    metavar="NAME=PATH",
    help="One annotator's job annotations JSON (repeat per replica).",
)
@click.option("--labels", "labels_path", required=True, type=click.Path(path_type=Path), help="Labels JSON.")
@click.option("--meta", "meta_path", required=True, type=click.Path(path_type=Path), help="Job data meta JSON.")
@click.option("--report-out", type=click.Path(path_type=Path), help="Write the agreement report (JSON).")
@click.option("--csv-dir", type=click.Path(path_type=Path), help="Write the report tables as CSV files here.")
@click.option("--merged-out", type=click.Path(path_type=Path), help="Write the merged annotations (CVAT JSON).")
@click.option("--iou-thr", type=float, default=0.5, show_default=True, help="Similarity needed to match.")
@click.option(
    "--quorum",
    "quorum_text",
    default="auto",
    show_default=True,
    help="Annotators needed to keep an object, or 'auto' (existence model).",
)
@click.option(
    "--method",
    type=click.Choice(["wbf", "staple", "nearest"]),
    default="wbf",
    show_default=True,
    help="wbf: reliability-weighted fusion; staple: STAPLE for masks/polygons; nearest: CVAT's rule.",
)
@click.option(
    "--keypoint-sigmas",
    "keypoint_sigmas",
    multiple=True,
    metavar="default|estimate|SKELETON=S1,S2,...",
    help="Skeleton OKS sigmas: one sigma, 0.09, for every keypoint (default), estimated from the replicas, or given "
    "per keypoint (repeat per skeleton label).",
)
@click.option("--match-within-labels", is_flag=True, help="Match objects of the same label only.")
@click.option("--chunk-frames", type=int, default=256, show_default=True, help="Frames processed at once.")
@click.option(
    "--min-agreement",
    type=click.FloatRange(0.0, 1.0),
    default=0.9,
    show_default=True,
    help="As the sidecar's consensus.min_agreement, for the decision line.",
)
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr (default: when a TTY).")
def consensus(
    replicas: Sequence[str],
    labels_path: Path,
    meta_path: Path,
    report_out: Path | None,
    csv_dir: Path | None,
    merged_out: Path | None,
    iou_thr: float,
    quorum_text: str,
    method: str,
    keypoint_sigmas: Sequence[str],
    match_within_labels: bool,
    chunk_frames: int,
    min_agreement: float,
    progress: bool | None,
) -> None:
    """Score agreement between consensus replicas of one job and merge them; the last line says
    what the sidecar would do with the parent job (``--min-agreement``; rule findings aside)."""
    # imports follow the work: the small files are read before the engine (SciPy) is imported
    named = _replica_args(replicas)
    quorum = _quorum(quorum_text)
    sigmas = _keypoint_sigmas(keypoint_sigmas)
    from cvat_ext.inputs.files import read_labels, read_meta
    from cvat_ext.inputs.kinds import FileKind, expect_kind

    labels = read_labels(labels_path)
    meta = read_meta(meta_path)
    for name, path in named:
        expect_kind(path, FileKind.ANNOTATIONS, f"--annotations {name}=")
    from cvat_ext.consensus.settings import ConsensusSettings

    settings = ConsensusSettings.parse(
        {
            "iou_thr": iou_thr,
            "quorum": quorum,
            "method": method,
            "match_across_labels": not match_within_labels,
            "keypoint_sigmas": sigmas,
            "chunk_frames": chunk_frames,
        },
        where="command line",
    )
    from cvat_ext.annotations.columnar_json import read_annotations_file

    # each replica is validated and read into columns once; the engine cuts its chunks from them
    tables = {name: read_annotations_file(path, last_frame=meta.stop_frame) for name, path in named}
    from cvat_ext.inputs.crosscheck import check_annotation_file, columns_consistent

    for name, path in named:  # after the reader: it names malformed objects first
        # the columns show most files clean at once; the others are read again to name the object
        if not columns_consistent(tables[name], meta=meta, labels=labels):
            check_annotation_file(path, meta=meta, meta_path=str(meta_path), labels=labels,
                                  labels_path=str(labels_path))
    from cvat_ext.consensus.report import annotator_line
    from cvat_ext.consensus.table_source import score_tables
    from cvat_ext.consensus.writers import write_outputs

    show = sys.stderr.isatty() if progress is None else progress
    # two passes over the frames (match, then merge), three when sigmas are estimated first
    total = len(meta.frame_indices()) * (3 if settings.keypoint_sigmas == "estimate" else 2)
    with ExitStack() as stack:
        if show:
            from tqdm import tqdm

            bar = stack.enter_context(tqdm(total=total, desc="consensus", unit="frame", file=sys.stderr))

            def tick(stage: str, frames: int) -> None:
                bar.set_description(f"consensus ({stage})", refresh=False)
                bar.update(frames)

            result = score_tables(tables, labels, meta, settings, progress=tick)
        else:
            result = score_tables(tables, labels, meta, settings)
    del tables  # the result holds what the writers need: the replicas' columns can go
    write_outputs(result, report_out=report_out, csv_dir=csv_dir, merged_out=merged_out)
    s = result.summary
    click.echo(
        f"{s.frames} frames, {len(s.annotators)} annotators, {s.clusters} clusters, {s.kept} merged; "
        f"F1 {s.f1:.3f}, mean IoU {s.mean_iou:.3f}, alpha {s.alpha_lol:.3f} (labels {s.alpha_label:.3f}); "
        f"{result.n_findings} findings"
    )
    for a in result.annotators:
        click.echo(f"  {a.annotator}: {annotator_line(a)}")
    from cvat_ext.qa.decision import Agreement, Policy, decide

    agreement = Agreement(0.0 if math.isnan(s.f1) else s.f1, measurable=s.clusters > 0)
    decided = decide([], Policy(min_agreement=min_agreement), job_id=0, agreement=agreement)
    click.echo(f"sidecar decision: {decided.verdict} ({decided.reason})")

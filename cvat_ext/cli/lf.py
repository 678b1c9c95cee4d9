"""``cvat-ext lf``: programmatic labeling of a CVAT task with labeling functions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cvat_ext.cli.cvat import Connection, connection_options

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from cvat_ext.cvat.client import CvatClient
    from cvat_ext.labeling_functions.candidates import Candidates
    from cvat_ext.labeling_functions.cvat_task import TaskCandidates, TaskImages
    from cvat_ext.labeling_functions.functions import LabelingFunction


@click.group("lf")
def group() -> None:
    """Labeling functions: check packs, label a CVAT task, analyse LFs."""


@group.command("check")
@click.argument("packs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def check_cmd(packs: tuple[Path, ...]) -> None:
    """Load LF packs (.yaml heuristics, .py modules) and list their functions."""
    from cvat_ext.labeling_functions.apply import load_lfs

    lfs = load_lfs(packs)
    for lf in lfs:
        kind = "tags" if lf.target == "image" else "labels"
        click.echo(f"{lf.name:<38} {lf.source:<28} {kind} {', '.join(lf.labels)}")
    click.echo(f"{len(lfs)} labeling functions")


@group.command("apply")
@click.option("--task", "task_id", type=int, required=True, help="CVAT task id.")
@click.option(
    "--lfs",
    "packs",
    multiple=True,
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="An LF pack: .yaml heuristics or a .py module (repeatable).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write one JSON line per candidate: kind (shape or tag), job, frame, shape id, label, confidence.",
)
@click.option(
    "--write", is_flag=True, help="Relabel the task's shapes and add the predicted tags to its frames in CVAT."
)
@click.option("--min-confidence", type=float, default=0.8, show_default=True, help="For --write.")
@click.option(
    "--pixels/--no-pixels",
    default=True,
    show_default=True,
    help="Fetch the frames for colour features (--no-pixels: no download, colour features are NaN).",
)
@connection_options
def apply_cmd(
    task_id: int,
    packs: tuple[Path, ...],
    output: Path | None,
    write: bool,
    min_confidence: float,
    pixels: bool,
    conn: Connection,
) -> None:
    """Apply LFs to every shape of task N (object LFs) and to every frame (image LFs, whose labels
    are tags), combine the votes with the label model, print the LF analysis (accuracy against the
    task's GT job when it has one); optionally write the labels and tags."""
    from cvat_ext.labeling_functions.apply import by_target, load_lfs
    from cvat_ext.labeling_functions.cvat_task import read_task

    groups = by_target(load_lfs(packs))
    with conn.client() as client:
        read = read_task(client, task_id, objects="object" in groups, images="image" in groups, pixels=pixels)
        lines: list[dict[str, Any]] = []
        if read.objects is not None:
            lines += _label_objects(client, task_id, read.objects, groups["object"], write, min_confidence)
        if read.images is not None:
            lines += _label_images(client, task_id, read.images, groups["image"], write, min_confidence)
    if output is not None:
        with output.open("w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(line) + "\n" for line in lines)
        click.echo(f"predictions written to {output}")


@dataclass(frozen=True)
class _Labelled:
    """One target's LF run: label model output and the LF analysis already printed."""

    labels: tuple[str, ...]
    predicted: npt.NDArray[np.int64]
    confidence: npt.NDArray[np.float64]

    def name(self, i: int) -> str | None:
        return self.labels[int(self.predicted[i])] if self.predicted[i] >= 0 else None


def _run_and_report(
    lfs: list[LabelingFunction], candidates: Candidates, gold: npt.NDArray[np.int64] | None, noun: str, verb: str
) -> _Labelled:
    """Apply ``lfs``, fit the label model, print the analysis table and the summary lines."""
    from cvat_ext.labeling_functions.analysis import analyse, format_table
    from cvat_ext.labeling_functions.apply import apply_lfs
    from cvat_ext.labeling_functions.label_model import fit_label_model

    run = apply_lfs(lfs, candidates)
    model = fit_label_model(run.matrix, len(run.labels))
    click.echo(format_table(analyse(run.matrix, run.names, run.labels, gold)))
    for failure in run.failures:
        click.echo(f"labeling function {failure.name} failed and was skipped: {failure.reason}", err=True)
    predicted = model.label
    click.echo(f"{len(candidates)} {noun}, {int((predicted >= 0).sum())} {verb} by the label model")
    if gold is not None and (gold >= 0).any():
        checked = gold >= 0
        accuracy = float((predicted[checked] == gold[checked]).mean())
        click.echo(f"label model accuracy on {int(checked.sum())} GT-matched {noun}: {accuracy:.3f}")
    return _Labelled(run.labels, predicted, model.confidence)


def _label_objects(
    client: CvatClient,
    task_id: int,
    task: TaskCandidates,
    lfs: list[LabelingFunction],
    write: bool,
    min_confidence: float,
) -> list[dict[str, Any]]:
    from cvat_ext.labeling_functions.cvat_task import gold_labels, write_labels

    gold = gold_labels(client, task_id, task, lfs[0].labels)
    done = _run_and_report(lfs, task.candidates, gold, "candidates", "labelled")
    if write:
        changed = write_labels(
            client, task, done.predicted, done.confidence, done.labels, min_confidence=min_confidence
        )
        click.echo(f"{changed} shapes relabelled in CVAT")
    return [
        {
            "kind": "shape",
            "job_id": int(task.job_id[i]),
            "frame": int(task.candidates.frame[i]),
            "shape_id": int(task.shape_id[i]),
            "label": done.name(i),
            "confidence": round(float(done.confidence[i]), 4),
        }
        for i in range(len(task.candidates))
    ]


def _label_images(
    client: CvatClient,
    task_id: int,
    images: TaskImages,
    lfs: list[LabelingFunction],
    write: bool,
    min_confidence: float,
) -> list[dict[str, Any]]:
    from cvat_ext.labeling_functions.cvat_task import gold_tags, write_tags

    click.echo("whole images (tag LFs):")
    gold = gold_tags(client, task_id, images, lfs[0].labels)
    done = _run_and_report(lfs, images.candidates, gold, "images", "tagged")
    if write:
        added = write_tags(client, images, done.predicted, done.confidence, done.labels, min_confidence=min_confidence)
        click.echo(f"{added} tags added in CVAT")
    return [
        {
            "kind": "tag",
            "job_id": int(images.job_id[i]),
            "frame": int(images.candidates.frame[i]),
            "label": done.name(i),
            "confidence": round(float(done.confidence[i]), 4),
        }
        for i in range(len(images.candidates))
    ]

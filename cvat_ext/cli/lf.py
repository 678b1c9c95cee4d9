"""``cvat-ext lf``: programmatic labeling of a CVAT task with labeling functions."""

from __future__ import annotations

import json
from pathlib import Path

import click

from cvat_ext.cli.cvat import Connection, connection_options


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
        click.echo(f"{lf.name:<36} {lf.source:<28} labels {', '.join(lf.labels)}")
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
    help="Write one JSON line per candidate: job, frame, shape id, label, confidence.",
)
@click.option("--write", is_flag=True, help="Relabel the task's shapes in CVAT with the predicted labels.")
@click.option("--min-confidence", type=float, default=0.8, show_default=True, help="For --write.")
@connection_options
def apply_cmd(
    task_id: int,
    packs: tuple[Path, ...],
    output: Path | None,
    write: bool,
    min_confidence: float,
    conn: Connection,
) -> None:
    """Apply LFs to every shape of task N, combine the votes with the label model, print the LF
    analysis (accuracy against the task's GT job when it has one); optionally write the labels."""
    from cvat_ext.labeling_functions.analysis import analyse, format_table
    from cvat_ext.labeling_functions.apply import apply_lfs, load_lfs
    from cvat_ext.labeling_functions.cvat_task import gold_labels, task_candidates, write_labels
    from cvat_ext.labeling_functions.label_model import fit_label_model

    lfs = load_lfs(packs)
    with conn.client() as client:
        task = task_candidates(client, task_id)
        run = apply_lfs(lfs, task.candidates)
        model = fit_label_model(run.matrix, len(run.labels))
        gold = gold_labels(client, task_id, task, run.labels)
        click.echo(format_table(analyse(run.matrix, run.names, run.labels, gold)))
        for failure in run.failures:
            click.echo(f"labeling function {failure.name} failed and was skipped: {failure.reason}", err=True)
        predicted, confidence = model.label, model.confidence
        labelled = int((predicted >= 0).sum())
        click.echo(f"{len(task.candidates)} candidates, {labelled} labelled by the label model")
        if gold is not None and (gold >= 0).any():
            checked = gold >= 0
            accuracy = float((predicted[checked] == gold[checked]).mean())
            click.echo(f"label model accuracy on {int(checked.sum())} GT-matched candidates: {accuracy:.3f}")
        if output is not None:
            with output.open("w", encoding="utf-8") as fh:
                for i in range(len(task.candidates)):
                    label = run.labels[int(predicted[i])] if predicted[i] >= 0 else None
                    fh.write(
                        json.dumps(
                            {
                                "job_id": int(task.job_id[i]),
                                "frame": int(task.candidates.frame[i]),
                                "shape_id": int(task.shape_id[i]),
                                "label": label,
                                "confidence": round(float(confidence[i]), 4),
                            }
                        )
                        + "\n"
                    )
            click.echo(f"predictions written to {output}")
        if write:
            changed = write_labels(client, task, predicted, confidence, run.labels, min_confidence=min_confidence)
            click.echo(f"{changed} shapes relabelled in CVAT")

"""``cvat-ext rules``: lint rule packs, check annotation files against them, export the JSON Schema.

Exit codes (for CI): 0 clean; 1 rule-file errors (``lint``) or findings at or above ``--fail-on``
(``check``); 2 unreadable input (bad JSON, unknown file), reported by the top-level CLI.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import click
from tqdm import tqdm

from cvat_ext.annotations.columnar_json import ReplicaColumns
from cvat_ext.inputs.crosscheck import check_annotation_file, columns_consistent
from cvat_ext.inputs.files import read_labels, read_meta, read_rule_input
from cvat_ext.inputs.kinds import FileKind, expect_kind
from cvat_ext.qa.decision import Policy, decide
from cvat_ext.rules import Finding, Severity, check_job, lint_files, load_packs, rule_file_json_schema
from cvat_ext.rules.loader import check_label_names


class CheckFailed(click.ClickException):
    """Exit status 1 with a one-line reason on stderr (``cvat_ext.cli.main`` returns ``exit_code``)."""

    exit_code = 1


@click.group(name="rules")
def group() -> None:
    """Validation rule packs (qa_rules/*.yaml): lint, check annotations, export the schema."""


@group.command("lint")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--labels",
    type=click.Path(path_type=Path),
    default=None,
    help="CVAT labels JSON: also report label names the rules use that the task does not have.",
)
@click.option("--strict", is_flag=True, help="With --labels: unknown label names are errors, not warnings.")
def lint(paths: Sequence[Path], labels: Path | None, strict: bool) -> None:
    """Validate rule files (with their includes); print every problem as FILE:LINE rule 'ID': what."""
    for path in paths:
        expect_kind(path, FileKind.RULES, "the rule file arguments")
    problems = lint_files(paths)
    if labels is not None and not problems:
        label_set = read_labels(labels)
        unknown = [p for path in paths for p in check_label_names(load_packs([path]), label_set)]
        if strict:
            problems.extend(unknown)
        else:
            for problem in unknown:
                click.echo(f"warning: {problem}", err=True)
    for problem in problems:
        click.echo(f"error: {problem}", err=True)
    if problems:
        raise CheckFailed(f"{len(problems)} problem(s) in {len(paths)} rule file(s)")
    click.echo(f"{len(paths)} rule file(s) OK")


def _table(findings: Sequence[Finding]) -> str:
    header = ("frame", "severity", "rule", "object", "message")
    rows = [
        (
            str(f.frame),
            f.severity.value,
            f.code,
            str(f.object_id) if f.object_id is not None else (f"track {f.track_id}" if f.track_id is not None else "-"),
            f.message,
        )
        for f in findings
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths, strict=True)) + "  " + row[4]
        for row in (header, *rows)
    ]
    return "\n".join(lines)


@group.command("check")
@click.option(
    "--rules",
    "rule_paths",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="Rule file(s); later files override earlier ones by rule id.",
)
@click.option(
    "--annotations",
    required=True,
    type=click.Path(path_type=Path),
    help="CVAT job annotations JSON (GET /api/jobs/{id}/annotations).",
)
@click.option(
    "--labels",
    required=True,
    type=click.Path(path_type=Path),
    help="CVAT labels JSON (GET /api/labels?task_id=..., list or paginated).",
)
@click.option(
    "--meta",
    required=True,
    type=click.Path(path_type=Path),
    help="CVAT job data meta JSON (GET /api/jobs/{id}/data/meta).",
)
@click.option(
    "--format", "out_format", type=click.Choice(["table", "json", "quiet"]), default="table", show_default=True
)
@click.option("--job-id", type=int, default=None, help="Job id to put on findings.")
@click.option("--annotator", default=None, help="Annotator (job assignee) to put on findings.")
@click.option("--project-id", type=int, default=None, help="Project id, for rules scoped to projects.")
@click.option("--task-id", type=int, default=None, help="Task id, for rules scoped to tasks.")
@click.option(
    "--fail-on",
    type=click.Choice(["error", "warning", "never"]),
    default="error",
    show_default=True,
    help="Exit 1 when a finding of this severity (or worse) exists.",
)
@click.option(
    "--max-errors",
    type=int,
    default=5,
    show_default=True,
    help="As the sidecar's rules.max_errors, for the decision line of the table.",
)
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr (default: when a TTY).")
def check(
    rule_paths: Sequence[Path],
    annotations: Path,
    labels: Path,
    meta: Path,
    out_format: str,
    job_id: int | None,
    annotator: str | None,
    project_id: int | None,
    task_id: int | None,
    fail_on: str,
    max_errors: int,
    progress: bool | None,
) -> None:
    """Run rule packs on one job's annotation JSON; table, JSON or only the exit code.

    The table ends with what the sidecar would do with the job (the pack's actions, ``--max-errors``)."""
    for rule_path in rule_paths:
        expect_kind(rule_path, FileKind.RULES, "--rules")
    pack = load_packs(list(rule_paths))
    ann = read_rule_input(annotations)
    label_set = read_labels(labels)
    job_meta = read_meta(meta)
    if not isinstance(ann, ReplicaColumns) or not columns_consistent(ann, meta=job_meta, labels=label_set):
        check_annotation_file(
            annotations, meta=job_meta, meta_path=str(meta), labels=label_set, labels_path=str(labels)
        )
    show = sys.stderr.isatty() if progress is None else progress
    with tqdm(desc="rules", unit="frame", file=sys.stderr, disable=not show) as bar:

        def tick(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        findings = check_job(
            ann,
            label_set,
            job_meta,
            pack,
            job_id=job_id,
            annotator=annotator,
            project_id=project_id,
            task_id=task_id,
            progress=tick,
        )
    errors = sum(f.severity is Severity.ERROR for f in findings)
    if out_format == "json":
        summary = {"pack": pack.name, "rules": len(pack.rules), "errors": errors, "warnings": len(findings) - errors}
        click.echo(json.dumps({"summary": summary, "findings": [f.rule_record() for f in findings]}, indent=2))
    elif out_format == "table":
        if findings:
            click.echo(_table(findings))
        click.echo(
            f"{len(findings)} finding(s): {errors} error(s), {len(findings) - errors} warning(s) "
            f"from {len(pack.rules)} rule(s) of {pack.name}"
        )
        decided = decide(findings, Policy(max_errors=max_errors), job_id=job_id or 0)
        click.echo(f"sidecar decision: {decided.verdict} ({decided.reason})")
    failing = errors if fail_on == "error" else len(findings) if fail_on == "warning" else 0
    if failing:
        raise CheckFailed(f"{failing} finding(s) at or above severity {fail_on}")


@group.command("schema")
def schema() -> None:
    """Print the JSON Schema of a rule file (point your editor's YAML plugin at it)."""
    click.echo(json.dumps(rule_file_json_schema(), indent=2))

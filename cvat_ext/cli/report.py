"""``cvat-ext report``: what the sidecar recorded about people, for managers at a terminal.

``report annotators --project N`` prints each annotator's scorecard (:mod:`cvat_ext.workforce.scorecards`)
from the sidecar's state store (``--state``, the sidecar's ``state.url``; ``--org``, the
organization the sidecar ran in).
"""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import UTC, datetime

import click

from cvat_ext.cli.al_rounds import state_option
from cvat_ext.errors import ConfigError

COLUMNS = ("username", "status", "jobs", "frames", "objects", "gold_frames", "gold_honeypot_frames",
           "honeypots_unread_jobs", "gold_accuracy", "estimated_f1",
           "estimated_f1_se", "estimated_gt_objects", "vs_consensus", "rule_errors_per_100", "issues_opened",
           "issues_resolved", "median_hours", "objects_per_hour",
           "jobs_7d", "gold_7d", "jobs_30d", "gold_30d")


@click.group(name="report", context_settings={"help_option_names": ["-h", "--help"]})
def group() -> None:
    """Reports from the sidecar's state store."""


def _since(value: str | None) -> float | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"--since {value!r}: expected an ISO date or time, e.g. 2026-11-01") from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _cell(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"
    return str(value) or "—"


@group.command(name="annotators")
@click.option("--project", "project_id", type=int, default=None, help="Only this CVAT project (default: all).")
@click.option("--since", default=None, help="Only jobs completed at or after this ISO date/time.")
@click.option("--org", envvar="CVAT_EXT_CVAT__ORG", default="", help="Organization slug the sidecar ran in.")
@click.option("--format", "out_format", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True)
@state_option
def annotators(project_id: int | None, since: str | None, org: str, out_format: str, state_url: str) -> None:
    """Per-annotator scorecards: volume, accuracy on gold, estimated F1 vs truth, agreement vs consensus, rules,
    rework, speed, trend."""
    from cvat_ext.sidecar.state import open_store
    from cvat_ext.workforce.scorecards import scorecards

    store = open_store(state_url, must_exist=True)
    try:
        cards = scorecards(store.scoped(org), project_id=project_id, since=_since(since), now=time.time())
    finally:
        store.close()
    rows = [c.as_dict() for c in cards]
    if out_format == "json":
        click.echo(json.dumps(rows, indent=1))
    elif out_format == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(COLUMNS), extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        click.echo(buf.getvalue().rstrip("\n"))
    elif not rows:
        click.echo("no completed annotator jobs recorded" + (f" in project {project_id}" if project_id else ""))
    else:
        table = [list(COLUMNS)] + [[_cell(r[c]) for c in COLUMNS] for r in rows]
        widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]
        click.echo("\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table))

"""``cvat-ext audit``: export the sidecar's append-only audit log."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from typing import IO

import click

from cvat_ext.sidecar.state import AuditRecord

CSV_COLUMNS = (
    "seq",
    "at",
    "replica",
    "action",
    "job_id",
    "task_id",
    "frame",
    "user_id",
    "reason",
    "before",
    "after",
    "key",
    "org",
)


def write_jsonl(records: Iterator[AuditRecord], out: IO[str]) -> int:
    n = 0
    for rec in records:
        out.write(json.dumps(rec.as_dict(), sort_keys=True) + "\n")
        n += 1
    return n


def write_csv(records: Iterator[AuditRecord], out: IO[str]) -> int:
    """CSV with one row per entry; ``before``/``after`` as JSON text."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    n = 0
    for rec in records:
        d = rec.as_dict()
        d["before"] = json.dumps(d["before"], sort_keys=True)
        d["after"] = json.dumps(d["after"], sort_keys=True)
        writer.writerow(["" if d[c] is None else d[c] for c in CSV_COLUMNS])
        n += 1
    return n


@click.group("audit")
def group() -> None:
    """Export the sidecar's append-only audit log."""


@group.command("export")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Sidecar YAML (for state.url).")
@click.option("--state-url", envvar="CVAT_EXT_STATE__URL", help="State store URL (overrides --config).")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), help="File (default stdout).")
@click.option("--since-seq", type=int, default=0, show_default=True, help="Only entries after this sequence number.")
def export_cmd(config_path: str | None, state_url: str | None, fmt: str, output: str | None, since_seq: int) -> None:
    """Write every audit entry (when, replica, action, job/task/frame/user, why, before -> after)."""
    from cvat_ext.errors import ConfigError
    from cvat_ext.sidecar.config import StateSettings, read_yaml
    from cvat_ext.sidecar.state import open_store

    url = state_url
    if url is None and config_path is not None:
        section = read_yaml(config_path).get("state") or {}
        url = StateSettings.model_validate(section).url.get_secret_value()
    if url is None:
        raise ConfigError("audit export: give --state-url (or CVAT_EXT_STATE__URL) or --config")
    store = open_store(url)
    try:
        writer = write_jsonl if fmt == "jsonl" else write_csv
        if output is None:
            n = writer(store.iter_audit(since_seq=since_seq), sys.stdout)
        else:
            with open(output, "w", encoding="utf-8", newline="") as fh:
                n = writer(store.iter_audit(since_seq=since_seq), fh)
    finally:
        store.close()
    click.echo(f"{n} audit entries exported", err=True)

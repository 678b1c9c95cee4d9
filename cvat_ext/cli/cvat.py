"""``cvat-ext cvat``: check access to a CVAT server, list jobs, fetch a job's annotations, and the
round trip of the offline tools: ``fetch`` / ``fetch-replicas`` save the files ``rules check``,
``al rank`` and ``qa consensus`` read; ``write-back`` puts a merged result into a job (after a
cross-check, a confirmation and a backup of what it replaces).

Connection settings come from options or the environment (options win):
``CVAT_EXT_CVAT__URL``, ``CVAT_EXT_CVAT__ACCESS_TOKEN`` (or ``CVAT_EXT_CVAT__USERNAME`` +
``CVAT_EXT_CVAT__PASSWORD``) and ``CVAT_EXT_CVAT__ORG``.
"""

from __future__ import annotations

import functools
import json
import os
import shlex
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cvat_ext.cvat.annotators import replica_names
from cvat_ext.errors import ConfigError

if TYPE_CHECKING:
    from cvat_ext.cvat.client import CvatClient

JOB_TYPES = ("annotation", "ground_truth", "consensus_replica")
JOB_STAGES = ("annotation", "validation", "acceptance")
JOB_STATES = ("new", "in progress", "completed", "rejected")


@dataclass(frozen=True)
class Connection:
    url: str | None
    token: str | None
    username: str | None
    password: str | None
    org: str | None
    timeout_s: float

    def client(self) -> CvatClient:
        from cvat_ext.cvat.client import CvatClient

        if not self.url:
            raise ConfigError("no CVAT url: pass --url or set CVAT_EXT_CVAT__URL")
        if not self.token and not (self.username and self.password):
            raise ConfigError(
                "no CVAT credentials: pass --token (CVAT_EXT_CVAT__ACCESS_TOKEN) "
                "or --username and --password (CVAT_EXT_CVAT__USERNAME, CVAT_EXT_CVAT__PASSWORD)"
            )
        return CvatClient(
            self.url,
            access_token=self.token or None,
            username=self.username,
            password=self.password,
            org=self.org or None,
            timeout_s=self.timeout_s,
        )


def _parse_when(value: str) -> datetime:
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"expected an ISO 8601 time like 2026-11-23T00:37:20Z, got {value!r}") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def connection_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The connection options (``--url --token --username --password --org --timeout``) of every
    command that talks to CVAT; the command receives them as one ``conn: Connection`` argument."""

    @functools.wraps(fn)
    def with_connection(
        *args: Any,
        url: str | None,
        token: str | None,
        username: str | None,
        password: str | None,
        org: str | None,
        timeout_s: float,
        **kwargs: Any,
    ) -> Any:
        return fn(*args, conn=Connection(url, token, username, password, org, timeout_s), **kwargs)

    options = [
        click.option(
            "--url",
            envvar="CVAT_EXT_CVAT__URL",
            help="CVAT server URL, e.g. http://localhost:8080 [env CVAT_EXT_CVAT__URL].",
        ),
        click.option(
            "--token",
            envvar="CVAT_EXT_CVAT__ACCESS_TOKEN",
            help="Personal access token, sent as 'Authorization: Bearer' [env CVAT_EXT_CVAT__ACCESS_TOKEN].",
        ),
        click.option(
            "--username",
            envvar="CVAT_EXT_CVAT__USERNAME",
            help="Username, instead of a token [env CVAT_EXT_CVAT__USERNAME].",
        ),
        click.option(
            "--password",
            envvar="CVAT_EXT_CVAT__PASSWORD",
            help="Password for --username [env CVAT_EXT_CVAT__PASSWORD].",
        ),
        click.option(
            "--org",
            envvar="CVAT_EXT_CVAT__ORG",
            help="Organization slug sent as X-Organization on every call [env CVAT_EXT_CVAT__ORG].",
        ),
        click.option(
            "--timeout", "timeout_s", type=float, default=30.0, show_default=True, help="Per-request timeout, seconds."
        ),
    ]
    wrapped: Callable[..., Any] = with_connection
    for option in reversed(options):
        wrapped = option(wrapped)
    return wrapped


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@connection_options
@click.pass_context
def group(ctx: click.Context, conn: Connection) -> None:
    """Talk to a CVAT server: check access, list jobs, fetch inputs of the offline tools, write back."""
    ctx.obj = conn


@group.command()
@click.pass_obj
def about(conn: Connection) -> None:
    """Show the server version and who the credentials belong to."""
    with conn.client() as client:
        info = client.about()
        user = client.whoami()
        features = client.features()
    click.echo(f"server:  {info.name} {info.version} at {conn.url}")
    click.echo(f"user:    {user.username} (id {user.id})")
    click.echo(f"org:     {conn.org or '(none: personal workspace and all visible orgs)'}")
    click.echo(f"quality: {'flat settings (2.73)' if features.flat_quality_settings else 'requirement-based'}")


@group.command()
@click.option("--task", "task_id", type=int, help="Only jobs of this task id.")
@click.option("--project", "project_id", type=int, help="Only jobs of this project id.")
@click.option("--type", "job_type", type=click.Choice(JOB_TYPES), help="Only jobs of this type.")
@click.option("--parent", "parent_job_id", type=int, help="Only consensus replicas of this parent job id.")
@click.option("--stage", type=click.Choice(JOB_STAGES), help="Only jobs in this stage.")
@click.option("--state", type=click.Choice(JOB_STATES), help="Only jobs in this state.")
@click.option(
    "--updated-after",
    "updated_after",
    help="Only jobs changed after this ISO 8601 time (UTC if no offset), oldest change first.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per job instead of a table.")
@click.pass_obj
def jobs(
    conn: Connection,
    task_id: int | None,
    project_id: int | None,
    job_type: str | None,
    parent_job_id: int | None,
    stage: str | None,
    state: str | None,
    updated_after: str | None,
    as_json: bool,
) -> None:
    """List jobs (all pages), sorted by last change."""
    when = _parse_when(updated_after) if updated_after else None
    with conn.client() as client:
        found = client.list_jobs(
            task_id=task_id,
            project_id=project_id,
            type=job_type,
            parent_job_id=parent_job_id,
            stage=stage,
            state=state,
            updated_after=when,
        )
    if as_json:
        for job in found:
            row = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(job).items()}
            click.echo(json.dumps(row))
        return
    click.echo(f"{'id':>7} {'task':>6} {'type':<18} {'stage':<11} {'state':<12} {'assignee':<12} updated (UTC)")
    for job in found:
        click.echo(
            f"{job.id:>7} {job.task_id:>6} {job.type:<18} {job.stage:<11} {job.state:<12} "
            f"{job.assignee_username or '-':<12} {job.updated_date:%Y-%m-%d %H:%M:%S}"
        )
    click.echo(f"{len(found)} jobs", err=True)


@group.command("annotations")
@click.argument("job_id", type=int)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Write the job's annotations here as CVAT JSON (LabeledData: tags, shapes, tracks).",
)
@click.pass_obj
def annotations_cmd(conn: Connection, job_id: int, output: Path) -> None:
    """Save the annotations of JOB_ID as CVAT JSON, exactly as the server returns them."""
    with conn.client() as client:
        data = client.get_annotations_json(job_id)
    _write_json(output, data)
    click.echo(f"job {job_id}: {_counts(data)} -> {output}")


# ------------------------------------------------------------------------------------------------
# the round trip of the offline tools: fetch their inputs as files, write a merged result back


def _write_json(path: Path, data: Any) -> None:
    """Write ``data`` to ``path`` whole or not at all (a temporary file renamed over it)."""
    tmp = path.with_name(path.name + ".part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"{path}: cannot write: {exc.strerror or exc}") from exc


def _counts(data: Mapping[str, Any]) -> str:
    return ", ".join(f"{len(data.get(k) or [])} {k}" for k in ("shapes", "tracks", "tags"))


_out_dir_option = click.option(
    "-o", "--out-dir", type=click.Path(file_okay=False, path_type=Path), required=True, help="Folder to write to."
)


def _fetch_job_files(client: CvatClient, job_id: int, out_dir: Path) -> tuple[Path, Path]:
    """Save the job's labels and frame meta as ``labels.json`` and ``meta.json`` in ``out_dir``."""
    labels_path, meta_path = out_dir / "labels.json", out_dir / "meta.json"
    _write_json(labels_path, client.get_labels_json(job_id=job_id))
    _write_json(meta_path, client.get_job_meta_json(job_id))
    return labels_path, meta_path


@group.command("fetch")
@click.argument("job_id", type=int)
@_out_dir_option
@click.pass_obj
def fetch_cmd(conn: Connection, job_id: int, out_dir: Path) -> None:
    """Save what 'rules check' and 'al rank' read for JOB_ID: labels.json, meta.json and
    job<ID>.json (its annotations), exactly as CVAT serves them."""
    ann_path = out_dir / f"job{job_id}.json"
    with conn.client() as client:
        labels_path, meta_path = _fetch_job_files(client, job_id, out_dir)
        data = client.get_annotations_json(job_id)
    _write_json(ann_path, data)
    click.echo(f"job {job_id}: {_counts(data)} -> {ann_path}; labels -> {labels_path}; meta -> {meta_path}")
    click.echo(
        f"next: cvat-ext rules check --rules qa_rules/default.yaml --annotations {ann_path} "
        f"--labels {labels_path} --meta {meta_path}"
    )


@group.command("fetch-replicas")
@click.argument("parent_job_id", type=int)
@_out_dir_option
@click.pass_obj
def fetch_replicas_cmd(conn: Connection, parent_job_id: int, out_dir: Path) -> None:
    """Save what 'qa consensus' reads for a consensus parent job: labels.json, meta.json and one
    <annotator>.json per replica (named after its assignee), and print the command to run."""
    with conn.client() as client:
        replicas = sorted(client.list_jobs(parent_job_id=parent_job_id, type="consensus_replica"), key=lambda j: j.id)
        if not replicas:
            parent = client.get_job(parent_job_id)  # a 404 names a missing job
            raise ConfigError(
                f"job {parent_job_id} ({parent.type} job of task {parent.task_id}) has no consensus replicas: "
                "give the parent annotation job of a task created with consensus replicas"
            )
        labels_path, meta_path = _fetch_job_files(client, parent_job_id, out_dir)
        written: list[tuple[str, Path]] = []
        for name, replica in zip(replica_names(replicas), replicas, strict=True):
            # "ann1 (job12)" -> ann1-job12.json: no spaces or brackets in a file name
            path = out_dir / (name.replace(" (", "-").rstrip(")") + ".json")
            data = client.get_annotations_json(replica.id)
            _write_json(path, data)
            written.append((name, path))
            click.echo(f"replica job {replica.id} ({name}): {_counts(data)} -> {path}")
    args = " ".join(f"--annotations {shlex.quote(f'{name}={path}')}" for name, path in written)
    merged = out_dir / "merged.json"
    click.echo(
        f"next: cvat-ext qa consensus {args} --labels {labels_path} --meta {meta_path} "
        f"--report-out {out_dir / 'report.json'} --merged-out {merged}"
    )
    click.echo(f"then: cvat-ext cvat write-back {parent_job_id} {merged}")


def _without_ids(objects: Any) -> Any:
    """Annotation objects with their ``id`` removed, nested elements and keyframes included: the
    ids of a file come from other jobs (replicas), and a replacement creates new objects."""
    if isinstance(objects, list):
        return [_without_ids(o) for o in objects]
    if isinstance(objects, dict):
        return {k: _without_ids(v) for k, v in objects.items() if k != "id"}
    return objects


@group.command("write-back")
@click.argument("job_id", type=int)
@click.argument("merged", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--backup",
    "backup_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to save the annotations it replaces [default: job<ID>-backup-<UTC time>.json beside MERGED].",
)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def write_back_cmd(conn: Connection, job_id: int, merged: Path, backup_path: Path | None, yes: bool) -> None:
    """Replace the annotations of JOB_ID with MERGED (e.g. 'qa consensus --merged-out'), after
    checking MERGED against the job's labels and frames and saving a backup of what it replaces."""
    from cvat_ext.annotations.cvat_json import load_json_file, parse_job_annotations
    from cvat_ext.inputs.crosscheck import check_annotation_file
    from cvat_ext.inputs.kinds import FileKind, expect_kind

    expect_kind(merged, FileKind.ANNOTATIONS, "MERGED")
    data = load_json_file(merged)
    ann = parse_job_annotations(_without_ids(data), where=str(merged))
    with conn.client() as client:
        check_annotation_file(
            merged,
            meta=client.get_job_meta(job_id),
            meta_path=f"job {job_id}'s frame meta",
            labels=client.get_labels(job_id=job_id),
            labels_path=f"job {job_id}'s labels",
        )
        current = client.get_annotations_json(job_id)
        if not yes:
            click.confirm(
                f"job {job_id}: replace its {_counts(current)} with the {_counts(data)} of {merged}?", abort=True
            )
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        backup = backup_path or merged.with_name(f"job{job_id}-backup-{stamp}.json")
        _write_json(backup, current)  # before anything is replaced: the undo is on disk first
        click.echo(f"backup of job {job_id}'s annotations: {backup}")
        saved = client.put_annotations(job_id, ann)
    click.echo(
        f"job {job_id}: now {len(saved.shapes)} shapes, {len(saved.tracks)} tracks, {len(saved.tags)} tags "
        f"from {merged} (undo: cvat-ext cvat write-back {job_id} {backup})"
    )

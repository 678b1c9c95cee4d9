"""``cvat-ext cvat``: check access to a CVAT server, list jobs, fetch a job's annotations.

Connection settings come from options or the environment (options win):
``CVAT_EXT_CVAT__URL``, ``CVAT_EXT_CVAT__ACCESS_TOKEN`` (or ``CVAT_EXT_CVAT__USERNAME`` +
``CVAT_EXT_CVAT__PASSWORD``) and ``CVAT_EXT_CVAT__ORG``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

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
    """Talk to a CVAT server: check access, list jobs, fetch annotations."""
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
    output.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    counts = ", ".join(f"{len(data.get(k) or [])} {k}" for k in ("shapes", "tracks", "tags"))
    click.echo(f"job {job_id}: {counts} -> {output}")

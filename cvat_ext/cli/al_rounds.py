"""``cvat-ext al round`` and ``cvat-ext al rounds``: active-learning rounds run against CVAT.

``round`` asks the model about the pool task's frames, picks the batch (uncertainty, open issues,
diversity) and puts it in front of the annotators (a new task with pre-labels, or the pool's
ground-truth job); ``rounds`` lists what earlier rounds sent. Both keep their record in the
sidecar's state store (``--state``, the same URL as the sidecar's ``state.url``). See
:mod:`cvat_ext.active_learning.round`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click

from cvat_ext.cli.cvat import Connection, connection_options
from cvat_ext.errors import ConfigError

if TYPE_CHECKING:
    from cvat_ext.active_learning.predictors import Predictor
    from cvat_ext.active_learning.round import RoundRecord
    from cvat_ext.cvat.client import CvatClient

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_STATE = "sqlite:///./cvat-ext-state.db"


def state_option(fn: F) -> F:
    return click.option("--state", "state_url", envvar="CVAT_EXT_STATE__URL", default=DEFAULT_STATE,
                        show_default=True, help="State store URL, as the sidecar's state.url "
                        "[env CVAT_EXT_STATE__URL].")(fn)


def _predictor(client: CvatClient, *, project_id: int, pool_task_id: int, function_url: str | None,
               function_name: str | None, threshold: float, label_map: str, from_task: bool) -> Predictor:
    from cvat_ext.active_learning.predictors import FunctionPredictor, TaskAnnotationsPredictor, project_label_ids

    if bool(function_url) == from_task:
        raise ConfigError("give exactly one of --function-url (a deployed detector) and --predictions-from-task")
    if function_url:
        return FunctionPredictor(function_url, function_name=function_name, threshold=threshold,
                                 label_ids=project_label_ids(client, project_id, renames=label_map))
    bodies = [client.get_annotations_json(j.id) for j in client.list_jobs(task_id=pool_task_id, type="annotation")]
    return TaskAnnotationsPredictor(bodies, model_version=f"scores in task {pool_task_id}")


def _round_table(rec: RoundRecord) -> str:
    lines = [f"round {rec.number} of pool task {rec.pool_task_id} ({rec.status}; model {rec.model_version}; "
             f"planned {rec.planned_at})", "rank  frame  score  name  why"]
    lines += [f"{p.rank:>4}  {p.frame:>5}  {p.score:.3f}  {p.name}  {p.why}" for p in rec.picks]
    if rec.mode == "gt" and rec.job_ids:
        lines.append(f"ground-truth job {rec.job_ids[0]} in task {rec.task_id}")
    elif rec.task_id is not None:
        lines.append(f"task {rec.task_id}: jobs {', '.join(map(str, rec.job_ids))}; {rec.prelabels} pre-label(s)")
    return "\n".join(lines)


@click.command(name="round")
@click.option("--project", "project_id", type=int, required=True, help="CVAT project id.")
@click.option("--pool-task", "pool_task_id", type=int, required=True, help="The task holding the unlabelled pool.")
@click.option("--batch", type=int, required=True, help="Frames to send in this round.")
@click.option("--function-url", default=None, help="A deployed detector: its own HTTP trigger URL, or the Nuclio "
              "dashboard's http://HOST:8070/api/function_invocations with --function.")
@click.option("--function", "function_name", default=None, help="Function name (x-nuclio-function-name) for the "
              "dashboard URL.")
@click.option("--threshold", type=float, default=0.05, show_default=True, help="Detector score threshold sent.")
@click.option("--label-map", default="", help="MODEL=PROJECT_LABEL,... where names differ (default: by name).")
@click.option("--predictions-from-task", "from_task", is_flag=True,
              help="Use scored shapes already in the pool task (left by cvat-cli auto-annotate).")
@click.option("--mode", type=click.Choice(["task", "gt"]), default="task", show_default=True,
              help="task: a new task for annotators; gt: the pool task's ground-truth job for experts.")
@click.option("--diversity", type=float, default=0.5, show_default=True,
              help="0: by score only; 1: coverage only (k-center on image features).")
@click.option("--candidates", type=int, default=4, show_default=True,
              help="Candidates per pick handed to the diversity step.")
@click.option("--nms-window", type=int, default=0, show_default=True,
              help="A pick suppresses pool frames within this many frames (video).")
@click.option("--segment-size", type=int, default=None, help="Frames per job of the new task.")
@click.option("--replicas", type=int, default=0, show_default=True, help="Consensus replicas per job (0 or >= 2).")
@click.option("--assignee", "assignees", multiple=True, help="CVAT username; repeat: jobs are assigned in turn.")
@click.option("--no-prelabels", is_flag=True, help="Do not attach the model's detections as pre-labels.")
@click.option("--format", "out_format", type=click.Choice(["table", "json"]), default="table", show_default=True)
@state_option
@connection_options
def round_cmd(project_id: int, pool_task_id: int, batch: int, function_url: str | None, function_name: str | None,
              threshold: float, label_map: str, from_task: bool, mode: str, diversity: float, candidates: int,
              nms_window: int, segment_size: int | None, replicas: int, assignees: Sequence[str],
              no_prelabels: bool, out_format: str, state_url: str, conn: Connection) -> None:
    """Run the next active-learning round of a pool task (or finish an interrupted one)."""
    from cvat_ext.active_learning.round import RoundParams, run_round, user_ids
    from cvat_ext.sidecar.state import open_store

    with conn.client() as client:
        params = RoundParams(project_id=project_id, pool_task_id=pool_task_id, batch=batch,
                             mode=mode,  # type: ignore[arg-type]  # click.Choice
                             candidates=candidates, diversity=diversity, nms_window=nms_window,
                             segment_size=segment_size, consensus_replicas=replicas,
                             assignee_ids=user_ids(client, assignees, where="--assignee"),
                             prelabels=not no_prelabels)
        predictor = _predictor(client, project_id=project_id, pool_task_id=pool_task_id, function_url=function_url,
                               function_name=function_name, threshold=threshold, label_map=label_map,
                               from_task=from_task)
        store = open_store(state_url)
        try:
            rec = run_round(client, store.scoped(conn.org or ""), params, predictor,
                            now_iso=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
        finally:
            store.close()
    click.echo(json.dumps(rec.to_json(), indent=1) if out_format == "json" else _round_table(rec))


@click.command(name="rounds")
@click.option("--project", "project_id", type=int, required=True, help="CVAT project id.")
@click.option("--pool-task", "pool_task_id", type=int, default=None, help="Only this pool task's rounds.")
@click.option("--org", envvar="CVAT_EXT_CVAT__ORG", default="", help="Organization slug the rounds ran in.")
@click.option("--format", "out_format", type=click.Choice(["table", "json"]), default="table", show_default=True)
@state_option
def rounds_cmd(project_id: int, pool_task_id: int | None, org: str, out_format: str, state_url: str) -> None:
    """List the active-learning rounds of a project: frames sent, why, and where they went."""
    from cvat_ext.active_learning.round import list_rounds
    from cvat_ext.sidecar.state import open_store

    store = open_store(state_url, must_exist=True)
    try:
        rounds = list_rounds(store.scoped(org), project_id=project_id, pool_task_id=pool_task_id)
    finally:
        store.close()
    if out_format == "json":
        click.echo(json.dumps([r.to_json() for r in rounds], indent=1))
    elif not rounds:
        click.echo(f"no active-learning rounds for project {project_id}")
    else:
        click.echo("\n\n".join(_round_table(r) for r in rounds))

"""One active-learning round against CVAT: from the model's uncertainty to the annotators' queue.

A round, for a *pool task* (unlabelled images in a project):

1. **Plan.** Frames of the pool not deleted and not sent by an earlier round are scored: model
   uncertainty from a :class:`~cvat_ext.active_learning.predictors.Predictor` (scores kept), plus
   the open issues the sidecar has published on the pool's frames (its state store) as the
   findings signal. The ``candidates × batch`` best after the time-window NMS go through
   score-weighted k-center selection on image features
   (:mod:`cvat_ext.active_learning.diversity`), which picks ``batch`` frames. The plan (frames,
   scores, why, model version, parameters) is saved in the state store as a started action
   ``al_round:<project>:<pool>:<n>`` *before* anything is written to CVAT.
2. **Act** (every step idempotent, so a rerun after a crash finishes the same round and never
   creates a second task):
   * ``mode="task"``: a new task in the project named ``AL round <n> · pool task <pool>`` holding
     the picked frames in rank order (most informative first); a task of that name found in CVAT is
     the round's own (a crash after its creation) and is reused, and its upload is finished if it
     has no data yet. Optional consensus replicas. Pre-labels (the model's detections on those
     frames, with their scores) are PUT into each annotation job, or into each replica when there
     are replicas, so annotators verify and adjust; a PUT replaces, so a rerun does not duplicate
     them. Assignees from the pool are given round-robin.
   * ``mode="gt"``: the pool task's ground-truth job over the picked frames, for experts (an
     existing GT job with exactly those frames is the round's own).
   Either way the round's table (frame, score, why) goes into that task's CVAT guide, in a block
   of its own (people's text around it is kept).
3. **Record.** The action is finished with the task and job ids, and an audit entry is appended.

A round whose plan is saved but not finished is resumed by the next call (same frames), so a new
round never starts before the previous one is in CVAT. The next round excludes every frame any
earlier round sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from cvat_ext.active_learning.diversity import frame_features, select_diverse
from cvat_ext.active_learning.predictors import FrameSource, PoolPredictions, Predictor
from cvat_ext.active_learning.ranking import RankParams, rank_frames
from cvat_ext.active_learning.signals import (
    FindingCounts,
    FrameSet,
    Signal,
    UncertaintyParams,
    findings_signal,
    uncertainty_signal,
)
from cvat_ext.cvat.guide_blocks import markers, replace_block
from cvat_ext.errors import ConfigError, CvatExtError

if TYPE_CHECKING:
    from cvat_ext.cvat.client import CvatClient
    from cvat_ext.sidecar.state import StateStore

log = logging.getLogger(__name__)

ROUND_KIND = "al_round"
DEFAULT_WEIGHTS = {"uncertainty": 1.0, "findings": 0.5}


class RoundError(CvatExtError):
    """A round cannot start (empty or exhausted pool, wrong project): nothing was written to CVAT."""


@dataclass(frozen=True)
class RoundParams:
    project_id: int
    pool_task_id: int
    batch: int
    mode: Literal["task", "gt"] = "task"
    candidates: int = 4  # candidates per pick handed to the diversity step
    diversity: float = 0.5  # 0: by score only, 1: coverage only
    nms_window: int = 0  # task frames around a pick that cannot be picked too (video)
    segment_size: int | None = None
    consensus_replicas: int = 0
    assignee_ids: tuple[int, ...] = ()
    prelabels: bool = True
    uncertainty: UncertaintyParams = field(default_factory=UncertaintyParams)
    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise ConfigError(f"batch must be >= 1, got {self.batch}")
        if self.candidates < 1:
            raise ConfigError(f"candidates must be >= 1, got {self.candidates}")
        if self.mode not in ("task", "gt"):
            raise ConfigError(f"mode must be 'task' or 'gt', got {self.mode!r}")
        if self.consensus_replicas == 1 or self.consensus_replicas < 0:
            raise ConfigError("consensus_replicas must be 0 or >= 2 (CVAT rejects 1)")
        if self.mode == "gt" and (self.consensus_replicas or self.assignee_ids):
            raise ConfigError("mode 'gt' creates the pool task's ground-truth job: no replicas or assignees")


@dataclass(frozen=True)
class Pick:
    """One picked frame: pool ``frame``, its combined ``score``, the signal values, and why."""

    rank: int
    frame: int
    name: str
    score: float
    signals: Mapping[str, float]
    spread: float  # distance to the nearest earlier pick in feature space (inf for the first)
    why: str


@dataclass(frozen=True)
class RoundRecord:
    """A round as the state store keeps it."""

    key: str
    number: int
    project_id: int
    pool_task_id: int
    mode: str
    status: str  # started (planned, not yet all in CVAT) | done
    picks: tuple[Pick, ...]
    model_version: str
    planned_at: str
    task_id: int | None = None
    job_ids: tuple[int, ...] = ()
    prelabels: int = 0

    @property
    def frames(self) -> tuple[int, ...]:
        return tuple(p.frame for p in self.picks)

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "round": self.number, "project_id": self.project_id,
                "pool_task_id": self.pool_task_id, "mode": self.mode, "status": self.status,
                "model_version": self.model_version, "planned_at": self.planned_at, "task_id": self.task_id,
                "job_ids": list(self.job_ids), "prelabels": self.prelabels,
                "picks": [{"rank": p.rank, "frame": p.frame, "name": p.name, "score": p.score,
                           "signals": dict(p.signals), "spread": None if p.spread == float("inf") else p.spread,
                           "why": p.why} for p in self.picks]}


def user_ids(client: CvatClient, usernames: Sequence[str], *, where: str) -> tuple[int, ...]:
    """The CVAT user ids of ``usernames`` (the assignees of a round), in order; a name CVAT does not
    show in this organization is a :class:`~cvat_ext.errors.ConfigError` starting with ``where``."""
    if not usernames:
        return ()
    known = {u.username: u.id for u in client.list_users()}
    missing = [name for name in usernames if name not in known]
    if missing:
        raise ConfigError(f"{where}: no CVAT user {', '.join(map(repr, missing))} visible in this organization")
    return tuple(known[name] for name in usernames)


def round_key(project_id: int, pool_task_id: int, number: int) -> str:
    return f"{ROUND_KIND}:{project_id}:{pool_task_id}:{number}"


def round_task_name(number: int, pool_task_id: int) -> str:
    return f"AL round {number} · pool task {pool_task_id}"


# --- the state store ------------------------------------------------------------------------------
def _record(payload: Mapping[str, Any], status: str, result: Mapping[str, Any] | None) -> RoundRecord:
    result = result or {}
    picks = tuple(Pick(p["rank"], p["frame"], p["name"], p["score"], p["signals"],
                       float("inf") if p["spread"] is None else p["spread"], p["why"]) for p in payload["picks"])
    return RoundRecord(payload["key"], payload["round"], payload["project_id"], payload["pool_task_id"],
                       payload["mode"], status, picks, payload["model_version"], payload["planned_at"],
                       result.get("task_id"), tuple(result.get("job_ids", ())), int(result.get("prelabels", 0)))


def list_rounds(store: StateStore, *, project_id: int | None, pool_task_id: int | None = None) -> list[RoundRecord]:
    """Rounds of a project (``None``: of every project; optionally of one pool task), oldest first."""
    out = []
    for row in store.actions():
        if row.kind != ROUND_KIND or (project_id is not None and row.payload.get("project_id") != project_id):
            continue
        if pool_task_id is not None and row.payload.get("pool_task_id") != pool_task_id:
            continue
        out.append(_record(row.payload, "done" if row.status == "done" else "started", row.result))
    return sorted(out, key=lambda r: (r.pool_task_id, r.number))


# --- planning -------------------------------------------------------------------------------------
class _FrameCache:
    """Pool frame bytes, fetched once per round (the model and the features both read them)."""

    def __init__(self, client: CvatClient, task_id: int) -> None:
        self._client, self._task_id = client, task_id
        self._cache: dict[int, bytes] = {}

    def __call__(self, frame_idx: int) -> bytes:
        if frame_idx not in self._cache:
            self._cache[frame_idx] = self._client.get_task_frame(self._task_id, frame_idx)
        return self._cache[frame_idx]


def _open_issue_counts(client: CvatClient, store: StateStore | None, pool_task_id: int) -> FindingCounts | None:
    """Open issues the sidecar published on the pool task's frames, as error findings."""
    if store is None:
        return None
    frames = [row.frame for job in client.list_jobs(task_id=pool_task_id)
              for row in store.issues_of_job(job.id) if row.status == "open"]
    if not frames:
        return None
    return FindingCounts(np.array(frames, np.int64), np.ones(len(frames), bool))


def _why(signals: Mapping[str, float], spread: float, pred: PoolPredictions, frame: int) -> str:
    n_det = int(np.count_nonzero(pred.detections.frame_idx == frame))
    parts = [f"uncertainty {signals['uncertainty']:.2f} ({n_det} det)"]
    if "findings" in signals and signals["findings"] > 0:
        parts.append(f"open issues {signals['findings']:.2f}")
    parts.append("first pick" if spread == float("inf") else f"{spread:.2f} from the nearest pick")
    return ", ".join(parts)


def plan_round(
    client: CvatClient,
    params: RoundParams,
    predictor: Predictor,
    *,
    number: int,
    exclude: set[int],
    store: StateStore | None,
    planned_at: str,
    frames_src: FrameSource,
) -> tuple[RoundRecord, dict[int, list[dict[str, Any]]]]:
    """Score the pool and pick the round's frames; reads CVAT and the model, writes nothing.

    ``frames_src`` gives a pool frame's file (the caller's cache: the picked frames are uploaded
    from it afterwards). Returns the round and the model's pre-label shapes on the picked frames
    (pool frame numbers).
    """
    pool = client.get_task(params.pool_task_id)
    where = f"pool task {pool.id}"
    if pool.project_id != params.project_id:
        raise RoundError(f"{where} is in project {pool.project_id}, not project {params.project_id}")
    if pool.size == 0:
        raise RoundError(f"{where} has no images")
    meta = client.get_task_meta(pool.id)
    names = [str(f.get("name", "")) for f in meta.get("frames", [])]
    deleted = {int(f) for f in meta.get("deleted_frames") or []}
    pool_frames = [f for f in range(pool.size) if f not in deleted and f not in exclude]
    if not pool_frames:
        raise RoundError(f"{where}: every frame was sent by an earlier round (or deleted); the pool is exhausted")
    predictions = predictor.predict(pool_frames, frames_src)
    frame_set = FrameSet(np.array(pool_frames, np.int64), np.zeros(len(pool_frames), np.int64), (where,))
    signals: list[Signal] = [uncertainty_signal(frame_set, predictions.detections, params.uncertainty)]
    issues = _open_issue_counts(client, store, pool.id)
    if issues is not None:
        signals.append(findings_signal(frame_set, issues))
    n_candidates = min(len(pool_frames), params.batch * params.candidates)
    ranking = rank_frames(frame_set, signals, RankParams(weights=params.weights, top_k=n_candidates,
                                                          nms_window=params.nms_window))
    cand = ranking.picked
    feats = np.stack([frame_features(frames_src(p.frame), where=f"{where} frame {p.frame}") for p in cand])
    order = select_diverse([p.score for p in cand], feats, params.batch, diversity=params.diversity)
    picks = []
    for rank, pos in enumerate(order.tolist(), start=1):
        c = cand[pos]
        earlier = order[: rank - 1]
        spread = float(np.linalg.norm(feats[earlier] - feats[pos], axis=1).min()) if len(earlier) else float("inf")
        sig = dict(c.signals)
        name = names[c.frame] if c.frame < len(names) else f"frame_{c.frame}"
        picks.append(Pick(rank, c.frame, name, c.score, sig, spread, _why(sig, spread, predictions, c.frame)))
    rec = RoundRecord(round_key(params.project_id, pool.id, number), number, params.project_id, pool.id,
                      params.mode, "started", tuple(picks), predictions.model_version, planned_at)
    return rec, {p.frame: list(predictions.shapes.get(p.frame, ())) for p in picks}


# --- acting ---------------------------------------------------------------------------------------
def _prelabel_bodies(
    shapes: Mapping[int, Sequence[dict[str, Any]]], new_index: Mapping[int, int], jobs: Sequence[tuple[int, int, int]]
) -> dict[int, dict[str, Any]]:
    """Per job id (``(job_id, start, stop)``), the LabeledData of the pre-labels on its frames."""
    out: dict[int, dict[str, Any]] = {}
    for job_id, start, stop in jobs:
        body_shapes = [dict(s, frame=new_index[pool_frame]) for pool_frame, frame_shapes in shapes.items()
                       for s in frame_shapes if start <= new_index[pool_frame] <= stop]
        out[job_id] = {"version": 0, "tags": [], "shapes": body_shapes, "tracks": []}
    return out


def _act_task(client: CvatClient, params: RoundParams, rec: RoundRecord, frames_src: Callable[[int], bytes],
              shapes: Mapping[int, Sequence[dict[str, Any]]]) -> dict[str, Any]:
    from cvat_ext.annotations.cvat_json import parse_job_annotations

    name = round_task_name(rec.number, rec.pool_task_id)
    images = [(f"{p.rank:04d}_{p.frame:06d}_{p.name.rsplit('/', 1)[-1] or 'frame.png'}", frames_src(p.frame))
              for p in rec.picks]
    found = client.find_tasks(project_id=params.project_id, name=name)
    if len(found) > 1:
        raise RoundError(f"round {rec.number}: {len(found)} tasks named {name!r} in project {params.project_id}; "
                         "delete the extra ones in CVAT")
    if found and found[0].size == 0:
        log.info("round %d: task %d exists without data (a crash during its upload); finishing it", rec.number,
                 found[0].id)
        task = client.upload_task_images(found[0].id, images)
    elif found:
        task = found[0]
        log.info("round %d: task %d exists (created before a crash); reusing it", rec.number, task.id)
    else:
        task = client.create_task_from_images(name, project_id=params.project_id, images=images,
                                              segment_size=params.segment_size,
                                              consensus_replicas=params.consensus_replicas)
    jobs = client.list_jobs(task_id=task.id)
    kind = "consensus_replica" if params.consensus_replicas else "annotation"
    work = sorted((j for j in jobs if j.type == kind), key=lambda j: j.id)
    new_index = {p.frame: i for i, p in enumerate(rec.picks)}
    n_prelabels = 0
    if params.prelabels:
        bodies = _prelabel_bodies(shapes, new_index, [(j.id, j.start_frame, j.stop_frame) for j in work])
        for job_id, body in bodies.items():
            client.put_annotations(job_id, parse_job_annotations(body, where=f"round {rec.number} pre-labels"))
            n_prelabels += len(body["shapes"])
    for i, job in enumerate(work):
        if params.assignee_ids:
            client.update_job(job.id, assignee_id=params.assignee_ids[i % len(params.assignee_ids)])
    return {"task_id": task.id, "job_ids": [j.id for j in work], "prelabels": n_prelabels}


def _act_gt(client: CvatClient, rec: RoundRecord) -> dict[str, Any]:
    existing = client.list_jobs(task_id=rec.pool_task_id, type="ground_truth")
    frames = sorted(rec.frames)
    if existing:
        meta = client.get_job_meta(existing[0].id)
        if sorted(meta.included_frames or []) == frames:
            return {"task_id": rec.pool_task_id, "job_ids": [existing[0].id], "prelabels": 0}
    job = client.create_gt_job(rec.pool_task_id, frames)
    return {"task_id": rec.pool_task_id, "job_ids": [job.id], "prelabels": 0}


def round_guide_block(rec: RoundRecord, new_frames: bool) -> str:
    """The round's block for the task guide: what was picked, in which order, and why."""
    begin, end = markers(f"al-round-{rec.pool_task_id}-{rec.number}")
    where = "this task" if new_frames else f"the ground-truth job of pool task {rec.pool_task_id}"
    lines = [begin, f"## Active-learning round {rec.number} (cvat-ext)", "",
             f"{len(rec.picks)} frames of pool task {rec.pool_task_id} were picked for {where} by "
             f"`{rec.model_version}` ({rec.planned_at}), most informative first: where the model is least sure, "
             "where issues are open, and spread over different scenes.", ""]
    header = (["frame here"] if new_frames else []) + ["pool frame", "file", "score", "why"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i, p in enumerate(rec.picks):
        cells = ([str(i)] if new_frames else []) + [str(p.frame), p.name.replace("|", "/"), f"{p.score:.3f}", p.why]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(end)
    return "\n".join(lines)


def _publish_guide(client: CvatClient, task_id: int, rec: RoundRecord) -> None:
    """Put the round's block into the task's guide (replacing an earlier copy of it; people's text kept)."""
    name = f"al-round-{rec.pool_task_id}-{rec.number}"
    block = round_guide_block(rec, new_frames=rec.mode == "task")
    task = client.get_task(task_id)
    if task.guide_id is None:
        client.create_guide(task_id=task_id, markdown=replace_block("", block, name))
        return
    guide = client.get_guide(task.guide_id)
    updated = replace_block(guide.markdown, block, name)
    if updated != guide.markdown:
        client.update_guide(guide.id, updated)


def run_round(
    client: CvatClient,
    store: StateStore,
    params: RoundParams,
    predictor: Predictor,
    *,
    owner: str = "cvat-ext al",
    now_iso: Callable[[], str],
) -> RoundRecord:
    """Plan (or resume) the next round of ``params.pool_task_id`` and put it into CVAT; see the module doc."""
    rounds = list_rounds(store, project_id=params.project_id, pool_task_id=params.pool_task_id)
    unfinished = [r for r in rounds if r.status != "done"]
    frames_src = _FrameCache(client, params.pool_task_id)
    if unfinished:
        rec = unfinished[0]
        log.info("resuming round %d of pool task %d (planned %s)", rec.number, rec.pool_task_id, rec.planned_at)
        row = store.get_action(rec.key)
        assert row is not None  # listed a moment ago
        shapes = {int(f): v for f, v in row.payload.get("prelabel_shapes", {}).items()}
    else:
        exclude = {f for r in rounds for f in r.frames}
        number = 1 + max((r.number for r in rounds), default=0)
        rec, shapes = plan_round(client, params, predictor, number=number, exclude=exclude, store=store,
                                 planned_at=now_iso(), frames_src=frames_src)
        # the plan, pre-labels included, is saved before CVAT is touched: a rerun resumes it as it was
        payload = rec.to_json() | {"prelabel_shapes": {str(f): v for f, v in shapes.items()}}
        store.start_action(rec.key, ROUND_KIND, None, payload, owner)
    result = _act_gt(client, rec) if rec.mode == "gt" else _act_task(client, params, rec, frames_src, shapes)
    _publish_guide(client, result["task_id"], rec)
    audit = {"replica": owner, "action": ROUND_KIND, "reason": f"active-learning round {rec.number}: "
             f"{len(rec.picks)} frames of pool task {rec.pool_task_id} by {rec.model_version}",
             "task_id": result["task_id"], "after": {"frames": list(rec.frames), **result}}
    store.finish_action(rec.key, result, audit=audit)
    return _record(rec.to_json(), "done", result)

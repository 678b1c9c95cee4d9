"""``CvatStandIn``: lifecycle of the stand-in server plus seeding helpers that bypass HTTP.

Typical use (see tests/conftest.py for the fixtures)::

    with CvatStandIn() as cvat:
        cvat.add_user("admin", is_superuser=True)
        token = cvat.add_token("admin")
        task_id = cvat.add_task("t", labels=[{"name": "car", "type": "rectangle"}], owner="admin")
        ...  # point cvat-sdk / CvatClient at cvat.url
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from types import EllipsisType
from typing import Any

from tests.cvat_standin import serializers as ser
from tests.cvat_standin.faults import FaultInjector
from tests.cvat_standin.http import App, StandInHTTPServer
from tests.cvat_standin.resources import build_router
from tests.cvat_standin.resources.annotations import KINDS, canonicalize, validate_payload
from tests.cvat_standin.resources.jobs import add_job
from tests.cvat_standin.resources.tasks import add_quality_settings, build_task_jobs
from tests.cvat_standin.resources.webhooks import Deliverer
from tests.cvat_standin.routing import HttpError
from tests.cvat_standin.world import (
    LABEL_COLORS,
    ROLE_RANK,
    IssueRec,
    LabelRec,
    MembershipRec,
    OrgRec,
    ProjectRec,
    TaskRec,
    TokenRec,
    UserRec,
    World,
)


class CvatStandIn:
    """In-process CVAT 2.73 REST server on 127.0.0.1 (ephemeral port) for tests; a context manager."""

    def __init__(self, *, version: str = "2.73.0", validate_responses: bool = True,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.world = World(clock)
        self.world.version = version
        self.faults = FaultInjector()
        self._app = App(self.world, build_router(), self.faults, validate=validate_responses)
        self._server: StandInHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # lifecycle ------------------------------------------------------------------------------------
    def start(self) -> CvatStandIn:
        if self._server is not None:
            return self
        self._server = StandInHTTPServer(self._app)
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}"
        self._app.base_url = self.url
        self.world.deliverer = Deliverer(self.world)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="cvat-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.world.deliverer is not None:
            self.world.deliverer.stop()
            self.world.deliverer = None
        self._server = None

    def __enter__(self) -> CvatStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def request_log(self) -> list[tuple[str, str, int]]:
        """(method, path, status) of every request served; status 0 = connection reset by a fault."""
        return self._app.request_log

    @property
    def schema_errors(self) -> list[str]:
        return self._app.schema_errors

    @property
    def request_polls(self) -> int:
        """How many polls of /api/requests/{rq_id} answer queued/started before ``finished`` (default 0)."""
        return self.world.request_polls

    @request_polls.setter
    def request_polls(self, value: int) -> None:
        self.world.request_polls = value

    def fail_next_request(self, rq_type: str, message: str = "TypeError: injected failure\n") -> None:
        """Make the next async request of ``rq_type`` (``merge:job``, ``merge:task``, ``calculate:quality``)
        end ``failed`` with ``message``, without doing its work (like recording E07)."""
        with self.world.lock:
            self.world.request_failures.setdefault(rq_type, []).append(message)

    def flush_webhooks(self) -> None:
        """Block until every queued webhook delivery was attempted."""
        if self.world.deliverer is not None:
            self.world.deliverer.flush()

    def deliveries(self, *, event: str | None = None) -> list[dict[str, Any]]:
        """Webhook deliveries made so far: {id, webhook_id, event, status_code, request (payload)}."""
        with self.world.lock:
            return [{"id": d.id, "webhook_id": d.webhook_id, "event": d.event, "status_code": d.status_code,
                     "request": copy.deepcopy(d.request)} for d in sorted(self.world.deliveries.values(),
                                                                          key=lambda d: d.id)
                    if event is None or d.event == event]

    # seeding: people ------------------------------------------------------------------------------
    def add_user(self, username: str, *, password: str = "password", first_name: str = "", last_name: str = "",
                 is_superuser: bool = False) -> int:
        w = self.world
        with w.lock:
            if any(u.username == username for u in w.users.values()):
                raise ValueError(f"user {username!r} exists")
            now = w.now()
            u = UserRec(w.next_id("user"), username, password, first_name, last_name, f"{username}@example.com",
                        is_superuser, now, None)
            w.users[u.id] = u
            return u.id

    def add_org(self, slug: str, *, owner: str) -> int:
        w = self.world
        with w.lock:
            if w.org_by_slug(slug) is not None:
                raise ValueError(f"organization {slug!r} exists")
            org = OrgRec(w.next_id("org"), slug, w.user_by_name(owner).id, w.now())
            w.orgs[org.id] = org
        self.add_membership(slug, owner, "owner")
        return org.id

    def add_membership(self, org_slug: str, username: str, role: str) -> int:
        if role not in ROLE_RANK:
            raise ValueError(f"role {role!r}; expected one of {sorted(ROLE_RANK)}")
        w = self.world
        with w.lock:
            org = w.org_by_slug(org_slug)
            if org is None:
                raise KeyError(f"no organization {org_slug!r}")
            m = MembershipRec(w.next_id("membership"), org.id, w.user_by_name(username).id, role, w.now(),
                              w.new_secret(48))
            w.memberships[m.id] = m
            return m.id

    def add_token(self, username: str, *, read_only: bool = False) -> str:
        w = self.world
        with w.lock:
            tok = TokenRec(w.next_id("token"), w.user_by_name(username).id, w.new_secret(32), f"{username}-token",
                           read_only, w.now())
            w.tokens[tok.id] = tok
            return tok.value

    # seeding: projects, tasks, labels -------------------------------------------------------------
    def _org_id(self, org: str | None) -> int | None:
        if org is None:
            return None
        found = self.world.org_by_slug(org)
        if found is None:
            raise KeyError(f"no organization {org!r}")
        return found.id

    def _default_owner(self, org_id: int | None, owner: str | None) -> int:
        w = self.world
        if owner is not None:
            return w.user_by_name(owner).id
        if org_id is not None:
            return w.orgs[org_id].owner_id
        if not w.users:
            raise ValueError("add a user first (owner)")
        return min(w.users)

    def _add_labels(self, labels: Sequence[dict[str, Any]], *, project_id: int | None, task_id: int | None) -> None:
        w = self.world
        for i, spec in enumerate(labels):
            lb = self._make_label(spec, i, project_id=project_id, task_id=task_id, parent_id=None)
            for j, sub in enumerate(spec.get("sublabels", [])):
                child = self._make_label(sub, i + j + 1, project_id=project_id, task_id=task_id, parent_id=lb.id)
                lb.sublabel_ids.append(child.id)
            if lb.type == "skeleton":
                lb.svg = spec.get("svg") or _skeleton_svg([w.labels[c] for c in lb.sublabel_ids])

    def _make_label(self, spec: dict[str, Any], index: int, *, project_id: int | None, task_id: int | None,
                    parent_id: int | None) -> LabelRec:
        w = self.world
        attrs = []
        for a in spec.get("attributes", []):
            values = [str(v) for v in a.get("values", [])]
            attrs.append({"id": w.next_id("attribute"), "name": a["name"], "mutable": bool(a.get("mutable", False)),
                          "input_type": a.get("input_type", "text"),
                          "default_value": str(a.get("default_value", values[0] if values else "")),
                          "values": values})
        default_type = "points" if parent_id is not None else "any"
        lb = LabelRec(w.next_id("label"), spec["name"], spec.get("color", LABEL_COLORS[index % len(LABEL_COLORS)]),
                      spec.get("type", default_type), attrs, project_id, task_id, parent_id)
        w.labels[lb.id] = lb
        return lb

    def add_project(self, name: str, *, org: str | None = None, labels: list[dict[str, Any]],
                    owner: str | None = None) -> int:
        """``labels`` as CVAT POST bodies: {name, type, color?, attributes: [...], sublabels: [...], svg?}."""
        w = self.world
        with w.lock:
            org_id = self._org_id(org)
            now = w.now()
            p = ProjectRec(w.next_id("project"), name, org_id, self._default_owner(org_id, owner), now, now)
            w.projects[p.id] = p
            self._add_labels(labels, project_id=p.id, task_id=None)
            add_quality_settings(w, task_id=None, project_id=p.id)
            return p.id

    def add_task(self, name: str, *, org: str | None = None, project_id: int | None = None,
                 labels: list[dict[str, Any]] | None = None, frames: int = 10, frame_size: tuple[int, int] = (640, 480),
                 segment_size: int | None = None, consensus_replicas: int = 0, owner: str | None = None,
                 validation_pool: int = 0) -> int:
        """A task with annotation jobs per segment, each followed by its ``consensus_replicas`` replicas.
        ``validation_pool`` > 0 makes a ``gt_pool`` ("honeypots") task: its last ``validation_pool``
        frames are the validation frames, in no annotation job (give them a GT job with
        :meth:`add_gt_job` and honeypots with :meth:`set_honeypots`)."""
        if consensus_replicas == 1 or consensus_replicas < 0:
            raise ValueError("consensus_replicas must be 0 or >= 2 (CVAT rejects 1)")
        if not 0 <= validation_pool < frames:
            raise ValueError(f"validation_pool must be in [0, {frames - 1}], got {validation_pool}")
        if (project_id is None) == (labels is None):
            raise ValueError("give either project_id or labels")
        w = self.world
        with w.lock:
            if project_id is not None:
                org_id = w.projects[project_id].org_id
                if org is not None and self._org_id(org) != org_id:
                    raise ValueError(f"project {project_id} is not in organization {org!r}")
            else:
                org_id = self._org_id(org)
            now = w.now()
            t = TaskRec(w.next_id("task"), name, org_id, project_id, self._default_owner(org_id, owner), frames,
                        frame_size, segment_size or frames - validation_pool, consensus_replicas, now, now,
                        validation_pool=validation_pool)
            w.tasks[t.id] = t
            if labels is not None:
                self._add_labels(labels, project_id=None, task_id=t.id)
            build_task_jobs(w, t)
            return t.id

    def add_gt_job(self, task_id: int, frames: Sequence[int], *, stage: str = "acceptance",
                   state: str = "completed", assignee: str | None = None) -> int:
        w = self.world
        with w.lock:
            task = w.tasks[task_id]
            if any(j.task_id == task_id and j.type == "ground_truth" for j in w.jobs.values()):
                raise ValueError(f"task {task_id} already has a ground truth job")
            if not frames or any(not 0 <= f < task.size for f in frames):
                raise ValueError(f"GT frames must be in [0, {task.size - 1}], got {list(frames)}")
            job = add_job(w, task, "ground_truth", 0, task.size - 1, included_frames=sorted(set(frames)))
            job.stage, job.state = stage, state
            if assignee is not None:
                job.assignee_id = w.user_by_name(assignee).id
                job.assignee_updated_date = w.now()
            return job.id

    def set_honeypots(self, task_id: int, honeypots: dict[int, int]) -> None:
        """The honeypots of a ``gt_pool`` task: placeholder frame (inside an annotation job) ->
        the validation frame it shows (one of the pool's)."""
        w = self.world
        with w.lock:
            task = w.tasks[task_id]
            pool = range(task.size - task.validation_pool, task.size)
            if not task.validation_pool:
                raise ValueError(f"task {task_id} has no validation pool (add_task(validation_pool=...))")
            for h, r in honeypots.items():
                if not (0 <= h < pool.start and r in pool):
                    raise ValueError(f"honeypot {h} -> {r}: need a job frame < {pool.start} showing a pool frame")
            task.honeypots = dict(honeypots)

    # seeding: state -------------------------------------------------------------------------------
    def jobs(self, *, task_id: int | None = None, type: str | None = None,
             parent_job_id: int | None = None) -> list[dict[str, Any]]:
        """Jobs as ``GET /api/jobs/{id}`` renders them, ascending ids."""
        w = self.world
        with w.lock:
            return [ser.job(w, self.url, j) for j in sorted(w.jobs.values(), key=lambda j: j.id)
                    if (task_id is None or j.task_id == task_id) and (type is None or j.type == type)
                    and (parent_job_id is None or j.parent_job_id == parent_job_id)]

    def set_job(self, job_id: int, *, stage: str | None = None, state: str | None = None,
                assignee: str | EllipsisType | None = ...) -> None:
        """Change a job without HTTP (no webhooks); ``assignee=None`` unassigns, ``...`` keeps."""
        w = self.world
        with w.lock:
            job = w.jobs[job_id]
            if stage is not None:
                job.stage = stage
            if state is not None:
                job.state = state
            if not isinstance(assignee, EllipsisType):
                job.assignee_id = None if assignee is None else w.user_by_name(assignee).id
                job.assignee_updated_date = w.now()
            job.updated_date = w.now()

    def set_annotations(self, job_id: int, data: dict[str, Any]) -> None:
        """Replace a job's annotations with CVAT LabeledData (ids kept when present, else assigned)."""
        w = self.world
        with w.lock:
            job = w.jobs[job_id]
            try:
                payload = validate_payload(w, job, {k: copy.deepcopy(data.get(k, [])) for k in KINDS})
            except HttpError as err:
                raise ValueError(f"job {job_id}: invalid annotations: {err.body}") from err
            _reserve_ids(w, payload)
            job.annotations = canonicalize(w, payload, keep_ids=True)
            w.touch_job(job)

    def get_annotations(self, job_id: int) -> dict[str, Any]:
        w = self.world
        with w.lock:
            ann = w.jobs[job_id].annotations
            return {"version": 0, **copy.deepcopy(ann), "intervals": []}

    def labels(self, *, task_id: int) -> list[dict[str, Any]]:
        w = self.world
        with w.lock:
            return [ser.label(w, lb) for lb in w.task_labels(task_id)]

    def issues(self, *, job_id: int | None = None) -> list[dict[str, Any]]:
        w = self.world
        with w.lock:
            found: list[IssueRec] = sorted(w.issues.values(), key=lambda i: i.id)
            return [ser.issue(w, self.url, i) for i in found if job_id is None or i.job_id == job_id]


def _reserve_ids(w: World, payload: dict[str, list[dict[str, Any]]]) -> None:
    for tag in payload["tags"]:
        if "id" in tag:
            w.reserve_id("tag", tag["id"])
    for shape in payload["shapes"]:
        for obj in [shape, *shape.get("elements", [])]:
            if "id" in obj:
                w.reserve_id("shape", obj["id"])
    for track in payload["tracks"]:
        for t in [track, *track.get("elements", [])]:
            if "id" in t:
                w.reserve_id("track", t["id"])
            for s in t.get("shapes", []):
                if "id" in s:
                    w.reserve_id("tracked_shape", s["id"])


def _skeleton_svg(nodes: list[LabelRec]) -> str:
    """A simple skeleton drawing: node 1 joined to every other node (as in the recorded project)."""
    n = max(len(nodes), 1)
    pos = [(50.0 + 40.0 * ((i % 3) - 1), 12.0 + 80.0 * i / n) for i in range(len(nodes))]
    edges = "".join(
        f'<line x1="{pos[0][0]:g}" y1="{pos[0][1]:g}" x2="{x:g}" y2="{y:g}" stroke="black" data-type="edge" '
        f'data-node-from="1" data-node-to="{i + 1}"></line>' for i, (x, y) in enumerate(pos) if i)
    circles = "".join(
        f'<circle r="1.5" stroke="black" fill="#b3b3b3" cx="{x:g}" cy="{y:g}" data-type="element node" '
        f'data-element-id="{i + 1}" data-node-id="{i + 1}" data-label-id="{lb.id}"></circle>'
        for i, ((x, y), lb) in enumerate(zip(pos, nodes)))
    return edges + circles

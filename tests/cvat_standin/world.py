"""The stand-in's in-memory CVAT database: records, id counters and the clock.

Records are mutable dataclasses guarded by ``World.lock`` (the HTTP server is threaded).
Rendering to CVAT JSON lives in ``serializers.py``; HTTP semantics live in ``resources/``.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.cvat_standin.resources.webhooks import Deliverer

ROLE_RANK = {"worker": 1, "supervisor": 2, "maintainer": 3, "owner": 4}
LABEL_COLORS = ("#fa3253", "#34d1b7", "#ff6a4d", "#b83df5", "#aaaaaa", "#ba9109", "#389a42", "#f0ae3f")


def iso(ts: datetime | None) -> str | None:
    """CVAT's timestamp format: ``2026-11-23T00:37:15.062809Z``."""
    if ts is None:
        return None
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class UserRec:
    id: int
    username: str
    password: str
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    is_superuser: bool = False
    date_joined: datetime | None = None
    last_login: datetime | None = None


@dataclass
class OrgRec:
    id: int
    slug: str
    owner_id: int
    created_date: datetime


@dataclass
class MembershipRec:
    id: int
    org_id: int
    user_id: int
    role: str
    joined_date: datetime
    invitation: str


@dataclass
class TokenRec:
    id: int
    user_id: int
    value: str
    name: str
    read_only: bool
    created_date: datetime


@dataclass
class LabelRec:
    id: int
    name: str
    color: str
    type: str
    attributes: list[dict[str, Any]]
    project_id: int | None
    task_id: int | None
    parent_id: int | None = None
    svg: str = ""
    sublabel_ids: list[int] = field(default_factory=list)


@dataclass
class ProjectRec:
    id: int
    name: str
    org_id: int | None
    owner_id: int
    created_date: datetime
    updated_date: datetime
    guide_id: int | None = None


@dataclass
class TaskRec:
    id: int
    name: str
    org_id: int | None
    project_id: int | None
    owner_id: int
    size: int
    frame_size: tuple[int, int]
    segment_size: int
    consensus_replicas: int
    created_date: datetime
    updated_date: datetime
    guide_id: int | None = None
    assignee_id: int | None = None
    # tasks created over HTTP: media uploaded (frame order) and whether its data request finished;
    # seeded tasks have no images (frames are generated, ``resources.jobs.frame_png``) and have data
    images: list[ImageRec] | None = None
    has_data: bool = True
    upload: list[ImageRec] | None = None  # files received between Upload-Start and Upload-Finish
    # validation mode gt_pool ("honeypots"): the last ``validation_pool`` task frames are the
    # validation frames (outside every annotation job); ``honeypots`` maps a placeholder frame
    # inside an annotation job to the validation frame it shows
    validation_pool: int = 0
    honeypots: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ImageRec:
    """One uploaded media file of a task."""

    name: str
    data: bytes
    width: int
    height: int
    content_type: str


@dataclass
class JobRec:
    id: int
    task_id: int
    type: str  # annotation | ground_truth | consensus_replica
    stage: str
    state: str
    start_frame: int
    stop_frame: int
    created_date: datetime
    updated_date: datetime
    assignee_id: int | None = None
    assignee_updated_date: datetime | None = None
    parent_job_id: int | None = None
    included_frames: list[int] | None = None  # GT jobs only
    annotations: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {"tags": [], "shapes": [], "tracks": []}
    )

    @property
    def frames(self) -> list[int]:
        if self.included_frames is not None:
            return list(self.included_frames)
        return list(range(self.start_frame, self.stop_frame + 1))


@dataclass
class IssueRec:
    id: int
    job_id: int
    frame: int
    position: list[float]
    owner_id: int
    assignee_id: int | None
    resolved: bool
    created_date: datetime
    updated_date: datetime


@dataclass
class CommentRec:
    id: int
    issue_id: int
    owner_id: int
    message: str
    created_date: datetime
    updated_date: datetime


@dataclass
class GuideRec:
    id: int
    task_id: int | None
    project_id: int | None
    markdown: str
    created_date: datetime
    updated_date: datetime


@dataclass
class AssetRec:
    uuid: str
    guide_id: int
    filename: str
    content_type: str
    data: bytes
    owner_id: int
    created_date: datetime


@dataclass
class WebhookRec:
    id: int
    target_url: str
    type: str
    events: list[str]
    secret: str
    content_type: str
    is_active: bool
    enable_ssl: bool
    description: str
    owner_id: int
    org_id: int | None
    project_id: int | None
    created_date: datetime
    updated_date: datetime


@dataclass
class DeliveryRec:
    id: int
    webhook_id: int
    event: str
    status_code: int | None
    changed_fields: str
    request: dict[str, Any]
    response: str
    created_date: datetime


@dataclass
class RequestRec:
    """An async operation (merge, quality computation) as served by /api/requests/{rq_id}."""

    id: str
    type: str  # merge:job | merge:task | calculate:quality
    target: str
    owner_id: int
    org_id: int | None
    project_id: int | None
    task_id: int | None
    job_id: int | None
    created_date: datetime
    polls_left: int
    run: Callable[[], int | None]  # performs the work when the request finishes; returns result_id
    status: str = "queued"
    message: str = ""
    started_date: datetime | None = None
    finished_date: datetime | None = None
    result_id: int | None = None


@dataclass
class SettingsRec:
    """Quality settings (``kind="quality"``) or consensus settings (``kind="consensus"``)."""

    id: int
    kind: str
    task_id: int | None
    project_id: int | None
    values: dict[str, Any]
    created_date: datetime
    updated_date: datetime


@dataclass
class QualityReportRec:
    id: int
    target: str  # job | task
    task_id: int
    job_id: int | None
    parent_id: int | None
    summary: dict[str, Any]
    created_date: datetime
    target_last_updated: datetime
    gt_last_updated: datetime
    assignee_id: int | None
    parameters: dict[str, Any]
    frames: list[int]
    conflicts: list[dict[str, Any]] = field(default_factory=list)


class World:
    """Everything the stand-in knows. Callers hold ``lock`` while reading or changing records."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self.lock = threading.RLock()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._last_id: dict[str, int] = {}
        self.version = "2.73.0"
        self.users: dict[int, UserRec] = {}
        self.orgs: dict[int, OrgRec] = {}
        self.memberships: dict[int, MembershipRec] = {}
        self.tokens: dict[int, TokenRec] = {}
        self.sessions: dict[str, int] = {}  # session id / legacy token key -> user id
        self.csrf: dict[str, str] = {}  # session id -> csrf token
        self.projects: dict[int, ProjectRec] = {}
        self.tasks: dict[int, TaskRec] = {}
        self.labels: dict[int, LabelRec] = {}
        self.jobs: dict[int, JobRec] = {}
        self.issues: dict[int, IssueRec] = {}
        self.comments: dict[int, CommentRec] = {}
        self.guides: dict[int, GuideRec] = {}
        self.assets: dict[str, AssetRec] = {}
        self.webhooks: dict[int, WebhookRec] = {}
        self.deliveries: dict[int, DeliveryRec] = {}
        self.requests: dict[str, RequestRec] = {}
        self.quality_settings: dict[int, SettingsRec] = {}
        self.consensus_settings: dict[int, SettingsRec] = {}
        self.quality_reports: dict[int, QualityReportRec] = {}
        self.request_polls = 0  # polls a new async request answers before it is finished
        self.request_failures: dict[str, list[str]] = {}  # request type -> messages of the next failures
        self.deliverer: Deliverer | None = None  # set while the server runs

    # ids and time ---------------------------------------------------------------------------------
    def next_id(self, kind: str) -> int:
        value = self._last_id.get(kind, 0) + 1
        self._last_id[kind] = value
        return value

    def reserve_id(self, kind: str, value: int) -> None:
        """Make later ``next_id(kind)`` calls return ids above ``value`` (seeded objects keep their ids)."""
        self._last_id[kind] = max(self._last_id.get(kind, 0), value)

    def now(self) -> datetime:
        return self._clock()

    @staticmethod
    def new_secret(nbytes: int = 24) -> str:
        return secrets.token_urlsafe(nbytes)

    # lookups --------------------------------------------------------------------------------------
    def user_by_name(self, username: str) -> UserRec:
        for user in self.users.values():
            if user.username == username:
                return user
        raise KeyError(f"no user {username!r}")

    def org_by_slug(self, slug: str) -> OrgRec | None:
        return next((o for o in self.orgs.values() if o.slug == slug), None)

    def role_of(self, user_id: int, org_id: int | None) -> str | None:
        if org_id is None:
            return None
        for m in self.memberships.values():
            if m.org_id == org_id and m.user_id == user_id:
                return m.role
        return None

    def task_labels(self, task_id: int) -> list[LabelRec]:
        """Top-level labels of a task (its project's labels when it is in a project)."""
        task = self.tasks[task_id]
        if task.project_id is not None:
            return [lb for lb in self.labels.values() if lb.project_id == task.project_id and lb.parent_id is None]
        return [lb for lb in self.labels.values() if lb.task_id == task_id and lb.parent_id is None]

    def job_org(self, job: JobRec) -> int | None:
        return self.tasks[job.task_id].org_id

    def touch_job(self, job: JobRec) -> dict[str, str | None]:
        """Saving annotations touches job, task and project ``updated_date`` (job.touch() in CVAT).

        Returns the previous dates keyed ``job``/``task``/``project`` (for webhook ``before_update``).
        """
        task = self.tasks[job.task_id]
        project = self.projects[task.project_id] if task.project_id is not None else None
        before = {"job": iso(job.updated_date), "task": iso(task.updated_date),
                  "project": iso(project.updated_date) if project is not None else None}
        now = self.now()
        job.updated_date = now
        task.updated_date = now
        if project is not None:
            project.updated_date = now
        return before

    def quality_settings_for(self, *, task_id: int | None = None, project_id: int | None = None) -> SettingsRec:
        for s in self.quality_settings.values():
            if s.kind == "quality" and s.task_id == task_id and s.project_id == project_id:
                return s
        raise KeyError(f"no quality settings for task {task_id} project {project_id}")

    def consensus_settings_for(self, task_id: int) -> SettingsRec | None:
        return next((s for s in self.consensus_settings.values() if s.task_id == task_id), None)

"""Our view of CVAT objects: small frozen dataclasses, independent of cvat_sdk's generated models.

The rest of cvat-ext speaks these types; :mod:`cvat_ext.cvat.wire` parses CVAT's JSON into them.
All datetimes are timezone-aware UTC. Ids are CVAT's integer ids; ``None`` means "not set"
(no project, no assignee, ...).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal, TypedDict

from cvat_ext.errors import ConfigError


class Unset(enum.Enum):
    """Sentinel type for "leave this field alone" where ``None`` already means "clear it"."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


#: pass-nothing marker: ``update_job(7, assignee_id=UNSET)`` keeps the assignee, ``None`` removes it
UNSET: Final = Unset.UNSET

JobType = Literal["annotation", "ground_truth", "consensus_replica"]
JOB_TYPES: Final = ("annotation", "ground_truth", "consensus_replica")
JOB_STAGES: Final = ("annotation", "validation", "acceptance")
JOB_STATES: Final = ("new", "in progress", "completed", "rejected")


class JobQuery(TypedDict, total=False):
    """The filters of a job listing (``GET /api/jobs``), all optional: the keyword arguments of
    :meth:`cvat_ext.cvat.client.CvatClient.iter_jobs` and its fakes.

    ``updated_after`` is tz-aware; ``sort`` defaults to ``"updated_date"``, ``page_size`` to 100."""

    task_id: int | None
    project_id: int | None
    type: str | None
    parent_job_id: int | None
    stage: str | None
    state: str | None
    updated_after: datetime | None
    sort: str
    page_size: int


#: the :class:`JobQuery` keys sent as equality filters, in query-string order
JOB_FILTERS: Final = ("task_id", "project_id", "type", "parent_job_id", "stage", "state")


@dataclass(frozen=True)
class ServerInfo:
    """``GET /api/server/about``: ``version`` as CVAT reports it ("2.73.0"), parsed into a tuple."""

    version: str
    version_tuple: tuple[int, int, int]
    name: str


@dataclass(frozen=True)
class User:
    id: int
    username: str
    first_name: str = ""
    last_name: str = ""
    is_superuser: bool = False


@dataclass(frozen=True)
class Membership:
    """An organization membership; ``role`` is worker|supervisor|maintainer|owner."""

    id: int
    user_id: int
    username: str
    role: str
    is_active: bool
    org_slug: str


@dataclass(frozen=True)
class Job:
    """A CVAT job (``JobRead``). Frames are task frame indices; ``stop_frame`` is inclusive.

    ``consensus_replicas`` is the number of replica jobs of a parent annotation job (0 otherwise);
    ``parent_job_id`` is set on replicas.
    """

    id: int
    task_id: int
    project_id: int | None
    type: str
    stage: str
    state: str
    status: str
    assignee_id: int | None
    assignee_username: str | None
    parent_job_id: int | None
    start_frame: int
    stop_frame: int
    frame_count: int
    updated_date: datetime
    consensus_replicas: int
    organization_id: int | None
    guide_id: int | None


@dataclass(frozen=True)
class Task:
    id: int
    name: str
    project_id: int | None
    guide_id: int | None
    consensus_enabled: bool
    organization_id: int | None
    size: int
    updated_date: datetime


@dataclass(frozen=True)
class ValidationLayout:
    """``GET /api/tasks/{id}/validation_layout``: how a task validates its annotators.

    ``mode``: ``"gt"`` (a GT job over some task frames), ``"gt_pool"`` (honeypots) or None.
    ``validation_frames``: the task frames the GT job covers; ``disabled_frames``: those excluded
    from validation. In ``gt_pool`` mode the annotation jobs hold placeholder frames:
    ``honeypot_frames[i]`` (a task frame inside an annotation job) shows the image of validation
    frame ``honeypot_real_frames[i]``. Frame numbers are task frames; the honeypot tuples are
    parallel and empty outside ``gt_pool`` mode."""

    mode: str | None
    validation_frames: tuple[int, ...] = ()
    disabled_frames: tuple[int, ...] = ()
    honeypot_frames: tuple[int, ...] = ()
    honeypot_real_frames: tuple[int, ...] = ()

    def active_honeypots(self) -> tuple[tuple[int, int], ...]:
        """``(honeypot frame, real frame)`` pairs whose real frame is not disabled, by honeypot frame."""
        disabled = set(self.disabled_frames)
        pairs = zip(self.honeypot_frames, self.honeypot_real_frames, strict=True)
        return tuple(sorted((h, r) for h, r in pairs if r not in disabled))


@dataclass(frozen=True)
class Issue:
    """A CVAT issue. ``position``: 2 numbers = point ``(x, y)``, 4 = rectangle ``xyxy``, more =
    polygon ``(x1, y1, x2, y2, ...)``, absolute pixels on task frame ``frame``."""

    id: int
    job_id: int
    frame: int
    position: tuple[float, ...]
    resolved: bool
    assignee_id: int | None
    owner_id: int | None
    created_date: datetime
    updated_date: datetime


@dataclass(frozen=True)
class Comment:
    id: int
    issue_id: int
    message: str
    owner_id: int | None


@dataclass(frozen=True)
class Guide:
    """An annotation guide (markdown) attached to a task or a project."""

    id: int
    markdown: str
    task_id: int | None
    project_id: int | None


@dataclass(frozen=True)
class Webhook:
    """``type`` is organization|project; ``events`` like ``update:job``. The secret is write-only."""

    id: int
    target_url: str
    type: str
    events: tuple[str, ...]
    is_active: bool
    project_id: int | None


@dataclass(frozen=True)
class RetryPolicy:
    """How the client retries failed HTTP calls.

    Attempt ``n`` (1-based) failing is followed by a sleep of
    ``min(max_delay_s, base_delay_s * 2**(n-1)) * (1 - jitter * U[0,1))`` seconds, or CVAT's
    ``Retry-After`` when it sent one. At most ``max_attempts`` requests are made, and no sleep
    may end later than ``budget_s`` seconds after the first attempt started.
    """

    max_attempts: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    budget_s: float = 120.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"RetryPolicy: max_attempts must be >= 1, got {self.max_attempts}")
        if self.base_delay_s < 0 or self.max_delay_s < 0 or self.budget_s < 0:
            raise ConfigError("RetryPolicy: delays and budget must be >= 0")
        if not 0.0 <= self.jitter <= 1.0:
            raise ConfigError(f"RetryPolicy: jitter must be in [0, 1], got {self.jitter}")

"""CVAT response bodies -> our dataclasses (:mod:`cvat_ext.cvat.records`).

Bodies are untrusted input, so they are validated with pydantic v2. Unlike our own config files
these models use ``extra="ignore"``: every CVAT release adds response fields, and a client that
refuses unknown keys would break on the next server upgrade. Missing or mistyped fields we rely
on raise :class:`~cvat_ext.errors.CvatError` naming the object ("job 812: unexpected response").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from cvat_ext.cvat.records import (
    Comment,
    Guide,
    Issue,
    Job,
    Membership,
    ServerInfo,
    Task,
    User,
    ValidationLayout,
    Webhook,
)
from cvat_ext.errors import CvatError

_M = TypeVar("_M", bound=BaseModel)


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class _UserRef(_Wire):
    id: int
    username: str = ""
    first_name: str = ""
    last_name: str = ""
    is_superuser: bool = False  # in the full user body (/api/users/self), absent from BasicUser


class _About(_Wire):
    name: str = ""
    version: str


class _Job(_Wire):
    id: int
    task_id: int
    project_id: int | None = None
    type: str = "annotation"
    stage: str
    state: str
    status: str = ""
    assignee: _UserRef | None = None
    parent_job_id: int | None = None
    start_frame: int
    stop_frame: int
    frame_count: int = 0
    updated_date: datetime
    consensus_replicas: int | None = None
    replicas_count: int | None = None
    organization: int | None = None
    guide_id: int | None = None


class _Task(_Wire):
    id: int
    name: str = ""
    project_id: int | None = None
    guide_id: int | None = None
    consensus_enabled: bool = False
    organization_id: int | None = None
    organization: int | None = None
    size: int = 0
    updated_date: datetime


class _ValidationLayout(_Wire):
    # frame lists are absent outside their mode (CVAT's serializer skips them)
    mode: str | None = None
    validation_frames: list[int] = []
    disabled_frames: list[int] = []
    honeypot_frames: list[int] = []
    honeypot_real_frames: list[int] = []


class _Issue(_Wire):
    id: int
    job: int
    frame: int
    position: list[float]
    resolved: bool = False
    assignee: _UserRef | None = None
    owner: _UserRef | None = None
    created_date: datetime
    updated_date: datetime | None = None


class _Comment(_Wire):
    id: int
    issue: int
    message: str = ""
    owner: _UserRef | None = None


class _Guide(_Wire):
    id: int
    markdown: str = ""
    task_id: int | None = None
    project_id: int | None = None


class _Webhook(_Wire):
    id: int
    target_url: str
    type: str
    events: list[str] = []
    is_active: bool = True
    project_id: int | None = None


class _Membership(_Wire):
    id: int
    user: _UserRef
    role: str
    is_active: bool = True

    @field_validator("role")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()


def _validate(model: type[_M], data: Any, where: str) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first.get("loc", ())) or "body"
        raise CvatError(f"{where}: unexpected CVAT response: {loc}: {first.get('msg', exc)}") from exc


_VERSION_RE = re.compile(r"^\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?")


def parse_version(version: str) -> tuple[int, int, int]:
    """``"2.73.0"`` -> ``(2, 73, 0)``; suffixes (``-dev``, ``+abc``) are ignored."""
    match = _VERSION_RE.match(version)
    if match is None:
        raise CvatError(f"server about: cannot parse CVAT version {version!r}")
    major, minor, patch = (int(g) if g else 0 for g in match.groups())
    return major, minor, patch


def server_info_from_json(data: Any) -> ServerInfo:
    about = _validate(_About, data, "server about")
    return ServerInfo(version=about.version, version_tuple=parse_version(about.version), name=about.name)


def user_from_json(data: Any, *, where: str = "user") -> User:
    u = _validate(_UserRef, data, where)
    return User(id=u.id, username=u.username, first_name=u.first_name, last_name=u.last_name,
                is_superuser=u.is_superuser)


#: newer servers (SDK 2.80 schema) call replica jobs "replica"; we keep 2.73's name throughout
_JOB_TYPE_ALIASES = {"replica": "consensus_replica"}


def job_from_json(data: Any, *, where: str = "job") -> Job:
    j = _validate(_Job, data, where)
    replicas = j.consensus_replicas if j.consensus_replicas is not None else (j.replicas_count or 0)
    return Job(
        id=j.id,
        task_id=j.task_id,
        project_id=j.project_id,
        type=_JOB_TYPE_ALIASES.get(j.type, j.type),
        stage=j.stage,
        state=j.state,
        status=j.status,
        assignee_id=j.assignee.id if j.assignee else None,
        assignee_username=j.assignee.username if j.assignee else None,
        parent_job_id=j.parent_job_id,
        start_frame=j.start_frame,
        stop_frame=j.stop_frame,
        frame_count=j.frame_count,
        updated_date=_utc(j.updated_date),
        consensus_replicas=replicas,
        organization_id=j.organization,
        guide_id=j.guide_id,
    )


def task_from_json(data: Any, *, where: str = "task") -> Task:
    t = _validate(_Task, data, where)
    return Task(
        id=t.id,
        name=t.name,
        project_id=t.project_id,
        guide_id=t.guide_id,
        consensus_enabled=t.consensus_enabled,
        organization_id=t.organization_id if t.organization_id is not None else t.organization,
        size=t.size,
        updated_date=_utc(t.updated_date),
    )


def validation_layout_from_json(data: Any, *, where: str = "validation layout") -> ValidationLayout:
    v = _validate(_ValidationLayout, data, where)
    if len(v.honeypot_frames) != len(v.honeypot_real_frames):
        raise CvatError(
            f"{where}: unexpected CVAT response: {len(v.honeypot_frames)} honeypot_frames but "
            f"{len(v.honeypot_real_frames)} honeypot_real_frames (they are parallel lists)"
        )
    return ValidationLayout(
        mode=v.mode,
        validation_frames=tuple(v.validation_frames),
        disabled_frames=tuple(v.disabled_frames),
        honeypot_frames=tuple(v.honeypot_frames),
        honeypot_real_frames=tuple(v.honeypot_real_frames),
    )


def issue_from_json(data: Any, *, where: str = "issue") -> Issue:
    i = _validate(_Issue, data, where)
    created = _utc(i.created_date)
    return Issue(
        id=i.id,
        job_id=i.job,
        frame=i.frame,
        position=tuple(float(v) for v in i.position),
        resolved=i.resolved,
        assignee_id=i.assignee.id if i.assignee else None,
        owner_id=i.owner.id if i.owner else None,
        created_date=created,
        updated_date=_utc(i.updated_date) if i.updated_date else created,
    )


def comment_from_json(data: Any, *, where: str = "comment") -> Comment:
    c = _validate(_Comment, data, where)
    return Comment(id=c.id, issue_id=c.issue, message=c.message, owner_id=c.owner.id if c.owner else None)


def guide_from_json(data: Any, *, where: str = "guide") -> Guide:
    g = _validate(_Guide, data, where)
    return Guide(id=g.id, markdown=g.markdown, task_id=g.task_id, project_id=g.project_id)


def webhook_from_json(data: Any, *, where: str = "webhook") -> Webhook:
    w = _validate(_Webhook, data, where)
    return Webhook(
        id=w.id,
        target_url=w.target_url,
        type=w.type,
        events=tuple(sorted(w.events)),
        is_active=w.is_active,
        project_id=w.project_id,
    )


def membership_from_json(data: Any, *, org_slug: str, where: str = "membership") -> Membership:
    m = _validate(_Membership, data, where)
    return Membership(
        id=m.id, user_id=m.user.id, username=m.user.username, role=m.role, is_active=m.is_active, org_slug=org_slug
    )


def expect_mapping(data: Any, where: str) -> dict[str, Any]:
    """``data`` as a JSON object, else a :class:`CvatError` naming ``where``."""
    if not isinstance(data, Mapping):
        raise CvatError(f"{where}: unexpected CVAT response: expected a JSON object, got {type(data).__name__}")
    return dict(data)

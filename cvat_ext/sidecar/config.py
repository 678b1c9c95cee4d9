"""Sidecar settings: a YAML file plus environment variables (pydantic-settings).

Precedence, highest first: environment variables, the YAML file, the defaults below. Environment
variables use the prefix ``CVAT_EXT_`` and ``__`` between nesting levels, e.g.
``CVAT_EXT_CVAT__URL``, ``CVAT_EXT_CVAT__ACCESS_TOKEN``, ``CVAT_EXT_CONSENSUS__MIN_AGREEMENT``.
Lists are given as JSON in the environment (``CVAT_EXT_REVIEWERS__USERNAMES='["rev1","rev2"]'``).

Secrets (the CVAT token, the webhook secret, the state URL which may hold a database password)
are :class:`pydantic.SecretStr`: they print as ``**********`` and never reach a log line. Unknown
keys are rejected so a typo in the YAML file is an error, not a silently ignored setting.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from cvat_ext.consensus.settings import ConsensusSettings
from cvat_ext.errors import ConfigError
from cvat_ext.inputs.text import read_utf8

ENV_PREFIX = "CVAT_EXT_"
ENV_DELIMITER = "__"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CvatSettings(_Section):
    """How to reach CVAT. Use a personal access token of an org **maintainer**."""

    url: str = Field(description="CVAT base URL, e.g. http://cvat-server:8080")
    access_token: SecretStr | None = Field(default=None, description="personal access token (Bearer)")
    username: str | None = None
    password: SecretStr | None = None
    org: str = Field(default="", description="organization slug; empty = personal workspace")
    orgs: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), description="several organization slugs served by one sidecar (with ``org``, if set)"
    )
    timeout_s: float = Field(default=30.0, gt=0)
    retry_max_attempts: int = Field(default=5, ge=1)
    retry_budget_s: float = Field(default=120.0, gt=0)
    max_calls_per_s: float = Field(
        default=20.0, ge=0, description="self rate limit on CVAT requests (all orgs together); 0 = unlimited"
    )
    burst: int = Field(default=40, ge=1, description="requests allowed at once before the rate limit applies")
    write_visibility_s: float = Field(
        default=120.0,
        ge=0,
        description="a create (issue, comment) that timed out or failed ambiguously is looked up by "
        "fingerprint for this long before it may be sent again (CVAT may commit it late)",
    )
    duplicate_watch_s: float = Field(
        default=3600.0,
        ge=0,
        description="after such a create, its job is checked for duplicate issues for this long; "
        "duplicates found are resolved with a comment",
    )

    @field_validator("orgs", mode="before")
    @classmethod
    def _split_orgs(cls, value: Any) -> Any:
        # the environment gives a JSON list or a comma list: CVAT_EXT_CVAT__ORGS='["a","b"]' or 'a,b'
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    return json.loads(text)
                except ValueError as exc:
                    raise ValueError(f"expected a JSON list or a comma list of slugs: {exc}") from None
            return tuple(part.strip() for part in text.split(",") if part.strip())
        return value

    @property
    def org_slugs(self) -> tuple[str, ...]:
        """The organizations served, ``org`` first: ``("",)`` is the personal workspace."""
        slugs = [self.org] if self.org or not self.orgs else []
        return tuple(dict.fromkeys([*slugs, *self.orgs]))

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
        return value

    @model_validator(mode="after")
    def _check_credentials(self) -> CvatSettings:
        has_token = self.access_token is not None and self.access_token.get_secret_value() != ""
        if not has_token and not (self.username and self.password):
            raise ValueError(
                "no CVAT credentials: set cvat.access_token (CVAT_EXT_CVAT__ACCESS_TOKEN) "
                "or cvat.username + cvat.password"
            )
        return self

    @model_validator(mode="after")
    def _check_watch(self) -> CvatSettings:
        if self.duplicate_watch_s < self.write_visibility_s:
            raise ValueError(
                f"duplicate_watch_s ({self.duplicate_watch_s:g}) must be >= write_visibility_s "
                f"({self.write_visibility_s:g}): a late write lands within the window at the earliest"
            )
        return self


class ScopeSettings(_Section):
    """Which jobs the sidecar watches; empty lists = everything visible in the organization."""

    project_ids: tuple[int, ...] = ()
    task_ids: tuple[int, ...] = ()


class ConsensusSection(_Section):
    """Agreement scoring of consensus replicas: when to score and how to decide (here), and how the
    engine matches and merges (``engine``: the one :class:`~cvat_ext.consensus.settings.ConsensusSettings`
    the offline ``qa consensus`` command also uses; e.g. ``CVAT_EXT_CONSENSUS__ENGINE__QUORUM=2``)."""

    enabled: bool = True
    engine: ConsensusSettings = ConsensusSettings()
    min_agreement: float = Field(
        default=0.9, ge=0, le=1, description="pooled pairwise F1 of the replicas; below it the parent goes to review"
    )
    min_replica_agreement: float = Field(
        default=0.9, ge=0, le=1, description="a replica's F1 against the consensus; below it its findings become issues"
    )
    pool_scope: Literal["project", "task", "off"] = Field(
        default="project",
        description="pool each annotator's fitted model across the consensus jobs of a project (a task outside "
        "projects pools per task), per task, or not at all",
    )
    use_ground_truth: bool = Field(
        default=True,
        description="anchor the annotator estimates on the task's accepted ground-truth job when it has one",
    )

    @model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, data: Any) -> Any:
        # engine knobs once sat here; name their new place rather than a bare "extra inputs"
        if isinstance(data, Mapping):
            moved = sorted(k for k in data if k in ConsensusSettings.model_fields)
            if moved:
                where = f"consensus.engine.{moved[0]}"
                raise ValueError(f"{', '.join(moved)}: engine settings live under consensus.engine (e.g. {where})")
        return data


class RulesSettings(_Section):
    """Validation rule packs (files or folders of YAML, see qa_rules/)."""

    packs: tuple[str, ...] = ()
    run_on_stages: tuple[str, ...] = ("annotation",)
    run_on_states: tuple[str, ...] = ("completed",)
    max_errors: int = Field(default=5, ge=0, description="more rule errors than this send the job to review")


class ReviewerSettings(_Section):
    """The expert pool: CVAT usernames, and/or every active org member with one of ``roles``."""

    usernames: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()

    @field_validator("roles")
    @classmethod
    def _check_roles(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        allowed = {"worker", "supervisor", "maintainer", "owner"}
        bad = [r for r in value if r not in allowed]
        if bad:
            raise ValueError(f"unknown org role(s) {bad}, expected some of {sorted(allowed)}")
        return value


Stage = Literal["annotation", "validation", "acceptance"]
State = Literal["new", "in progress", "completed", "rejected"]


class RoutingSettings(_Section):
    """What happens to a job after scoring."""

    enabled: bool = True
    target: Literal["parent", "worst_replica"] = "parent"
    review_stage: Stage = "validation"
    review_state: State = "new"
    pass_stage: Stage | None = Field(default="validation", description="stage for jobs that pass; null = leave")
    pass_state: State = "new"


class MergeSettings(_Section):
    """High-agreement consensus: ``ours`` writes our merge (with scores) to the parent job,
    ``cvat`` asks CVAT's own merge, ``none`` leaves the parent alone."""

    policy: Literal["none", "ours", "cvat"] = "none"


class IssueSettings(_Section):
    enabled: bool = True
    min_severity: Literal["warning", "error"] = "warning"
    max_per_job: int = Field(default=50, ge=0)
    resolve_fixed: bool = True


class QualitySettings(_Section):
    """Request CVAT's own quality report when a task's ground-truth job is accepted and completed."""

    request_reports: bool = True
    wait_timeout_s: float = Field(default=600.0, gt=0)


class GuideSettings(_Section):
    """A QA summary (markdown + PNG chart) in each task's guide, inside a marked block."""

    enabled: bool = True
    min_interval_s: float = Field(default=600.0, ge=0, description="at most one guide update per task per interval")


class StateSettings(_Section):
    """``sqlite:///path/state.db`` (default, one replica) or ``postgresql://user:pw@host/db`` (several)."""

    url: SecretStr = SecretStr("sqlite:///./cvat-ext-state.db")
    lease_ttl_s: float = Field(default=300.0, gt=0)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value()
        if not raw.startswith(("sqlite://", "postgresql://", "postgres://")):
            raise ValueError("expected sqlite:///PATH or postgresql://... (value hidden)")
        return value


class WebhookSettings(_Section):
    enabled: bool = False
    secret: SecretStr | None = None

    @model_validator(mode="after")
    def _check_secret(self) -> WebhookSettings:
        if self.enabled and (self.secret is None or not self.secret.get_secret_value()):
            raise ValueError("webhooks.enabled needs webhooks.secret (CVAT_EXT_WEBHOOKS__SECRET)")
        return self


class ServerSettings(_Section):
    """The HTTP server for /healthz, /metrics and /webhooks/cvat (not started by ``--once``)."""

    enabled: bool = True
    host: str = "0.0.0.0"
    port: int = Field(default=9000, ge=0, le=65535)


class PrefetchSettings(_Section):
    """Warm the SAM function's embedding cache when a job starts (enters ``stages`` x ``states``):
    its first ``max_frames`` frames, fetched at original quality, POSTed ``batch`` at a time as
    ``{"prefetch": [<base64 file>...]}``. ``function_url`` is the function's own HTTP trigger
    (``http://nuclio-pth-facebookresearch-sam-vit-h:8080``) or the Nuclio dashboard's
    ``http://nuclio:8070/api/function_invocations`` together with ``function_name``."""

    enabled: bool = False
    function_url: str = ""
    function_name: str = Field(default="", description="x-nuclio-function-name, for the dashboard invoke URL")
    max_frames: int = Field(default=50, ge=1)
    batch: int = Field(default=8, ge=1, le=16, description="frames per call (the function takes at most 16)")
    timeout_s: float = Field(default=120.0, gt=0, description="per call to the function")
    stages: tuple[str, ...] = ("annotation",)
    states: tuple[str, ...] = ("in progress",)

    @model_validator(mode="after")
    def _check_url(self) -> PrefetchSettings:
        if self.enabled and not self.function_url.startswith(("http://", "https://")):
            raise ValueError("prefetch.enabled needs prefetch.function_url, an http:// or https:// URL")
        return self


class QualificationSettings(_Section):
    """Qualification against gold (a task's ground-truth job): who may work unreviewed.

    Gold checks come from the tasks in ``exam_task_ids`` / ``exam_project_ids`` (both empty: every
    task with a ground-truth job). An annotator is decided once their checks cover
    ``min_gold_frames`` gold frames: qualified at an accuracy (F1 against gold) of at least ``bar``.
    A not-qualified annotator re-qualifies after ``requalify_checks`` passing checks in a row. With
    ``gate``, their completed jobs get an issue saying why and go to review."""

    enabled: bool = False
    bar: float = Field(default=0.9, gt=0, le=1)
    min_gold_frames: int = Field(default=10, ge=1)
    requalify_checks: int = Field(default=2, ge=1)
    exam_task_ids: tuple[int, ...] = ()
    exam_project_ids: tuple[int, ...] = ()
    gate: bool = True


class WorkforceSettings(_Section):
    """Per-annotator records for scorecards (``cvat-ext report annotators``, the report pages)."""

    enabled: bool = True
    qualification: QualificationSettings = QualificationSettings()


class ReportSettings(_Section):
    """Report pages for managers on the sidecar's server (``/reports``), behind CVAT sign-in."""

    enabled: bool = True
    session_ttl_s: float = Field(default=8 * 3600.0, gt=0, description="a sign-in lasts this long")
    secure_cookie: bool = Field(default=False, description="mark the session cookie Secure (behind HTTPS)")
    public_url: str = Field(default="", description="the pages' address as managers reach it "
                            "(http://qa.example:9000); when set, each task guide's QA summary links to its page")


class ScheduledRound(_Section):
    """One pool task whose active-learning rounds the sidecar starts by itself (``cvat-ext al round``'s
    options): a round starts when the previous round's jobs are all ``completed`` (the first at once).
    ``function_url`` is a deployed detector's own HTTP trigger, or the Nuclio dashboard's
    ``http://nuclio:8070/api/function_invocations`` together with ``function_name``."""

    org: str = Field(default="", description="organization slug of the project (one of cvat.org_slugs)")
    project_id: int = Field(ge=1)
    pool_task_id: int = Field(ge=1)
    batch: int = Field(ge=1)
    function_url: str
    function_name: str = ""
    threshold: float = Field(default=0.05, ge=0, le=1)
    mode: Literal["task", "gt"] = "task"
    diversity: float = Field(default=0.5, ge=0, le=1)
    candidates: int = Field(default=4, ge=1)
    nms_window: int = Field(default=0, ge=0)
    segment_size: int | None = Field(default=None, ge=1)
    replicas: int = Field(default=0, ge=0)
    assignees: tuple[str, ...] = Field(default=(), description="CVAT usernames; jobs are assigned in turn")
    max_rounds: int | None = Field(default=None, ge=1, description="stop after this many rounds")

    @model_validator(mode="after")
    def _check(self) -> ScheduledRound:
        if not self.function_url.startswith(("http://", "https://")):
            raise ValueError("function_url must be an http:// or https:// URL")
        if self.replicas == 1:
            raise ValueError("replicas must be 0 or >= 2 (CVAT rejects 1)")
        return self


class ActiveLearningSettings(_Section):
    """Active-learning rounds the sidecar runs without a person at a terminal (off when empty)."""

    rounds: tuple[ScheduledRound, ...] = ()


class ServiceSettings(_Section):
    poll_interval_s: float = Field(default=30.0, gt=0)
    park_after_denials: int = Field(
        default=3,
        ge=1,
        description="a unit CVAT answers 403 this many cycles in a row is parked (dropped from the queue, "
        "audited, counted) instead of retried every cycle",
    )
    reconcile_interval_s: float = Field(default=900.0, gt=0, description="full job listing every interval")
    cursor_overlap_s: float = Field(default=0.001, ge=0, description="re-list this much before the cursor")
    replica_id: str = Field(default="", description="lease owner name; default hostname:pid")


class SidecarSettings(BaseSettings):
    """All sidecar settings. Build with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_DELIMITER,
        extra="forbid",
        frozen=True,
        case_sensitive=False,
    )

    cvat: CvatSettings
    scope: ScopeSettings = ScopeSettings()
    consensus: ConsensusSection = ConsensusSection()
    rules: RulesSettings = RulesSettings()
    reviewers: ReviewerSettings = ReviewerSettings()
    routing: RoutingSettings = RoutingSettings()
    merge: MergeSettings = MergeSettings()
    issues: IssueSettings = IssueSettings()
    quality: QualitySettings = QualitySettings()
    guide: GuideSettings = GuideSettings()
    state: StateSettings = StateSettings()
    webhooks: WebhookSettings = WebhookSettings()
    server: ServerSettings = ServerSettings()
    prefetch: PrefetchSettings = PrefetchSettings()
    active_learning: ActiveLearningSettings = ActiveLearningSettings()
    reports: ReportSettings = ReportSettings()
    workforce: WorkforceSettings = WorkforceSettings()
    service: ServiceSettings = ServiceSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # the YAML file arrives as init kwargs; the environment overrides it (12-factor deployments)
        return env_settings, init_settings


def _format_errors(exc: ValidationError, source: str) -> str:
    # built from loc + msg only: pydantic's own str() echoes input values, which may be secrets
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        env = ENV_PREFIX + ENV_DELIMITER.join(str(p) for p in err["loc"]).upper() if loc else ""
        hint = f" (or env {env})" if env and err["type"] == "missing" else ""
        if loc == "cvat" and err["type"] == "missing":
            hint = " (set CVAT_EXT_CVAT__URL and CVAT_EXT_CVAT__ACCESS_TOKEN, or a cvat: section)"
        lines.append(f"  {loc or '<root>'}: {err['msg']}{hint}")
    return f"{source}: invalid sidecar settings:\n" + "\n".join(lines)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The YAML mapping in ``path``; ConfigError naming the file for a missing or bad file."""
    p = Path(path)
    try:
        text = read_utf8(p)
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config file: {exc.strerror or exc}") from exc
    except ValueError as exc:  # not UTF-8: the message names the file, line and column
        raise ConfigError(str(exc)) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{p}:{mark.line + 1}" if mark is not None else str(p)
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping of settings at the top level, got {type(data).__name__}")
    return data


def load_settings(path: str | Path | None = None, *, overrides: Mapping[str, Any] | None = None) -> SidecarSettings:
    """Settings from the YAML file at ``path`` (optional), the environment and ``overrides``.

    ``overrides`` (tests, tools) has the same shape as the YAML file and is merged over it; the
    environment still wins over both.
    Raises ConfigError with one line per problem and the env var that would fix a missing value.
    """
    data: dict[str, Any] = read_yaml(path) if path is not None else {}
    source = str(path) if path is not None else "environment"
    try:
        settings = SidecarSettings(**_deep_merge(data, overrides or {}))
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source)) from None
    return settings


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def replica_id(settings: SidecarSettings) -> str:
    """This process's lease-owner name."""
    if settings.service.replica_id:
        return settings.service.replica_id
    return f"{os.uname().nodename}:{os.getpid()}"


def secret_values(settings: SidecarSettings) -> list[str]:
    """Every secret in the settings (for the log redaction filter)."""
    found = [settings.cvat.access_token, settings.cvat.password, settings.webhooks.secret, settings.state.url]
    values = [s.get_secret_value() for s in found if s is not None and s.get_secret_value()]
    return [v for v in values if len(v) >= 4]

"""CvatClient: the only door from cvat-ext to a CVAT server (cvat-sdk 2.80, server 2.73+).

Every call goes through cvat-sdk's generated endpoints (``jobs_api.retrieve`` & co.) with
``_parse_response=False``: we read the raw JSON and parse it into our own dataclasses
(:mod:`cvat_ext.cvat.wire`), because the SDK's typed models break on 2.73 quality bodies and
are slow on large annotation bodies (see :mod:`cvat_ext.cvat.versions`). Bodies the SDK's
request models cannot express (annotations, quality settings) are sent through
``ApiClient.call_api`` on the SDK's own endpoint definitions.

Per call: the org context (``X-Organization``) when ``org`` is set, retries with backoff
(:mod:`cvat_ext.cvat.retry`), translation of every failure into :mod:`cvat_ext.errors`
(:mod:`cvat_ext.cvat.translate`), and a count in :attr:`CvatClient.calls`
(``"GET /api/jobs/{id}"`` -> requests made, retries included).

The methods are grouped by concept: jobs, tasks, annotations, labels and users here; consensus,
async requests and quality in :mod:`cvat_ext.cvat.quality`; issues, comments, guides, assets and
webhooks in :mod:`cvat_ext.cvat.publishing`; task creation from images and task frames in
:mod:`cvat_ext.cvat.tasks`; HTTP, retries and login in
:mod:`cvat_ext.cvat.transport`.

Not thread-safe: use one client per thread.
"""

from __future__ import annotations

import collections
import json
import logging
import random
import re
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, Unpack

from cvat_sdk.api_client import models

from cvat_ext.annotations.model import JobAnnotations, JobMeta, LabelSet
from cvat_ext.cvat import wire
from cvat_ext.cvat.publishing import PublishingCalls
from cvat_ext.cvat.quality import QualityCalls
from cvat_ext.cvat.records import (
    JOB_FILTERS,
    UNSET,
    Job,
    JobQuery,
    Membership,
    RetryPolicy,
    ServerInfo,
    Task,
    Unset,
    User,
    ValidationLayout,
)
from cvat_ext.cvat.tasks import TaskCalls
from cvat_ext.cvat.transport import JsonText, Transport
from cvat_ext.cvat.versions import ServerFeatures, features_for
from cvat_ext.errors import ConfigError, CvatConflictError

log = logging.getLogger(__name__)

_ANNOTATION_ACTIONS = ("create", "update", "delete")


def _iso_utc(value: datetime) -> str:
    if value.tzinfo is None:
        raise ConfigError(f"updated_after must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _label_owner(job_id: int | None, task_id: int | None, project_id: int | None) -> tuple[dict[str, int], str]:
    """The one owner of a labels call as query parameters, and its name ("task 52 labels")."""
    given = {k: v for k, v in {"job_id": job_id, "task_id": task_id, "project_id": project_id}.items() if v is not None}
    if len(given) != 1:
        raise ConfigError(f"get_labels needs exactly one of job_id, task_id, project_id, got {given or 'none'}")
    ((key, value),) = given.items()
    return given, f"{key.removesuffix('_id')} {value} labels"


class CvatClient(PublishingCalls, QualityCalls, TaskCalls):
    """A CVAT REST client for cvat-ext (see DESIGN.md "cvat client" and README "CVAT client").

    Authenticates with a personal access token (``Authorization: Bearer``) or with a username and
    password (session login on first use; HTTP Basic when the server has no login endpoint).
    ``sleep``/``clock``/``rng`` are injectable so tests never wait.
    """

    def __init__(
        self,
        url: str,
        *,
        access_token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        org: str | None = None,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008  (frozen, so sharing the default is safe)
        timeout_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        if not url or not re.match(r"^https?://", url):
            raise ConfigError(f"CVAT url must start with http:// or https://, got {url!r}")
        if access_token is None and (username is None or password is None):
            raise ConfigError("CVAT credentials missing: give access_token, or username and password")
        self.url = url.rstrip("/")
        self.org = org
        self._clock = clock
        self._sleep = sleep
        self._server: ServerInfo | None = None
        self._t = Transport(
            self.url,
            access_token=access_token,
            username=username,
            password=password,
            org=org,
            retry=retry,
            timeout_s=timeout_s,
            sleep=sleep,
            clock=clock,
            rng=rng or random.Random(),
        )
        self._api = self._t.api
        #: HTTP requests made, by "METHOD /api/path/{template}" (retries included)
        self.calls: collections.Counter[str] = self._t.calls

    # ------------------------------------------------------------------------------------------
    # lifecycle

    def close(self) -> None:
        self._t.close()

    def __enter__(self) -> CvatClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CvatClient({self.url!r}, org={self.org!r})"

    # ------------------------------------------------------------------------------------------
    # server and users

    def about(self) -> ServerInfo:
        """``GET /api/server/about``; also remembered for version adaptation."""
        data = self._t.json("server about", lambda: self._api.server_api.retrieve_about(**self._t.opts))
        self._server = wire.server_info_from_json(data)
        return self._server

    def features(self) -> ServerFeatures:
        """Version-dependent switches (fetches ``about`` once); raises CvatVersionError when too old."""
        return features_for(self._server or self.about())

    def whoami(self) -> User:
        data = self._t.json("current user", lambda: self._api.users_api.retrieve_self(**self._t.opts))
        return wire.user_from_json(data, where="current user")

    def list_users(self) -> list[User]:
        """Users visible in the org context (only org members when ``org`` is set)."""
        rows = self._t.pages("users", lambda p: self._api.users_api.list(page=p, page_size=100, **self._t.opts))
        return [wire.user_from_json(r, where="users") for r in rows]

    def list_memberships(self, *, role: str | None = None) -> list[Membership]:
        """Memberships of the current org (``org`` must be set); optionally one ``role`` only."""
        if not self.org:
            raise ConfigError("list_memberships needs an organization: create the client with org='<slug>'")
        filters: dict[str, Any] = {"role": role} if role else {}
        what = f"memberships of org '{self.org}'"
        rows = self._t.pages(
            what, lambda p: self._api.memberships_api.list(page=p, page_size=100, **filters, **self._t.opts)
        )
        return [wire.membership_from_json(r, org_slug=self.org, where=what) for r in rows]

    # ------------------------------------------------------------------------------------------
    # jobs and tasks

    def iter_jobs(self, **query: Unpack[JobQuery]) -> Iterator[Job]:
        """Jobs matching the filters (:class:`~cvat_ext.cvat.records.JobQuery`), all pages, in
        ``sort`` order.

        ``updated_after`` (tz-aware) becomes the JSON-logic filter
        ``{">": [{"var": "updated_date"}, "<iso>"]}``: with ``sort="updated_date"`` this is the
        change-detection cursor (annotation saves touch the job's ``updated_date``).
        """
        if query.get("type") == "consensus_replica":  # the name differs by server version (asks /about once)
            query["type"] = self.features().replica_job_type
        filters: dict[str, Any] = {k: query.get(k) for k in JOB_FILTERS if query.get(k) is not None}
        updated_after = query.get("updated_after")
        if updated_after is not None:
            filters["filter"] = json.dumps({">": [{"var": "updated_date"}, _iso_utc(updated_after)]})
        sort = query.get("sort", "updated_date")
        if sort:
            filters["sort"] = sort
        page_size = query.get("page_size", 100)
        where = ", ".join(f"{k}={v}" for k, v in filters.items() if k != "filter")
        what = f"jobs ({where})" if where else "jobs"
        rows = self._t.pages(
            # raw query: the SDK's enum for ``type`` lacks 2.73's "consensus_replica"
            what,
            lambda p: self._t.raw(
                self._api.jobs_api.list_endpoint, query=[*filters.items(), ("page", p), ("page_size", page_size)]
            ),
        )
        for row in rows:
            yield wire.job_from_json(row, where=what)

    def list_jobs(self, **query: Unpack[JobQuery]) -> list[Job]:
        """:meth:`iter_jobs` as a list."""
        return list(self.iter_jobs(**query))

    def get_job(self, job_id: int) -> Job:
        what = f"job {job_id}"
        return wire.job_from_json(
            self._t.json(what, lambda: self._api.jobs_api.retrieve(job_id, **self._t.opts)), where=what
        )

    def update_job(
        self,
        job_id: int,
        *,
        assignee_id: int | Unset | None = UNSET,
        stage: str | None = None,
        state: str | None = None,
    ) -> Job:
        """``PATCH /api/jobs/{id}``: assignee (``None`` unassigns), stage, state.

        CVAT resets ``state`` to ``new`` when ``stage`` changes alone. To make "change the stage"
        mean only that, a ``stage`` without ``state`` re-sends the job's current state (one extra
        GET); pass ``state="new"`` for CVAT's reset. With nothing to change, returns the job.
        """
        what = f"job {job_id}"
        fields: dict[str, Any] = {}
        if not isinstance(assignee_id, Unset):
            fields["assignee"] = assignee_id
        if stage is not None:
            fields["stage"] = stage
            fields["state"] = state if state is not None else self.get_job(job_id).state
        elif state is not None:
            fields["state"] = state
        if not fields:
            return self.get_job(job_id)
        request = models.PatchedJobWriteRequest(**fields)
        data = self._t.json(
            what, lambda: self._api.jobs_api.partial_update(job_id, patched_job_write_request=request, **self._t.opts)
        )
        return wire.job_from_json(data, where=what)

    def create_gt_job(self, task_id: int, frames: Sequence[int]) -> Job:
        """``POST /api/jobs``: the task's ground-truth job over exactly ``frames`` (task frame indices,
        ``frame_selection_method: manual``). CVAT allows one GT job per task: if the task has one,
        raises :class:`CvatConflictError` naming it (checked first; one extra GET)."""
        what = f"task {task_id}: new ground-truth job"
        chosen = sorted({int(f) for f in frames})
        if not chosen or chosen[0] < 0:
            raise ConfigError(f"{what}: need at least one frame index >= 0, got {list(frames)[:10]}")
        existing = self.list_jobs(task_id=task_id, type="ground_truth")
        if existing:
            raise CvatConflictError(
                f"{what}: the task already has ground-truth job {existing[0].id} and CVAT allows one per task; "
                "delete it or add the frames to it in CVAT",
                status=409,
                method="POST",
                path="/api/jobs",
            )
        request = models.JobWriteRequest(
            type="ground_truth", task_id=task_id, frame_selection_method="manual", frames=chosen
        )
        data = self._t.json(what, lambda: self._api.jobs_api.create(request, **self._t.opts))
        return wire.job_from_json(data, where=what)

    def get_task(self, task_id: int) -> Task:
        what = f"task {task_id}"
        data = self._t.json(what, lambda: self._api.tasks_api.retrieve(task_id, **self._t.opts))
        return wire.task_from_json(data, where=what)

    def get_validation_layout(self, task_id: int) -> ValidationLayout:
        """``GET /api/tasks/{id}/validation_layout`` (CVAT 2.20+): the task's validation mode, its
        validation frames and, in ``gt_pool`` mode, its honeypots. An older server answers 404
        (:class:`~cvat_ext.errors.CvatNotFoundError`)."""
        what = f"task {task_id} validation layout"
        data = self._t.json(
            what, lambda: self._api.tasks_api.retrieve_validation_layout(task_id, **self._t.opts)
        )
        return wire.validation_layout_from_json(data, where=what)

    # ------------------------------------------------------------------------------------------
    # annotations, labels, frame meta

    def get_annotations(self, job_id: int) -> JobAnnotations:
        """``GET /api/jobs/{id}/annotations``: tags, shapes and tracks in our types."""
        from cvat_ext.annotations.cvat_json import parse_job_annotations

        return parse_job_annotations(self.get_annotations_json(job_id), where=f"job {job_id}")

    def get_annotations_json(self, job_id: int) -> dict[str, Any]:
        """The job's annotations as CVAT's raw LabeledData JSON (what ``cvat-ext cvat annotations`` saves)."""
        what = f"job {job_id} annotations"
        return self._t.object(what, lambda: self._api.jobs_api.retrieve_annotations(job_id, **self._t.opts))

    def get_annotations_bytes(self, job_id: int) -> bytes:
        """``GET /api/jobs/{id}/annotations`` as the bytes CVAT sent (``LabeledData`` JSON), not
        decoded: :func:`~cvat_ext.annotations.columnar_json.read_annotations_bytes` reads them
        straight into columns, about twice as fast as decoding them into dicts first.

        Same call, retries and errors as :meth:`get_annotations_json`; a body that is not a JSON
        object (a proxy's error page, an empty answer) raises :class:`~cvat_ext.errors.CvatError`
        naming the job here, as the decoding client does. Anything wrong inside the object is the
        reader's to name (``job 12: shapes[3] ...``)."""
        what = f"job {job_id} annotations"
        return self._t.object_bytes(what, lambda: self._api.jobs_api.retrieve_annotations(job_id, **self._t.opts))

    def put_annotations(self, job_id: int, ann: JobAnnotations) -> JobAnnotations:
        """Replace all annotations of the job; returns what CVAT saved (with ids)."""
        from cvat_ext.annotations.cvat_json import dump_job_annotations, parse_job_annotations

        what = f"job {job_id} annotations"
        body = dump_job_annotations(ann)
        endpoint = self._api.jobs_api.update_annotations_endpoint
        data = self._t.json(what, lambda: self._t.raw(endpoint, path_params={"id": job_id}, body=body))
        if data is None:  # older servers answer without a body
            return self.get_annotations(job_id)
        return parse_job_annotations(wire.expect_mapping(data, what), where=f"job {job_id}")

    def put_annotations_json(self, job_id: int, text: str) -> dict[str, int]:
        """Replace all annotations of the job with ``text`` (CVAT ``LabeledData`` JSON, e.g. a merge
        written from columns, sent as it is); returns how many shapes, tags and tracks CVAT saved.

        The same request as :meth:`put_annotations`, without an object per annotation on either side.
        """
        what = f"job {job_id} annotations"
        endpoint = self._api.jobs_api.update_annotations_endpoint
        data = self._t.json(what, lambda: self._t.raw(endpoint, path_params={"id": job_id}, body=JsonText(text)))
        saved = wire.expect_mapping(data, what) if data is not None else self.get_annotations_json(job_id)
        counts: dict[str, int] = {}
        for key in ("shapes", "tags", "tracks"):
            items = saved.get(key)
            counts[key] = len(items) if isinstance(items, list) else 0
        return counts

    def patch_annotations(
        self, job_id: int, action: Literal["create", "update", "delete"], ann: JobAnnotations
    ) -> JobAnnotations:
        """Incremental change; CVAT echoes only the objects created/updated/deleted."""
        from cvat_ext.annotations.cvat_json import dump_job_annotations, parse_job_annotations

        if action not in _ANNOTATION_ACTIONS:
            raise ConfigError(f"job {job_id}: annotation action must be one of {_ANNOTATION_ACTIONS}, got {action!r}")
        what = f"job {job_id} annotations ({action})"
        body = dump_job_annotations(ann)
        endpoint = self._api.jobs_api.partial_update_annotations_endpoint
        data = self._t.json(
            what, lambda: self._t.raw(endpoint, path_params={"id": job_id}, query=[("action", action)], body=body)
        )
        if data is None:
            return JobAnnotations()
        return parse_job_annotations(wire.expect_mapping(data, what), where=f"job {job_id}")

    def get_labels(
        self, *, job_id: int | None = None, task_id: int | None = None, project_id: int | None = None
    ) -> LabelSet:
        """Labels of one job, task or project (exactly one of the three)."""
        from cvat_ext.annotations.cvat_json import parse_labels

        _, what = _label_owner(job_id, task_id, project_id)
        return parse_labels(self.get_labels_json(job_id=job_id, task_id=task_id, project_id=project_id), where=what)

    def get_labels_json(
        self, *, job_id: int | None = None, task_id: int | None = None, project_id: int | None = None
    ) -> list[dict[str, Any]]:
        """The labels of one job, task or project as CVAT serves them (every page's ``results``, in
        order): what ``cvat-ext cvat fetch`` saves for ``--labels``."""
        given, what = _label_owner(job_id, task_id, project_id)
        return list(
            self._t.pages(what, lambda p: self._api.labels_api.list(page=p, page_size=100, **given, **self._t.opts))
        )

    def get_job_meta(self, job_id: int) -> JobMeta:
        """``GET /api/jobs/{id}/data/meta``: frame sizes and names."""
        from cvat_ext.annotations.cvat_json import parse_job_meta

        return parse_job_meta(self.get_job_meta_json(job_id), where=f"job {job_id}")

    def get_job_meta_json(self, job_id: int) -> dict[str, Any]:
        """The job's frame meta as CVAT serves it: what ``cvat-ext cvat fetch`` saves for ``--meta``."""
        what = f"job {job_id} frame meta"
        return self._t.object(what, lambda: self._api.jobs_api.retrieve_data_meta(job_id, **self._t.opts))

    def get_frame(self, job_id: int, frame_idx: int, quality: Literal["original", "compressed"] = "original") -> bytes:
        """``GET /api/jobs/{id}/data?type=frame&number=N&quality=...``: the frame's image file bytes.

        ``frame_idx`` is the task-level frame number (within the job's ``start_frame..stop_frame``).
        """
        what = f"job {job_id} frame {frame_idx}"
        resp = self._t.request(
            what,
            lambda: self._api.jobs_api.retrieve_data(
                job_id, type="frame", number=frame_idx, quality=quality, **self._t.opts
            ),
        )
        return resp.data

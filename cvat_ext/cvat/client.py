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

Not thread-safe: use one client per thread.
"""

from __future__ import annotations

import collections
import json
import logging
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal

from cvat_sdk.api_client import models

from cvat_ext.annotations.model import JobAnnotations, JobMeta, LabelSet
from cvat_ext.cvat import wire
from cvat_ext.cvat.models import (
    UNSET,
    Comment,
    Guide,
    Issue,
    Job,
    Membership,
    RetryPolicy,
    ServerInfo,
    Task,
    Unset,
    User,
    Webhook,
)
from cvat_ext.cvat.translate import body_excerpt
from cvat_ext.cvat.transport import Transport, _NamedBytes
from cvat_ext.cvat.versions import ServerFeatures, features_for
from cvat_ext.errors import ConfigError, CvatError, CvatHttpError, CvatNotFoundError, CvatRequestFailedError

log = logging.getLogger(__name__)

_ANNOTATION_ACTIONS = ("create", "update", "delete")


def _iso_utc(value: datetime) -> str:
    if value.tzinfo is None:
        raise ConfigError(f"updated_after must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class CvatClient:
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

    def iter_jobs(
        self,
        *,
        task_id: int | None = None,
        project_id: int | None = None,
        type: str | None = None,
        parent_job_id: int | None = None,
        stage: str | None = None,
        state: str | None = None,
        updated_after: datetime | None = None,
        sort: str = "updated_date",
        page_size: int = 100,
    ) -> Iterator[Job]:
        """Jobs matching the filters, all pages, in ``sort`` order.

        ``updated_after`` (tz-aware) becomes the JSON-logic filter
        ``{">": [{"var": "updated_date"}, "<iso>"]}``: with ``sort="updated_date"`` this is the
        change-detection cursor (annotation saves touch the job's ``updated_date``).
        """
        if type == "consensus_replica" and self._server is not None:
            type = features_for(self._server).replica_job_type
        filters: dict[str, Any] = {
            k: v
            for k, v in {
                "task_id": task_id,
                "project_id": project_id,
                "type": type,
                "parent_job_id": parent_job_id,
                "stage": stage,
                "state": state,
            }.items()
            if v is not None
        }
        if updated_after is not None:
            filters["filter"] = json.dumps({">": [{"var": "updated_date"}, _iso_utc(updated_after)]})
        if sort:
            filters["sort"] = sort
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

    def list_jobs(
        self,
        *,
        task_id: int | None = None,
        project_id: int | None = None,
        type: str | None = None,
        parent_job_id: int | None = None,
        stage: str | None = None,
        state: str | None = None,
        updated_after: datetime | None = None,
        sort: str = "updated_date",
        page_size: int = 100,
    ) -> list[Job]:
        """:meth:`iter_jobs` as a list."""
        return list(
            self.iter_jobs(
                task_id=task_id,
                project_id=project_id,
                type=type,
                parent_job_id=parent_job_id,
                stage=stage,
                state=state,
                updated_after=updated_after,
                sort=sort,
                page_size=page_size,
            )
        )

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

    def get_task(self, task_id: int) -> Task:
        what = f"task {task_id}"
        data = self._t.json(what, lambda: self._api.tasks_api.retrieve(task_id, **self._t.opts))
        return wire.task_from_json(data, where=what)

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

        given = {
            k: v for k, v in {"job_id": job_id, "task_id": task_id, "project_id": project_id}.items() if v is not None
        }
        if len(given) != 1:
            raise ConfigError(f"get_labels needs exactly one of job_id, task_id, project_id, got {given or 'none'}")
        ((key, value),) = given.items()
        what = f"{key.removesuffix('_id')} {value} labels"
        rows = list(
            self._t.pages(what, lambda p: self._api.labels_api.list(page=p, page_size=100, **given, **self._t.opts))
        )
        return parse_labels(rows, where=what)

    def get_job_meta(self, job_id: int) -> JobMeta:
        """``GET /api/jobs/{id}/data/meta``: frame sizes and names."""
        from cvat_ext.annotations.cvat_json import parse_job_meta

        what = f"job {job_id} frame meta"
        data = self._t.object(what, lambda: self._api.jobs_api.retrieve_data_meta(job_id, **self._t.opts))
        return parse_job_meta(data, where=f"job {job_id}")

    # ------------------------------------------------------------------------------------------
    # issues and comments

    def create_issue(
        self,
        job_id: int,
        frame: int,
        position: Sequence[float],
        message: str,
        assignee_id: int | None = None,
    ) -> Issue:
        """Open an issue on task frame ``frame`` of the job; ``message`` becomes its first comment.

        ``position``: ``(x, y)`` point, ``(x1, y1, x2, y2)`` rectangle, or a polygon with more
        points, absolute pixels.
        """
        what = f"job {job_id} frame {frame}: new issue"
        coords = [float(v) for v in position]
        if len(coords) < 2 or len(coords) % 2:
            raise ConfigError(f"{what}: position needs an even number (>= 2) of coordinates, got {len(coords)}")
        fields: dict[str, Any] = {"frame": frame, "position": coords, "job": job_id, "message": message}
        if assignee_id is not None:
            fields["assignee"] = assignee_id
        request = models.IssueWriteRequest(**fields)
        data = self._t.json(what, lambda: self._api.issues_api.create(request, **self._t.opts))
        return wire.issue_from_json(data, where=what)

    def list_issues(self, *, job_id: int | None = None, task_id: int | None = None) -> list[Issue]:
        filters = {k: v for k, v in {"job_id": job_id, "task_id": task_id}.items() if v is not None}
        what = "issues" + (" (" + ", ".join(f"{k}={v}" for k, v in filters.items()) + ")" if filters else "")
        rows = self._t.pages(
            what, lambda p: self._api.issues_api.list(page=p, page_size=100, **filters, **self._t.opts)
        )
        return [wire.issue_from_json(r, where=what) for r in rows]

    def update_issue(
        self, issue_id: int, *, resolved: bool | None = None, assignee_id: int | Unset | None = UNSET
    ) -> Issue:
        what = f"issue {issue_id}"
        fields: dict[str, Any] = {}
        if resolved is not None:
            fields["resolved"] = resolved
        if not isinstance(assignee_id, Unset):
            fields["assignee"] = assignee_id
        if not fields:
            data = self._t.json(what, lambda: self._api.issues_api.retrieve(issue_id, **self._t.opts))
            return wire.issue_from_json(data, where=what)
        request = models.PatchedIssueWriteRequest(**fields)
        data = self._t.json(
            what,
            lambda: self._api.issues_api.partial_update(issue_id, patched_issue_write_request=request, **self._t.opts),
        )
        return wire.issue_from_json(data, where=what)

    def add_comment(self, issue_id: int, message: str) -> Comment:
        what = f"issue {issue_id}: new comment"
        request = models.CommentWriteRequest(issue=issue_id, message=message)
        data = self._t.json(what, lambda: self._api.comments_api.create(request, **self._t.opts))
        return wire.comment_from_json(data, where=what)

    def list_comments(self, issue_id: int) -> list[Comment]:
        what = f"issue {issue_id} comments"
        rows = self._t.pages(
            what, lambda p: self._api.comments_api.list(issue_id=issue_id, page=p, page_size=100, **self._t.opts)
        )
        return [wire.comment_from_json(r, where=what) for r in rows]

    # ------------------------------------------------------------------------------------------
    # consensus and async requests

    def get_consensus_settings(self, task_id: int) -> dict[str, Any]:
        """The task's consensus settings, raw (``{id, task_id, iou_threshold}`` on 2.73)."""
        what = f"task {task_id} consensus settings"
        rows = list(
            self._t.pages(
                what, lambda p: self._api.consensus_api.list_settings(task_id=task_id, page=p, **self._t.opts)
            )
        )
        return self._single(rows, what)

    def update_consensus_settings(self, settings_id: int, **fields: Any) -> dict[str, Any]:
        """PATCH the settings; note CVAT 2.73 silently ignores unknown fields (e.g. ``quorum``)."""
        what = f"consensus settings {settings_id}"
        endpoint = self._api.consensus_api.partial_update_settings_endpoint
        return self._t.object(what, lambda: self._t.raw(endpoint, path_params={"id": settings_id}, body=fields))

    def request_merge(self, *, job_id: int | None = None, task_id: int | None = None) -> str:
        """Start a consensus merge of a parent job or a whole task; returns the rq_id to wait on.

        The merge REPLACES the parent job's annotations. If the same merge is already running
        CVAT answers 409 with its rq_id; that rq_id is returned (and logged) instead of an error.
        """
        if (job_id is None) == (task_id is None):
            raise ConfigError("request_merge needs exactly one of job_id, task_id")
        what = f"job {job_id} merge" if job_id is not None else f"task {task_id} merge"
        request = models.ConsensusMergeCreateRequest(
            **({"job_id": job_id} if job_id is not None else {"task_id": task_id})
        )
        try:
            data = self._t.object(
                what,
                lambda: self._api.consensus_api.create_merge(consensus_merge_create_request=request, **self._t.opts),
            )
        except CvatHttpError as exc:
            rq_id = self._rq_id_of_conflict(exc)
            if rq_id is None:
                raise
            log.info("%s already running as %s", what, rq_id)
            return rq_id
        return self._rq_id(data, what)

    def wait_request(self, rq_id: str, *, timeout_s: float = 600.0, poll_s: float = 2.0) -> dict[str, Any]:
        """Poll ``/api/requests/{rq_id}`` until ``finished`` (returns the request JSON).

        Raises :class:`CvatRequestFailedError` with CVAT's message when it ends ``failed``, and
        :class:`CvatError` when it is still queued/started after ``timeout_s``.
        """
        what = f"request {rq_id}"
        start = self._clock()
        while True:
            data = self._t.object(what, lambda: self._api.requests_api.retrieve(rq_id, **self._t.opts))
            status = str(data.get("status", ""))
            if status == "finished":
                return data
            if status == "failed":
                message = " ".join(str(data.get("message") or "no message").split())
                raise CvatRequestFailedError(f"{what} failed: {message}")
            waited = self._clock() - start
            if waited + poll_s > timeout_s:
                raise CvatError(f"{what} still {status or 'unknown'} after {waited:.1f} s (timeout {timeout_s:g} s)")
            self._sleep(poll_s)

    # ------------------------------------------------------------------------------------------
    # quality control (raw JSON on every server version; see versions.py)

    def get_quality_settings(self, task_id: int) -> dict[str, Any]:
        what = f"task {task_id} quality settings"
        rows = list(
            self._t.pages(
                what,
                lambda p: self._api.quality_api.list_settings(task_id=task_id, page=p, page_size=100, **self._t.opts),
            )
        )
        matching = [r for r in rows if r.get("task_id") in (task_id, None)] or rows
        return self._single(matching, what)

    def update_quality_settings(self, settings_id: int, **fields: Any) -> dict[str, Any]:
        """PATCH quality settings with CVAT 2.73's flat fields (``iou_threshold``, ``job_filter``...)."""
        what = f"quality settings {settings_id}"
        if self._server is not None and not features_for(self._server).flat_quality_settings:
            log.warning(
                "CVAT %s uses requirement-based quality settings; flat fields may be ignored", self._server.version
            )
        endpoint = self._api.quality_api.partial_update_settings_endpoint
        return self._t.object(what, lambda: self._t.raw(endpoint, path_params={"id": settings_id}, body=fields))

    def request_quality_report(self, task_id: int) -> str:
        """Start a task quality report; ``wait_request`` then gives ``result_id`` = report id."""
        what = f"task {task_id} quality report"
        request = models.QualityReportCreateRequest(task_id=task_id)
        data = self._t.object(
            what, lambda: self._api.quality_api.create_report(quality_report_create_request=request, **self._t.opts)
        )
        return self._rq_id(data, what)

    def list_quality_reports(self, *, task_id: int | None = None, job_id: int | None = None) -> list[dict[str, Any]]:
        filters = {k: v for k, v in {"task_id": task_id, "job_id": job_id}.items() if v is not None}
        what = "quality reports" + (" (" + ", ".join(f"{k}={v}" for k, v in filters.items()) + ")" if filters else "")
        return list(
            self._t.pages(
                what,
                lambda p: self._api.quality_api.list_reports(page=p, page_size=100, **filters, **self._t.opts),
            )
        )

    def get_quality_report(self, report_id: int) -> dict[str, Any]:
        what = f"quality report {report_id}"
        return self._t.object(what, lambda: self._api.quality_api.retrieve_report(report_id, **self._t.opts))

    def get_quality_report_data(self, report_id: int) -> dict[str, Any]:
        """The full report (documented as binary; 2.73 returns a JSON object)."""
        what = f"quality report {report_id} data"
        return self._t.object(what, lambda: self._api.quality_api.retrieve_report_data(report_id, **self._t.opts))

    def list_quality_conflicts(self, report_id: int) -> list[dict[str, Any]]:
        what = f"quality report {report_id} conflicts"
        return list(
            self._t.pages(
                what,
                lambda p: self._api.quality_api.list_conflicts(
                    report_id=report_id, page=p, page_size=100, **self._t.opts
                ),
            )
        )

    # ------------------------------------------------------------------------------------------
    # guides and assets

    def get_guide(self, guide_id: int) -> Guide:
        what = f"guide {guide_id}"
        return wire.guide_from_json(
            self._t.json(what, lambda: self._api.guides_api.retrieve(guide_id, **self._t.opts)), where=what
        )

    def create_guide(self, *, task_id: int | None = None, project_id: int | None = None, markdown: str) -> Guide:
        if (task_id is None) == (project_id is None):
            raise ConfigError("create_guide needs exactly one of task_id, project_id")
        what = f"task {task_id} guide" if task_id is not None else f"project {project_id} guide"
        owner = {"task_id": task_id} if task_id is not None else {"project_id": project_id}
        request = models.AnnotationGuideWriteRequest(markdown=markdown, **owner)
        data = self._t.json(
            what, lambda: self._api.guides_api.create(annotation_guide_write_request=request, **self._t.opts)
        )
        return wire.guide_from_json(data, where=what)

    def update_guide(self, guide_id: int, markdown: str) -> Guide:
        what = f"guide {guide_id}"
        request = models.PatchedAnnotationGuideWriteRequest(markdown=markdown)
        data = self._t.json(
            what,
            lambda: self._api.guides_api.partial_update(
                guide_id, patched_annotation_guide_write_request=request, **self._t.opts
            ),
        )
        return wire.guide_from_json(data, where=what)

    def upload_asset(self, guide_id: int, filename: str, data: bytes, content_type: str = "image/png") -> str:
        """Attach a file (jpeg/png/webp/gif/pdf, <= 10 MB) to a guide; returns its uuid.

        Reference it in the guide's markdown as ``/api/assets/<uuid>``. The multipart part's
        content type is ``content_type``.
        """
        what = f"guide {guide_id}: asset '{filename}'"

        def send() -> Any:
            # a fresh file object per attempt: the SDK closes what it has read
            upload = _NamedBytes(data, filename, content_type)
            return self._api.assets_api.create(guide_id, upload, **self._t.opts)

        body = self._t.object(what, send)
        uuid = body.get("uuid")
        if not isinstance(uuid, str) or not uuid:
            raise CvatError(f"{what}: unexpected CVAT response: no 'uuid' in {body_excerpt(json.dumps(body))}")
        return uuid

    # ------------------------------------------------------------------------------------------
    # webhooks

    def create_webhook(
        self,
        *,
        target_url: str,
        events: Sequence[str],
        secret: str,
        project_id: int | None = None,
        description: str = "",
    ) -> Webhook:
        """An organization webhook (project webhook with ``project_id``) posting JSON to ``target_url``.

        Verify deliveries with :func:`cvat_ext.cvat.signature.verify_signature` and ``secret``.
        """
        what = f"webhook to {target_url}"
        fields: dict[str, Any] = {
            "target_url": target_url,
            "type": "project" if project_id is not None else "organization",
            "events": list(events),
            "secret": secret,
            "content_type": "application/json",
            "is_active": True,
            "description": description,
        }
        if project_id is not None:
            fields["project_id"] = project_id
        request = models.WebhookWriteRequest(**fields)
        data = self._t.json(what, lambda: self._api.webhooks_api.create(request, **self._t.opts))
        return wire.webhook_from_json(data, where=what)

    def list_webhooks(self) -> list[Webhook]:
        rows = self._t.pages("webhooks", lambda p: self._api.webhooks_api.list(page=p, page_size=100, **self._t.opts))
        return [wire.webhook_from_json(r, where="webhooks") for r in rows]

    def delete_webhook(self, webhook_id: int) -> None:
        self._t.request(f"webhook {webhook_id}", lambda: self._api.webhooks_api.destroy(webhook_id, **self._t.opts))

    def ping_webhook(self, webhook_id: int) -> None:
        """Ask CVAT to deliver a ``ping`` event now (the delivery is recorded by CVAT)."""
        self._t.request(
            f"webhook {webhook_id} ping", lambda: self._api.webhooks_api.create_ping(webhook_id, **self._t.opts)
        )

    # ------------------------------------------------------------------------------------------
    # helpers

    @staticmethod
    def _single(rows: list[dict[str, Any]], what: str) -> dict[str, Any]:
        if not rows:
            raise CvatNotFoundError(f"{what}: CVAT returned none", status=404)
        return wire.expect_mapping(rows[0], what)

    @staticmethod
    def _rq_id(data: Mapping[str, Any], what: str) -> str:
        rq_id = data.get("rq_id")
        if not isinstance(rq_id, str) or not rq_id:
            raise CvatError(f"{what}: unexpected CVAT response: no 'rq_id'")
        return rq_id

    @staticmethod
    def _rq_id_of_conflict(exc: CvatHttpError) -> str | None:
        if exc.status != 409:
            return None
        try:
            body = json.loads(exc.body)
        except ValueError:
            return None
        rq_id = body.get("rq_id") if isinstance(body, dict) else None
        return rq_id if isinstance(rq_id, str) and rq_id else None

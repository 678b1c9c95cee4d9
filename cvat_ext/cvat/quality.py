"""CvatClient methods for CVAT's own QA: consensus settings and merges, async requests,
quality settings, reports and conflicts.

Quality bodies stay raw JSON dicts on every server version: SDK 2.80's typed models cannot read
2.73 task reports (see :mod:`cvat_ext.cvat.versions`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from cvat_sdk.api_client import models

from cvat_ext.cvat import wire
from cvat_ext.cvat.transport import ClientBase
from cvat_ext.cvat.versions import features_for
from cvat_ext.errors import ConfigError, CvatError, CvatHttpError, CvatNotFoundError, CvatRequestFailedError

log = logging.getLogger(__name__)


class QualityCalls(ClientBase):
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

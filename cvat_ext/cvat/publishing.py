"""CvatClient methods that publish QA results inside CVAT: issues and comments, the task's
annotation guide and its assets, and webhooks (contracts §7, §8)."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

from cvat_sdk.api_client import models

from cvat_ext.cvat import wire
from cvat_ext.cvat.records import UNSET, Comment, Guide, Issue, Unset, Webhook
from cvat_ext.cvat.translate import body_excerpt
from cvat_ext.cvat.transport import ClientBase
from cvat_ext.errors import ConfigError, CvatError


class NamedBytes(io.BytesIO):
    """An in-memory upload with the file name (and content type) of its multipart part."""

    def __init__(self, data: bytes, name: str, content_type: str) -> None:
        super().__init__(data)
        self.name = name
        self.content_type = content_type


class PublishingCalls(ClientBase):
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
            upload = NamedBytes(data, filename, content_type)
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

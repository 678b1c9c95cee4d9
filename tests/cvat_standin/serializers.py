"""Render world records as CVAT 2.73 JSON (field sets as in the recordings, not only the schema)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.cvat_standin.world import (
    CommentRec,
    GuideRec,
    IssueRec,
    JobRec,
    LabelRec,
    MembershipRec,
    ProjectRec,
    RequestRec,
    SettingsRec,
    TaskRec,
    UserRec,
    WebhookRec,
    World,
    iso,
)

CHUNK_SIZE = 72


def basic_user(w: World, base: str, user_id: int | None) -> dict[str, Any] | None:
    if user_id is None:
        return None
    u = w.users[user_id]
    return {"url": f"{base}/api/users/{u.id}", "id": u.id, "username": u.username,
            "first_name": u.first_name, "last_name": u.last_name}


def full_user(u: UserRec, base: str) -> dict[str, Any]:
    return {
        "url": f"{base}/api/users/{u.id}", "id": u.id, "username": u.username, "first_name": u.first_name,
        "last_name": u.last_name, "email": u.email, "groups": ["admin"] if u.is_superuser else ["user"],
        "is_staff": u.is_superuser, "is_superuser": u.is_superuser, "is_active": True,
        "last_login": iso(u.last_login), "date_joined": iso(u.date_joined), "has_analytics_access": u.is_superuser,
    }


def membership(w: World, base: str, m: MembershipRec) -> dict[str, Any]:
    return {"id": m.id, "user": basic_user(w, base, m.user_id), "organization": m.org_id, "is_active": True,
            "joined_date": iso(m.joined_date), "role": m.role, "invitation": m.invitation}


def project(w: World, base: str, p: ProjectRec) -> dict[str, Any]:
    n_tasks = sum(1 for t in w.tasks.values() if t.project_id == p.id)
    statuses = {job_status(j) for j in w.jobs.values() if w.tasks[j.task_id].project_id == p.id}
    return {
        "url": f"{base}/api/projects/{p.id}", "id": p.id, "name": p.name, "owner": basic_user(w, base, p.owner_id),
        "assignee": None, "guide_id": p.guide_id, "bug_tracker": "", "created_date": iso(p.created_date),
        "updated_date": iso(p.updated_date), "status": aggregate_status(statuses), "dimension": "2d",
        "organization": p.org_id, "organization_id": p.org_id, "target_storage": None, "source_storage": None,
        "tasks": {"count": n_tasks, "url": f"{base}/api/tasks?project_id={p.id}"},
        "labels": {"url": f"{base}/api/labels?project_id={p.id}"}, "assignee_updated_date": None,
        "task_subsets": [],
    }


def job_status(j: JobRec) -> str:
    """CVAT's derived status: annotation stage -> annotation, acceptance+completed -> completed."""
    if j.stage == "annotation":
        return "annotation"
    if j.stage == "acceptance" and j.state == "completed":
        return "completed"
    return "validation"


def aggregate_status(statuses: set[str]) -> str:
    if not statuses or "annotation" in statuses:
        return "annotation"
    return "validation" if "validation" in statuses else "completed"


def validation_mode(t: TaskRec, has_gt: bool) -> str | None:
    """``gt_pool`` for a task made with a validation pool, ``gt`` once it has a GT job, else None."""
    if t.validation_pool:
        return "gt_pool"
    return "gt" if has_gt else None


def validation_layout(w: World, t: TaskRec) -> dict[str, Any]:
    """``GET /api/tasks/{id}/validation_layout`` (TaskValidationLayoutRead): CVAT's serializer
    leaves the honeypot fields out unless the mode is ``gt_pool``, and lists honeypots by frame."""
    gt = next((j for j in w.jobs.values() if j.task_id == t.id and j.type == "ground_truth"), None)
    mode = validation_mode(t, gt is not None)
    body: dict[str, Any] = {"mode": mode, "frames_per_job_count": None,
                            "validation_frames": list(gt.included_frames or []) if gt is not None else [],
                            "disabled_frames": []}
    if mode == "gt_pool":
        pairs = sorted(t.honeypots.items())
        body["frames_per_job_count"] = max((sum(1 for h, _ in pairs if j.start_frame <= h <= j.stop_frame)
                                            for j in w.jobs.values() if j.task_id == t.id and j.type == "annotation"),
                                           default=0)
        body |= {"honeypot_count": len(pairs), "honeypot_frames": [h for h, _ in pairs],
                 "honeypot_real_frames": [r for _, r in pairs]}
    return body


def task(w: World, base: str, t: TaskRec) -> dict[str, Any]:
    jobs = [j for j in w.jobs.values() if j.task_id == t.id]
    counted = [j for j in jobs if j.type == "annotation"]
    has_gt = any(j.type == "ground_truth" for j in jobs)
    rendered = {
        "url": f"{base}/api/tasks/{t.id}", "id": t.id, "name": t.name, "project_id": t.project_id,
        "project_name": w.projects[t.project_id].name if t.project_id is not None else None,
        "owner": basic_user(w, base, t.owner_id), "assignee": basic_user(w, base, t.assignee_id),
        "bug_tracker": "", "created_date": iso(t.created_date), "updated_date": iso(t.updated_date), "overlap": 0,
        "segment_size": t.segment_size, "status": aggregate_status({job_status(j) for j in counted}),
        "data_chunk_size": CHUNK_SIZE, "data_original_chunk_type": "imageset",
        "data_compressed_chunk_type": "imageset", "data_cloud_storage_id": None, "guide_id": t.guide_id,
        "size": t.size, "image_quality": 95, "data": t.id, "dimension": "2d", "mode": "annotation",
        "media_type": "image", "subset": "", "organization_id": t.org_id, "organization": t.org_id,
        "target_storage": None, "source_storage": None,
        "jobs": {"count": len(jobs), "completed": sum(job_status(j) == "completed" for j in jobs),
                 "validation": sum(job_status(j) == "validation" for j in jobs),
                 "url": f"{base}/api/jobs?task_id={t.id}"},
        "labels": {"url": f"{base}/api/labels?task_id={t.id}"}, "assignee_updated_date": None,
        "validation_mode": validation_mode(t, has_gt), "consensus_enabled": t.consensus_replicas > 0,
    }
    if not t.has_data:  # created over HTTP, data not uploaded yet (recording T01, exchange 1)
        for key in ("size", "image_quality", "data_chunk_size", "data_original_chunk_type",
                    "data_compressed_chunk_type", "data_cloud_storage_id"):
            del rendered[key]
        rendered.update({"overlap": None, "data": None, "dimension": "", "mode": "", "media_type": ""})
    return rendered


def job(w: World, base: str, j: JobRec) -> dict[str, Any]:
    t = w.tasks[j.task_id]
    replicas = sum(1 for r in w.jobs.values() if r.parent_job_id == j.id)
    n_issues = sum(1 for i in w.issues.values() if i.job_id == j.id)
    return {
        "url": f"{base}/api/jobs/{j.id}", "id": j.id, "task_id": t.id, "task_name": t.name,
        "project_id": t.project_id,
        "project_name": w.projects[t.project_id].name if t.project_id is not None else None,
        "assignee": basic_user(w, base, j.assignee_id), "guide_id": t.guide_id, "dimension": "2d",
        "mode": "annotation", "media_type": "image", "bug_tracker": "", "status": job_status(j), "stage": j.stage,
        "state": j.state, "frame_count": len(j.frames), "start_frame": j.start_frame, "stop_frame": j.stop_frame,
        "data_chunk_size": CHUNK_SIZE, "data_compressed_chunk_type": "imageset",
        "data_original_chunk_type": "imageset", "created_date": iso(j.created_date),
        "updated_date": iso(j.updated_date),
        "issues": {"url": f"{base}/api/issues?job_id={j.id}", "count": n_issues},
        "labels": {"url": f"{base}/api/labels?job_id={j.id}"}, "type": j.type, "organization": t.org_id,
        "target_storage": None, "source_storage": None, "assignee_updated_date": iso(j.assignee_updated_date),
        "parent_job_id": j.parent_job_id, "replicas_count": replicas, "consensus_replicas": replicas,
    }


def label(w: World, lb: LabelRec) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": lb.id, "name": lb.name, "color": lb.color, "attributes": [dict(a) for a in lb.attributes],
        "type": lb.type, "sublabels": [sublabel(w.labels[i]) for i in lb.sublabel_ids],
    }
    if lb.project_id is not None:
        out["project_id"] = lb.project_id
    else:
        out["task_id"] = lb.task_id
    out["parent_id"] = lb.parent_id
    out["has_parent"] = lb.parent_id is not None
    if lb.type == "skeleton":
        out["svg"] = lb.svg
    return out


def sublabel(lb: LabelRec) -> dict[str, Any]:
    return {"id": lb.id, "name": lb.name, "color": lb.color, "attributes": [dict(a) for a in lb.attributes],
            "type": lb.type, "has_parent": True}


def issue(w: World, base: str, i: IssueRec) -> dict[str, Any]:
    n_comments = sum(1 for c in w.comments.values() if c.issue_id == i.id)
    return {
        "id": i.id, "frame": i.frame, "position": list(i.position), "job": i.job_id,
        "owner": basic_user(w, base, i.owner_id), "assignee": basic_user(w, base, i.assignee_id),
        "created_date": iso(i.created_date), "updated_date": iso(i.updated_date), "resolved": i.resolved,
        "comments": {"count": n_comments, "url": f"{base}/api/comments?issue_id={i.id}"},
    }


def comment(w: World, base: str, c: CommentRec) -> dict[str, Any]:
    return {"id": c.id, "issue": c.issue_id, "owner": basic_user(w, base, c.owner_id), "message": c.message,
            "created_date": iso(c.created_date), "updated_date": iso(c.updated_date)}


def guide(g: GuideRec, *, with_dates: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"id": g.id, "task_id": g.task_id, "project_id": g.project_id}
    if with_dates:  # POST/PATCH answers omit the dates (recording 90)
        out["created_date"] = iso(g.created_date)
        out["updated_date"] = iso(g.updated_date)
    out["markdown"] = g.markdown
    return out


def webhook(w: World, base: str, h: WebhookRec) -> dict[str, Any]:
    return {
        "id": h.id, "url": f"{base}/api/webhooks/{h.id}", "target_url": h.target_url, "description": h.description,
        "type": h.type, "content_type": h.content_type, "is_active": h.is_active, "enable_ssl": h.enable_ssl,
        "created_date": iso(h.created_date), "updated_date": iso(h.updated_date),
        "owner": basic_user(w, base, h.owner_id), "project_id": h.project_id, "organization": h.org_id,
        "events": sorted(h.events),
    }


def settings(s: SettingsRec) -> dict[str, Any]:
    if s.kind == "consensus":
        return {"id": s.id, "task_id": s.task_id, **s.values}
    return {"id": s.id, "task_id": s.task_id, "project_id": s.project_id, **s.values,
            "created_date": iso(s.created_date), "updated_date": iso(s.updated_date)}


def request(w: World, r: RequestRec) -> dict[str, Any]:
    owner = w.users[r.owner_id]
    operation = {"type": r.type, "target": r.target, "project_id": r.project_id, "task_id": r.task_id,
                 "job_id": r.job_id, "org_id": r.org_id, "lightweight": None}
    if r.type == "create:task":  # recorded with a format key; merge and quality requests without
        operation["format"] = None
    return {
        "status": r.status, "message": r.message, "id": r.id,
        "operation": operation,
        "progress": 0.0, "created_date": iso(r.created_date), "started_date": iso(r.started_date),
        "finished_date": iso(r.finished_date),
        "expiry_date": iso(r.finished_date + timedelta(minutes=5)) if r.finished_date else None,
        "owner": {"id": owner.id, "username": owner.username},
        "result_url": None, "result_id": r.result_id,
    }

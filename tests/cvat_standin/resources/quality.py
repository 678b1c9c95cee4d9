"""/api/quality/settings, /api/quality/reports (+ /data), /api/quality/conflicts.

Reports are computed by a deliberately simple comparator (not CVAT's): per GT frame, shapes of the
same type are matched greedily by axis-aligned bbox IoU >= ``iou_threshold`` (highest first); a
matched pair with another label is ``mismatching_label``, one below ``low_overlap_threshold`` is
``low_overlap``; unmatched GT shapes are ``missing_annotation``, unmatched job shapes
``extra_annotation``. Tags match by label. Tracks are ignored. Counts and metrics follow CVAT's
definitions (accuracy = valid/total, precision = valid/ds, recall = valid/gt); the task report sums
its job reports. Responses carry the field sets of the recordings (80-88), with the 2.73 quirks
(``/data`` is JSON with space-separated dates, ``frame_id`` and a UI ``url`` in conflicts).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from tests.cvat_standin import serializers as ser
from tests.cvat_standin.access import in_context, require_task_maintainer, role_rank
from tests.cvat_standin.filters import json_logic, paginate
from tests.cvat_standin.resources import webhooks
from tests.cvat_standin.resources.consensus import start_request
from tests.cvat_standin.routing import Request, Response, Router, bad_request, forbidden, not_found
from tests.cvat_standin.world import ROLE_RANK, JobRec, QualityReportRec, SettingsRec, TaskRec, World, iso

DEFAULT_QUALITY = {
    "job_filter": "", "inherit": True, "target_metric": "accuracy", "target_metric_threshold": 0.7,
    "max_validations_per_job": 0, "iou_threshold": 0.4, "oks_sigma": 0.09, "point_size_base": "group_bbox_size",
    "line_thickness": 0.01, "low_overlap_threshold": 0.8, "compare_line_orientation": True,
    "line_orientation_threshold": 0.1, "compare_groups": True, "group_match_threshold": 0.5,
    "check_covered_annotations": True, "object_visibility_threshold": 0.05, "panoptic_comparison": True,
    "compare_attributes": True, "empty_is_annotated": False,
}
SEVERITY = {"missing_annotation": "error", "extra_annotation": "error", "mismatching_label": "error",
            "low_overlap": "warning", "mismatching_attributes": "warning"}
NO_GT = "Quality reports require a Ground Truth job in the task at the acceptance stage and in the completed state"


def register(r: Router) -> None:
    r.add("GET", "/api/quality/settings", list_settings)
    r.add("GET", "/api/quality/settings/{id}", get_settings)
    r.add("PATCH", "/api/quality/settings/{id}", patch_settings)
    r.add("GET", "/api/quality/reports", list_reports)
    r.add("POST", "/api/quality/reports", create_report)
    r.add("GET", "/api/quality/reports/{id}", get_report)
    r.add("GET", "/api/quality/reports/{id}/data", get_report_data)
    r.add("GET", "/api/quality/conflicts", list_conflicts)


def _check_task_access(ctx: Request, task: TaskRec) -> None:
    require_task_maintainer(ctx.w, ctx.me, task)


# settings ------------------------------------------------------------------------------------------
def list_settings(ctx: Request) -> Response:
    """``?task_id=`` the task's; ``?project_id=`` the project's and those of its tasks (surprise 21)."""
    w = ctx.w
    items = list(w.quality_settings.values())
    if "task_id" in ctx.query:
        items = [s for s in items if s.task_id == int(ctx.query["task_id"])]
    elif "project_id" in ctx.query:
        pid = int(ctx.query["project_id"])
        items = [s for s in items if s.project_id == pid or (s.task_id is not None and
                                                             w.tasks[s.task_id].project_id == pid)]
    items = [s for s in items if in_context(ctx, _settings_org(w, s))]
    return Response(body=paginate(ctx, sorted(items, key=lambda s: s.id), ser.settings))


def _settings_org(w: World, s: SettingsRec) -> int | None:
    return w.tasks[s.task_id].org_id if s.task_id is not None else w.projects[s.project_id or 0].org_id


def _load_settings(ctx: Request) -> SettingsRec:
    s = ctx.w.quality_settings.get(ctx.int_param())
    if s is None:
        raise not_found("QualitySettings")
    if role_rank(ctx.w, ctx.me, _settings_org(ctx.w, s)) < ROLE_RANK["maintainer"]:
        raise forbidden()
    return s


def get_settings(ctx: Request) -> Response:
    return Response(body=ser.settings(_load_settings(ctx)))


def patch_settings(ctx: Request) -> Response:
    w = ctx.w
    s = _load_settings(ctx)
    body = ctx.json_object()
    errors = {k: ["Unknown field"] for k in body if k not in DEFAULT_QUALITY}
    for k, v in body.items():
        if k in DEFAULT_QUALITY and type(v) is not type(DEFAULT_QUALITY[k]) and not (
                isinstance(DEFAULT_QUALITY[k], float) and isinstance(v, int) and not isinstance(v, bool)):
            errors[k] = [f"expected {type(DEFAULT_QUALITY[k]).__name__}"]
    if errors:
        raise bad_request(errors)
    for k, v in body.items():
        s.values[k] = float(v) if isinstance(DEFAULT_QUALITY[k], float) else v
    s.updated_date = w.now()
    if s.task_id is not None:  # a settings change touches the task: update:task (recording 82w)
        task = w.tasks[s.task_id]
        before = {"updated_date": iso(task.updated_date)}
        task.updated_date = s.updated_date
        webhooks.emit_update(ctx, "task", ser.task(w, ctx.base_url, task), before,
                             {"updated_date": iso(task.updated_date)}, org_id=task.org_id,
                             project_id=task.project_id)
    return Response(body=ser.settings(s))


def effective_settings(w: World, task: TaskRec) -> tuple[dict[str, Any], bool]:
    """The settings a report uses and whether they were inherited from the project."""
    own = w.quality_settings_for(task_id=task.id)
    if own.values["inherit"] and task.project_id is not None:
        return w.quality_settings_for(project_id=task.project_id).values, True
    return own.values, False


# computation ---------------------------------------------------------------------------------------
def _bbox(shape: dict[str, Any]) -> tuple[float, float, float, float]:
    pts = shape["points"]
    if shape["type"] == "mask":
        return float(pts[-4]), float(pts[-3]), float(pts[-2]) + 1, float(pts[-1]) + 1
    if shape["type"] == "ellipse":
        cx, cy, x2, y2 = pts[:4]
        rx, ry = abs(x2 - cx), abs(cy - y2)
        return cx - rx, cy - ry, cx + rx, cy + ry
    if shape["type"] == "skeleton":
        pts = [p for e in shape.get("elements", []) for p in e["points"]]
    if not pts:
        return 0.0, 0.0, 0.0, 0.0
    xs, ys = pts[0::2], pts[1::2]
    return min(xs), min(ys), max(xs), max(ys)


def bbox_iou(a: dict[str, Any], b: dict[str, Any]) -> float:
    ax1, ay1, ax2, ay2 = _bbox(a)
    bx1, by1, bx2, by2 = _bbox(b)
    iw = max(0.0, min(ax2, bx2) - max(ax1, bx1))
    ih = max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = iw * ih
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    if union <= 0:  # degenerate (points): equal boxes match
        return 1.0 if (ax1, ay1) == (bx1, by1) else 0.0
    return inter / union


def _ann_id(obj: dict[str, Any], job_id: int, kind: str, base: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"obj_id": obj["id"], "job_id": job_id, "type": kind,
                           "shape_type": obj.get("type") if kind == "shape" else None}
    if base is not None:
        out["url"] = f"{base}/tasks/0/jobs/{job_id}?frame={obj['frame']}&type={kind}&serverID={obj['id']}"
    return out


def compare_frame(gt: JobRec, job: JobRec, frame: int, params: dict[str, Any]) -> tuple[dict[str, int], list[Any]]:
    """Counts {valid, missing, extra, ds, gt, mismatched} and conflicts ([type, [(obj, job, kind)]])."""
    gts = [s for s in gt.annotations["shapes"] if s["frame"] == frame]
    dss = [s for s in job.annotations["shapes"] if s["frame"] == frame]
    pairs = sorted(((bbox_iou(g, d), gi, di) for gi, g in enumerate(gts) for di, d in enumerate(dss)
                    if g["type"] == d["type"]), key=lambda p: -p[0])
    used_g: set[int] = set()
    used_d: set[int] = set()
    conflicts: list[Any] = []
    counts = {"valid": 0, "mismatched": 0}
    for iou, gi, di in pairs:
        if iou < params["iou_threshold"] or gi in used_g or di in used_d:
            continue
        used_g.add(gi)
        used_d.add(di)
        g, d = gts[gi], dss[di]
        if g["label_id"] != d["label_id"]:
            counts["mismatched"] += 1
            conflicts.append(["mismatching_label", [(d, job.id, "shape"), (g, gt.id, "shape")]])
            continue
        counts["valid"] += 1
        if iou < params["low_overlap_threshold"]:
            conflicts.append(["low_overlap", [(d, job.id, "shape"), (g, gt.id, "shape")]])
    gtags = [t for t in gt.annotations["tags"] if t["frame"] == frame]
    dtags = [t for t in job.annotations["tags"] if t["frame"] == frame]
    free = list(dtags)
    missing_tags = []
    for t in gtags:
        hit = next((d for d in free if d["label_id"] == t["label_id"]), None)
        if hit is None:
            missing_tags.append(t)
        else:
            free.remove(hit)
            counts["valid"] += 1
    conflicts += [["missing_annotation", [(g, gt.id, "shape")]] for i, g in enumerate(gts) if i not in used_g]
    conflicts += [["missing_annotation", [(t, gt.id, "tag")]] for t in missing_tags]
    conflicts += [["extra_annotation", [(d, job.id, "shape")]] for i, d in enumerate(dss) if i not in used_d]
    conflicts += [["extra_annotation", [(t, job.id, "tag")]] for t in free]
    counts["missing"] = len(gts) - len(used_g) + len(missing_tags)
    counts["extra"] = len(dss) - len(used_d) + len(free)
    counts["ds"] = len(dss) + len(dtags)
    counts["gt"] = len(gts) + len(gtags)
    return counts, conflicts


def _summary(counts: dict[str, int], conflicts: list[dict[str, Any]], total_frames: int, frames: int
             ) -> dict[str, Any]:
    by_type: dict[str, int] = {}
    for c in conflicts:
        by_type[c["type"]] = by_type.get(c["type"], 0) + 1
    warnings = sum(n for t, n in by_type.items() if SEVERITY[t] == "warning")
    total = counts["valid"] + counts["mismatched"] + counts["missing"] + counts["extra"]
    share = frames / total_frames if total_frames else 0.0
    return {
        "total_frames": total_frames, "frame_count": frames, "validation_frames": frames, "frame_share": share,
        "validation_frame_share": share, "conflict_count": len(conflicts), "warning_count": warnings,
        "error_count": len(conflicts) - warnings, "conflicts_by_type": by_type, "valid_count": counts["valid"],
        "ds_count": counts["ds"], "gt_count": counts["gt"], "total_count": total,
        "accuracy": counts["valid"] / total if total else 0.0,
        "precision": counts["valid"] / counts["ds"] if counts["ds"] else 0.0,
        "recall": counts["valid"] / counts["gt"] if counts["gt"] else 0.0,
    }


def included_jobs(w: World, task: TaskRec, params: dict[str, Any]) -> list[JobRec]:
    jobs = sorted((j for j in w.jobs.values() if j.task_id == task.id and j.type != "ground_truth"),
                  key=lambda j: j.id)
    if not params["job_filter"]:
        return jobs
    expr = json.loads(params["job_filter"])
    return [j for j in jobs if json_logic(expr, {
        "id": j.id, "type": j.type, "state": j.state, "stage": j.stage, "task_id": task.id, "task_name": task.name,
        "assignee": w.users[j.assignee_id].username if j.assignee_id else None})]


def compute_task_report(w: World, task: TaskRec, gt: JobRec) -> int:
    params, inherited = effective_settings(w, task)
    params = {**params, "inherited": inherited}
    now = w.now()
    jobs = included_jobs(w, task, params)
    task_rep = QualityReportRec(w.next_id("quality_report"), "task", task.id, None, None, {}, now, task.updated_date,
                                gt.updated_date, None, params, sorted(gt.frames))
    w.quality_reports[task_rep.id] = task_rep
    totals = {"valid": 0, "mismatched": 0, "missing": 0, "extra": 0, "ds": 0, "gt": 0}
    all_conflicts: list[dict[str, Any]] = []
    total_frames = n_frames = 0
    for job in jobs:
        frames = sorted(set(job.frames) & set(gt.frames))
        counts = dict.fromkeys(totals, 0)
        conflicts: list[dict[str, Any]] = []
        for f in frames:
            c, raw = compare_frame(gt, job, f, params)
            for k in counts:
                counts[k] += c[k]
            conflicts += [{"frame": f, "type": t, "severity": SEVERITY[t], "objects": objs} for t, objs in raw]
        rep = QualityReportRec(w.next_id("quality_report"), "job", task.id, job.id, task_rep.id,
                               _summary(counts, conflicts, len(job.frames), len(frames)), now, job.updated_date,
                               gt.updated_date, job.assignee_id, params, frames)
        for c in conflicts:
            c["id"] = w.next_id("quality_conflict")
            c["report_id"] = rep.id
        rep.conflicts = conflicts
        w.quality_reports[rep.id] = rep
        for k in totals:
            totals[k] += counts[k]
        all_conflicts += conflicts
        total_frames += len(job.frames)
        n_frames += len(frames)
    task_rep.summary = _summary(totals, all_conflicts, total_frames, n_frames)
    task_rep.summary["jobs"] = {"total": len(jobs), "excluded": 0, "not_checkable": 0, "included": len(jobs)}
    return task_rep.id


# reports -------------------------------------------------------------------------------------------
def create_report(ctx: Request) -> Response:
    w = ctx.w
    body = ctx.json_object()
    if "task_id" not in body:
        raise bad_request({"task_id": ["This field is required."]})
    task = w.tasks.get(body["task_id"])
    if task is None:
        raise not_found("Task")
    _check_task_access(ctx, task)
    gt = next((j for j in w.jobs.values() if j.task_id == task.id and j.type == "ground_truth"), None)
    if gt is None or (gt.stage, gt.state) != ("acceptance", "completed"):
        raise bad_request([NO_GT])
    rq_id = f"action=calculate&target=task&target_id={task.id}&subresource=quality"
    return start_request(ctx, rq_id, "calculate:quality", "task", task_id=task.id, job_id=None,
                         run=lambda: compute_task_report(w, task, gt))


def report_json(w: World, base: str, r: QualityReportRec) -> dict[str, Any]:
    task = w.tasks[r.task_id]
    return {"id": r.id, "job_id": r.job_id, "task_id": r.task_id, "project_id": task.project_id,
            "parent_id": r.parent_id, "target": r.target, "summary": r.summary, "created_date": iso(r.created_date),
            "target_last_updated": iso(r.target_last_updated), "gt_last_updated": iso(r.gt_last_updated),
            "assignee": ser.basic_user(w, base, r.assignee_id)}


def _load_report(ctx: Request) -> QualityReportRec:
    r = ctx.w.quality_reports.get(ctx.int_param())
    if r is None:
        raise not_found("QualityReport")
    _check_task_access(ctx, ctx.w.tasks[r.task_id])
    return r


def list_reports(ctx: Request) -> Response:
    w = ctx.w
    items = [r for r in w.quality_reports.values() if in_context(ctx, w.tasks[r.task_id].org_id)]
    for key in ("task_id", "job_id", "parent_id"):
        if key in ctx.query:
            items = [r for r in items if getattr(r, key) == int(ctx.query[key])]
    if "project_id" in ctx.query:
        items = [r for r in items if w.tasks[r.task_id].project_id == int(ctx.query["project_id"])]
    if "target" in ctx.query:
        items = [r for r in items if r.target == ctx.query["target"]]
    items.sort(key=lambda r: -r.id)
    return Response(body=paginate(ctx, items, lambda r: report_json(w, ctx.base_url, r)))


def get_report(ctx: Request) -> Response:
    return Response(body=report_json(ctx.w, ctx.base_url, _load_report(ctx)))


def _space_date(ts: datetime) -> str:
    return ts.isoformat(sep=" ")


def _children(w: World, r: QualityReportRec) -> list[QualityReportRec]:
    if r.target == "job":
        return [r]
    return sorted((c for c in w.quality_reports.values() if c.parent_id == r.id), key=lambda c: c.id)


def _conflict_data(c: dict[str, Any], base: str | None) -> dict[str, Any]:
    return {"frame_id": c["frame"], "type": c["type"],
            "annotation_ids": [_ann_id(o, j, k, base) for o, j, k in c["objects"]], "severity": c["severity"]}


def _annotation_block(s: dict[str, Any]) -> dict[str, Any]:
    missing = s["gt_count"] - s["valid_count"]
    extra = s["ds_count"] - s["valid_count"]
    return {"valid_count": s["valid_count"], "missing_count": max(missing, 0), "extra_count": max(extra, 0),
            "total_count": s["total_count"], "ds_count": s["ds_count"], "gt_count": s["gt_count"],
            "confusion_matrix": {"labels": [], "rows": [], "axes": {"cols": "gt", "rows": "ds"}, "accuracy": [],
                                 "recall": [], "precision": [], "jaccard_index": []},
            "accuracy": s["accuracy"], "recall": s["recall"], "precision": s["precision"]}


def _components(s: dict[str, Any]) -> dict[str, Any]:
    block = _annotation_block(s)
    shape = {k: block[k] for k in ("valid_count", "missing_count", "extra_count", "total_count", "ds_count",
                                   "gt_count")}
    return {"shape": {**shape, "mean_iou": 0.0, "accuracy": s["accuracy"]},
            "label": {"valid_count": s["valid_count"], "invalid_count": 0, "total_count": s["valid_count"],
                      "accuracy": 1.0 if s["valid_count"] else 0.0}}


def get_report_data(ctx: Request) -> Response:
    """The full report as JSON (surprise 2), simplified confusion matrices (empty)."""
    w = ctx.w
    r = _load_report(ctx)
    task = w.tasks[r.task_id]
    conflicts = [c for child in _children(w, r) for c in child.conflicts]
    s = r.summary
    summary: dict[str, Any] = {
        "frames": r.frames, "total_frames": s["total_frames"], "conflict_count": s["conflict_count"],
        "warning_count": s["warning_count"], "error_count": s["error_count"],
        "conflicts_by_type": s["conflicts_by_type"], "annotations": _annotation_block(s),
        "annotation_components": _components(s), "tasks": None, "jobs": None,
        "mean_conflict_count": s["conflict_count"] / max(len(r.frames), 1), "frame_share": s["frame_share"],
        "frame_count": s["frame_count"], "frame_share_percent": s["frame_share"] * 100,
    }
    if r.target == "task":
        ids = [c.job_id for c in _children(w, r)]
        summary["jobs"] = {"all": ids, "excluded": [], "not_checkable": [], "excluded_count": 0,
                           "total_count": len(ids), "included_count": len(ids), "not_checkable_count": 0}
    frame_results: dict[str, Any] = {}
    for f in r.frames:
        fc = [c for c in conflicts if c["frame"] == f]
        by_type: dict[str, int] = {}
        for c in fc:
            by_type[c["type"]] = by_type.get(c["type"], 0) + 1
        warnings = sum(n for t, n in by_type.items() if SEVERITY[t] == "warning")
        frame_results[str(f)] = {
            "conflicts": [_conflict_data(c, ctx.base_url) for c in fc], "annotations": _annotation_block(s),
            "annotation_components": _components(s), "conflict_count": len(fc), "conflicts_by_type": by_type,
            "error_count": len(fc) - warnings, "warning_count": warnings}
    body: dict[str, Any] = {"id": r.id}
    if r.target == "job":
        body["job_id"] = r.job_id
    body.update({"task_id": r.task_id, "project_id": task.project_id})
    if r.target == "job":
        body["parent_id"] = r.parent_id
    assignee = None
    if r.assignee_id is not None:
        u = w.users[r.assignee_id]
        assignee = {"id": u.id, "username": u.username, "first_name": u.first_name, "last_name": u.last_name}
    body.update({
        "created_date": _space_date(r.created_date), "target_last_updated": _space_date(r.target_last_updated),
        "gt_last_updated": _space_date(r.gt_last_updated), "assignee": assignee,
        "parameters": {"included_annotation_types": ["bbox", "points", "mask", "polygon", "polyline", "skeleton",
                                                     "label", "ellipse"],
                       "compare_attributes": r.parameters["compare_attributes"], "ignored_attributes": [],
                       **{k: r.parameters[k] for k in (
                           "iou_threshold", "low_overlap_threshold", "oks_sigma", "point_size_base",
                           "line_thickness", "compare_line_orientation", "line_orientation_threshold",
                           "compare_groups", "group_match_threshold", "check_covered_annotations",
                           "object_visibility_threshold", "panoptic_comparison", "empty_is_annotated")},
                       "inherited": r.parameters["inherited"], "job_filter": r.parameters["job_filter"]},
        "comparison_summary": summary, "frame_results": frame_results,
        "conflicts": [_conflict_data(c, None) for c in conflicts],
    })
    return Response(body=body, content_type="application/json")


def list_conflicts(ctx: Request) -> Response:
    """``?report_id=`` (task reports expand to their job reports, surprise 23), ``job_id``, ``frame``, ..."""
    w = ctx.w
    reports = [r for r in w.quality_reports.values() if r.target == "job"
               and in_context(ctx, w.tasks[r.task_id].org_id)]
    if "report_id" in ctx.query:
        root = w.quality_reports.get(int(ctx.query["report_id"]))
        if root is None:
            raise not_found("QualityReport")
        reports = _children(w, root)
    if "job_id" in ctx.query:
        reports = [r for r in reports if r.job_id == int(ctx.query["job_id"])]
    if "task_id" in ctx.query:
        reports = [r for r in reports if r.task_id == int(ctx.query["task_id"])]
    items = [c for r in reports for c in r.conflicts]
    for key in ("frame", "type", "severity"):
        if key in ctx.query:
            items = [c for c in items if str(c[key]) == ctx.query[key]]
    items.sort(key=lambda c: -c["id"])
    return Response(body=paginate(ctx, items, lambda c: {
        "id": c["id"], "frame": c["frame"], "type": c["type"],
        "annotation_ids": [_ann_id(o, j, k, None) for o, j, k in c["objects"]], "report_id": c["report_id"],
        "severity": c["severity"]}))

"""Replaying recorded CVAT 2.73 exchanges against the stand-in: loading, id remapping, structure diff.

Ids differ between the recording and the stand-in. Seeded objects are mapped by their recorded ids
(``99_webhook_summary.json`` ids, label/attribute order of recording 22); objects created during the
replay (issues, comments, annotation objects, guides, webhooks, assets, jobs) are learned from the
paired responses; quality reports are mapped by (target, job, computation number).
"""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from tests import shared_data

RECORDED = shared_data.RECORDED_DIR
# structure comparison treats these dicts as maps whose keys are data
MAP_KEYS = frozenset({"conflicts_by_type", "frame_results", "changes", "before_update"})


@dataclass(frozen=True)
class Exchange:
    file: str
    index: int
    actor: str
    request: dict[str, Any]
    response: dict[str, Any]

    @property
    def key(self) -> str:
        return f"{self.file.removesuffix('.json')}#{self.index}"

    @property
    def username(self) -> str | None:
        name = self.actor.split(" ", 1)[0]
        return None if name == "anonymous" else name


def load_exchanges() -> list[Exchange]:
    """All recorded exchanges in file order ('after all steps' files last)."""
    files = sorted(p for p in RECORDED.glob("*.json") if p.name != "index.json")
    files.sort(key=lambda p: p.name.startswith("13_"))  # "GET deliveries (after all steps)"
    out = []
    for path in files:
        data = json.loads(path.read_text())
        for i, ex in enumerate(data.get("exchanges", [])):
            out.append(Exchange(path.name, i, ex["actor"], ex["request"], ex["response"]))
    return out


# structure comparison ----------------------------------------------------------------------------------
def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    return type(v).__name__


def structure_diff(recorded: Any, actual: Any, where: str = "$", opaque: frozenset[str] = frozenset()) -> list[str]:
    """Differences in key sets and value kinds (numbers are one kind; null matches anything: null-ness
    depends on world state and timing, not on the shape of the API). Values under ``opaque`` keys are
    compared by kind only."""
    if recorded is None or actual is None:
        return []
    if _kind(recorded) != _kind(actual):
        return [f"{where}: recorded {_kind(recorded)}, stand-in {_kind(actual)}"]
    last = where.rsplit(".", 1)[-1]
    if last in opaque:
        return []
    if isinstance(recorded, dict):
        if last in MAP_KEYS:
            rv, av = list(recorded.values()), list(actual.values())
            return structure_diff(rv[0], av[0], where + "{*}", opaque) if rv and av else []
        diffs = []
        missing, extra = recorded.keys() - actual.keys(), actual.keys() - recorded.keys()
        if missing or extra:
            diffs.append(f"{where}: keys missing {sorted(missing)}, unexpected {sorted(extra)}")
        for k in recorded.keys() & actual.keys():
            diffs += structure_diff(recorded[k], actual[k], f"{where}.{k}", opaque)
        return diffs
    if isinstance(recorded, list) and recorded and actual:
        diffs = []
        for i, item in enumerate(actual):
            diffs += _best_match_diff(recorded, item, f"{where}[{i}]", opaque)
        return diffs
    return []


def _best_match_diff(candidates: list[Any], item: Any, where: str, opaque: frozenset[str]) -> list[str]:
    """The differences to the recorded element most like ``item`` (fewest differences)."""
    best: list[str] | None = None
    for cand in candidates:
        diffs = structure_diff(cand, item, where, opaque)
        if best is None or len(diffs) < len(best):
            best = diffs
        if not best:
            break
    return best or []


# id remapping ------------------------------------------------------------------------------------------
@dataclass
class IdMap:
    """recorded id -> stand-in id, per kind; unknown ids pass through (e.g. the 404 probe 999999)."""

    maps: dict[str, dict[Any, Any]] = field(default_factory=dict)

    def set(self, kind: str, recorded: Any, actual: Any) -> None:
        self.maps.setdefault(kind, {})[recorded] = actual

    def get(self, kind: str, recorded: Any) -> Any:
        return self.maps.get(kind, {}).get(recorded, recorded)


PATH_KINDS = [
    (re.compile(r"^/api/jobs/(\d+)"), "job"), (re.compile(r"^/api/tasks/(\d+)"), "task"),
    (re.compile(r"^/api/projects/(\d+)"), "project"), (re.compile(r"^/api/issues/(\d+)"), "issue"),
    (re.compile(r"^/api/comments/(\d+)"), "comment"), (re.compile(r"^/api/guides/(\d+)"), "guide"),
    (re.compile(r"^/api/webhooks/(\d+)"), "webhook"), (re.compile(r"^/api/quality/settings/(\d+)"), "qsettings"),
    (re.compile(r"^/api/consensus/settings/(\d+)"), "csettings"),
    (re.compile(r"^/api/quality/reports/(\d+)"), "report"), (re.compile(r"^/api/assets/([\w-]+)"), "asset"),
]
QUERY_KINDS = {"task_id": "task", "job_id": "job", "parent_job_id": "job", "project_id": "project",
               "issue_id": "issue", "report_id": "report", "org_id": "org"}
BODY_KINDS = {"job": "job", "job_id": "job", "task_id": "task", "project_id": "project", "issue": "issue",
              "label_id": "label", "spec_id": "attribute", "assignee": "user", "guide_id": "guide"}


def remap_path(ids: IdMap, path: str) -> str:
    for regex, kind in PATH_KINDS:
        m = regex.match(path)
        if m:
            raw = m.group(1)
            recorded: Any = int(raw) if raw.isdigit() else raw
            return path[: m.start(1)] + str(ids.get(kind, recorded)) + path[m.end(1):]
    # cvat-sdk sends the rq id URL-encoded (recording T01), CVAT's own links do not
    m = re.match(r"^/api/requests/action=(\w+)&target=(\w+)&target_id=(\d+)(.*)$", unquote(path))
    if m:
        return (f"/api/requests/action={m.group(1)}&target={m.group(2)}"
                f"&target_id={ids.get(m.group(2), int(m.group(3)))}{m.group(4)}")
    return path


def remap_body(ids: IdMap, body: Any, key: str | None = None, kind_of_id: str | None = None) -> Any:
    if isinstance(body, list):
        return [remap_body(ids, v, key, kind_of_id) for v in body]
    if isinstance(body, dict):
        out = {}
        for k, v in body.items():
            if k == "id" and kind_of_id:
                out[k] = ids.get(kind_of_id, v)
            elif k in ("shapes", "elements"):
                out[k] = remap_body(ids, v, k, "shape")
            elif k == "tags":
                out[k] = remap_body(ids, v, k, "tag")
            elif k == "tracks":
                out[k] = remap_body(ids, v, k, "track")
            elif k == "var" or k in ("==", "in", ">", "<", "and", "or"):
                out[k] = _remap_logic(ids, k, v)
            else:
                out[k] = remap_body(ids, v, k, None)
        return out
    if key in BODY_KINDS and isinstance(body, int) and not isinstance(body, bool):
        return ids.get(BODY_KINDS[key], body)
    return body


def _remap_logic(ids: IdMap, op: str, args: Any) -> Any:
    """JSON-logic: ``{"==": [{"var": "task_id"}, 52]}`` maps 52 as a task id."""
    if op in ("==", "!=") and isinstance(args, list) and len(args) == 2 and isinstance(args[0], dict):
        var = args[0].get("var")
        if var in QUERY_KINDS and isinstance(args[1], int):
            return [args[0], ids.get(QUERY_KINDS[var], args[1])]
    return remap_body(ids, args)


def remap_query(ids: IdMap, query: dict[str, str]) -> dict[str, str]:
    out = {}
    for k, v in query.items():
        if k in QUERY_KINDS and v.isdigit():
            out[k] = str(ids.get(QUERY_KINDS[k], int(v)))
        elif k == "filter":
            out[k] = json.dumps(remap_body(ids, json.loads(v)))
        else:
            out[k] = v
    return out


def learn_ids(ids: IdMap, recorded: Any, actual: Any, kind: str | None) -> None:
    """Pair ids of objects the replayed request created (same order in both responses)."""
    if isinstance(recorded, list) and isinstance(actual, list):
        for r, a in zip(recorded, actual):
            learn_ids(ids, r, a, kind)
        return
    if not isinstance(recorded, dict) or not isinstance(actual, dict):
        return
    if kind and "id" in recorded and "id" in actual:
        ids.set(kind, recorded["id"], actual["id"])
    if kind == "asset" and "uuid" in recorded and "uuid" in actual:
        ids.set("asset", recorded["uuid"], actual["uuid"])
    for sub, sub_kind in (("shapes", "shape"), ("elements", "shape"), ("tags", "tag"), ("tracks", "track")):
        if sub in recorded and sub in actual:
            learn_ids(ids, recorded[sub], actual[sub], sub_kind)


# HTTP -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str
    body: Any


def send(base_url: str, method: str, path: str, query: dict[str, str], headers: dict[str, str],
         body: bytes | None) -> Reply:
    url = base_url + path + ("?" + urllib.parse.urlencode(query) if query else "")
    req = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, ctype, raw = resp.status, resp.headers.get("Content-Type", ""), resp.read()
    except urllib.error.HTTPError as err:
        status, ctype, raw = err.code, err.headers.get("Content-Type", ""), err.read()
    if "json" in ctype:
        return Reply(status, ctype, json.loads(raw) if raw else None)
    return Reply(status, ctype, raw.decode("utf-8", "replace"))


def basic_auth(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def multipart(fields: dict[str, tuple[str | None, str, bytes]]) -> tuple[bytes, str]:
    boundary = "standin-replay-boundary"
    parts = []
    for name, (filename, ctype, data) in fields.items():
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        parts.append(f"--{boundary}\r\nContent-Disposition: {disp}\r\nContent-Type: {ctype}\r\n\r\n".encode()
                     + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


"""The report pages the sidecar serves to managers (behind CVAT sign-in, :mod:`cvat_ext.reports.access`).

Routes (all HTML; every page needs a session, else 401 and no data; an organization the viewer
does not manage is 403):

* ``GET /login``, ``POST /login`` (form: ``token``, or ``username`` and ``password``), ``POST /logout``;
* ``GET /reports``: the organizations the viewer manages;
* ``GET /reports/org/<slug>``: tasks the sidecar scored (worst agreement, rule errors, open issues,
  decisions), annotators (those below the bar first) and the active-learning rounds; the personal
  workspace's slug is ``~``;
* ``GET /reports/org/<slug>/task/<id>``: every scored job of the task, with a chart of agreement;
* ``GET /reports/org/<slug>/annotator/<user id>``: an annotator's scorecard, accuracy on gold job by
  job, and the gold frames where they did worst, with links that open CVAT at that job and frame;
* ``GET /reports/org/<slug>/rounds/<project_id>``: each active-learning round, why each frame was
  picked, and where the frames went.

Numbers come from the sidecar's state store, so the pages show what the sidecar decided; links
open CVAT at the task or job.
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cvat_ext.reports.access import SESSION_COOKIE, AccessDenied, Sessions, Verifier, Viewer
from cvat_ext.reports.html import bar_chart, esc, layout, line_chart, table

if TYPE_CHECKING:
    from cvat_ext.sidecar.state import ScoreRow, StateStore, WorkRow
    from cvat_ext.workforce.scorecards import Scorecard

log = logging.getLogger(__name__)

MAX_FORM_BYTES = 8 * 1024
PERSONAL = "~"


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = "text/html; charset=utf-8"


def _slug(org: str) -> str:
    return org or PERSONAL


class ReportPages:
    """Routes report requests; ``stores`` maps each configured organization slug to its state view."""

    def __init__(self, *, cvat_url: str, stores: Mapping[str, StateStore], verify: Verifier, sessions: Sessions,
                 min_agreement: float, secure_cookie: bool = False, qualification_bar: float | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.cvat_url = cvat_url.rstrip("/")
        self.qualification_bar = qualification_bar
        self.clock = clock
        self.stores = dict(stores)
        self.verify = verify
        self.sessions = sessions
        self.min_agreement = min_agreement
        self.secure_cookie = secure_cookie

    @staticmethod
    def handles(path: str) -> bool:
        return path in ("/login", "/logout") or path == "/reports" or path.startswith("/reports/")

    # --- dispatch ---------------------------------------------------------------------------------
    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Answer:
        path = path.rstrip("/") or "/"
        if path == "/login":
            return self._login_form() if method == "GET" else self._login(headers, body)
        if path == "/logout" and method == "POST":
            self.sessions.drop(_cookie(headers))
            return Answer(303, b"", {"Location": "/login", "Set-Cookie": self._cookie("", max_age=0)})
        if method != "GET":
            return Answer(405, layout("Not allowed", "<p>Use GET.</p>"))
        viewer = self.sessions.get(_cookie(headers))
        if viewer is None:
            return Answer(401, self._form_page("Sign in to see the reports", ""), {"WWW-Authenticate": "Cookie"})
        parts = path.split("/")[2:]  # after "/reports"
        if not parts:
            return Answer(200, self._orgs_page(viewer))
        route = self._route(parts)
        if route is None:
            return Answer(404, layout("Not found", "<p>No such page.</p>", username=viewer.username))
        org, render = route
        if org not in viewer.orgs or org not in self.stores:
            return Answer(403, layout("Not allowed", f"<p>You do not manage organization {esc(_slug(org))}.</p>",
                                      username=viewer.username))
        return Answer(200, render(viewer, self.stores[org]))

    def _route(self, parts: list[str]) -> tuple[str, Callable[[Viewer, StateStore], bytes]] | None:
        if len(parts) < 2 or parts[0] != "org":
            return None
        org = "" if parts[1] == PERSONAL else urllib.parse.unquote(parts[1])
        rest = parts[2:]
        if not rest:
            return org, lambda v, s: self._overview(v, s, org)
        if len(rest) == 2 and rest[1].isdigit() and rest[0] == "task":
            return org, lambda v, s: self._task(v, s, org, int(rest[1]))
        if len(rest) == 2 and rest[1].isdigit() and rest[0] == "rounds":
            return org, lambda v, s: self._rounds(v, s, org, int(rest[1]))
        if len(rest) == 2 and rest[1].isdigit() and rest[0] == "annotator":
            return org, lambda v, s: self._annotator(v, s, org, int(rest[1]))
        return None

    # --- sign-in ------------------------------------------------------------------------------------
    def _cookie(self, value: str, *, max_age: int) -> str:
        secure = "; Secure" if self.secure_cookie else ""
        return f"{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"

    def _form_page(self, title: str, error: str) -> bytes:
        message = f'<p class="error">{esc(error)}</p>' if error else ""
        form = ('<form method="post" action="/login">'
                "<p>Sign in with your CVAT account: a personal access token, or your username and password. "
                "Organization owners, maintainers and supervisors see their organization.</p>"
                f'{message}<label for="token">Personal access token</label><input id="token" name="token" '
                'type="password" autocomplete="off"><p class="muted">or</p>'
                '<label for="username">Username</label><input id="username" name="username">'
                '<label for="password">Password</label><input id="password" name="password" type="password">'
                '<button type="submit">Sign in</button></form>')
        return layout(title, form)

    def _login_form(self) -> Answer:
        return Answer(200, self._form_page("Sign in", ""))

    def _login(self, headers: Mapping[str, str], body: bytes) -> Answer:
        if len(body) > MAX_FORM_BYTES:
            return Answer(413, self._form_page("Sign in", "The form is too large."))
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)

        def field_of(name: str) -> str | None:
            return (form.get(name) or [""])[0].strip() or None

        try:
            viewer = self.verify(token=field_of("token"), username=field_of("username"),
                                 password=field_of("password"))
        except AccessDenied as exc:
            log.info("report pages: sign-in refused (%s)", exc.status)
            return Answer(exc.status, self._form_page("Sign in", str(exc)))
        sid = self.sessions.create(viewer)
        log.info("report pages: %s signed in (%s)", viewer.username, ", ".join(sorted(map(_slug, viewer.orgs))))
        return Answer(303, b"", {"Location": "/reports",
                                 "Set-Cookie": self._cookie(sid, max_age=int(self.sessions.ttl_s))})

    # --- pages ----------------------------------------------------------------------------------------
    def _orgs_page(self, viewer: Viewer) -> bytes:
        rows = [[f'<a href="/reports/org/{esc(urllib.parse.quote(_slug(o)))}">{esc(_slug(o))}</a>']
                for o in sorted(viewer.orgs) if o in self.stores]
        return layout("Organizations", table(["organization"], rows), username=viewer.username)

    def _overview(self, viewer: Viewer, store: StateStore, org: str) -> bytes:
        from cvat_ext.active_learning.round import list_rounds

        open_issues = store.open_issues_by_task()
        rows = []
        for task_id in store.scored_tasks():
            scores = store.scores_of_task(task_id)
            # consensus agreement and rule errors are the sidecar's; CVAT's quality report is its own column
            agreements = [s.agreement for s in scores if s.kind == "consensus" and s.agreement is not None]
            quality = [s.agreement for s in scores if s.kind == "quality" and s.agreement is not None]
            worst = min(agreements) if agreements else None
            review = sum(1 for s in scores if s.decision.startswith("review"))
            cls = "bad" if worst is not None and worst < self.min_agreement else "ok"
            rows.append([
                f'<a href="/reports/org/{esc(_slug(org))}/task/{task_id}">task {task_id}</a>',
                str(len(scores)),
                f'<span class="{cls}">{worst:.3f}</span>' if worst is not None else '<span class="muted">—</span>',
                f"{quality[-1]:.3f}" if quality else '<span class="muted">—</span>',
                str(sum(s.rule_errors for s in scores if s.kind != "quality")), str(open_issues.get(task_id, 0)),
                str(review), f'<a href="{esc(self.cvat_url)}/tasks/{task_id}">open in CVAT</a>'])
        body = "<h2>Tasks the sidecar scored</h2>" + table(
            ["task", "scored units", "worst consensus agreement", "CVAT quality accuracy", "rule errors",
             "open issues", "sent to review", "CVAT"], rows, numeric=(1, 2, 3, 4, 5, 6))
        body += "<h2>Annotators</h2>" + self._annotators_table(store, org)
        rounds = list_rounds(store, project_id=None)
        projects = sorted({r.project_id for r in rounds})
        round_rows = [[f'<a href="/reports/org/{esc(_slug(org))}/rounds/{p}">project {p}</a>',
                       str(sum(r.project_id == p for r in rounds)),
                       str(sum(len(r.picks) for r in rounds if r.project_id == p))] for p in projects]
        body += "<h2>Active-learning rounds</h2>" + table(["project", "rounds", "frames sent"], round_rows,
                                                           numeric=(1, 2))
        return layout(f"Organization {_slug(org)}", body, username=viewer.username)

    def _annotators_table(self, store: StateStore, org: str) -> str:
        from cvat_ext.workforce.scorecards import scorecards

        def fmt(v: float | None, digits: int = 3) -> str:
            return "—" if v is None else f"{v:.{digits}f}"

        rows = []
        for c in sorted(scorecards(store, now=self.clock()), key=lambda c: (c.status != "not_qualified", c.username)):
            status = ('<span class="bad">not qualified</span>' if c.status == "not_qualified"
                      else esc(c.status.replace("_", " ")) or '<span class="muted">—</span>')
            rows.append([f'<a href="/reports/org/{esc(_slug(org))}/annotator/{c.user_id}">{esc(c.username)}</a>',
                         status, str(c.jobs), str(c.objects), fmt(c.gold_accuracy), estimated_text(c),
                         str(c.gold_frames), fmt(c.vs_consensus), fmt(c.rule_errors_per_100, 1),
                         f"{c.issues_resolved}/{c.issues_opened}", fmt(c.gold_7d), str(c.jobs_7d)])
        return table(["annotator", "qualification", "jobs", "objects", "gold accuracy", "estimated F1 (±)",
                      "gold frames", "F1 vs consensus", "rule errors /100 obj", "issues resolved/opened", "gold 7 d",
                      "jobs 7 d"], rows, numeric=(2, 3, 4, 5, 6, 7, 8, 10, 11))

    def _annotator(self, viewer: Viewer, store: StateStore, org: str, user_id: int) -> bytes:
        from cvat_ext.workforce.gold import GoldCheck
        from cvat_ext.workforce.scorecards import scorecards

        work = store.work(user_id=user_id, completed=True)
        cards = [c for c in scorecards(store, now=self.clock()) if c.user_id == user_id]
        if not cards:
            return layout("Annotator", '<p class="muted">No completed work recorded for this annotator.</p>',
                          username=viewer.username)
        card = cards[0]
        standing = store.get_qualification(user_id)
        facts = [("qualification", (standing.status.replace("_", " ") if standing else "not tracked")),
                 ("jobs / frames / objects", f"{card.jobs} / {card.frames} / {card.objects}"),
                 ("accuracy on gold", "—" if card.gold_accuracy is None else
                  f"{card.gold_accuracy:.3f} over {card.gold_frames} gold frames"
                  + (f" ({card.gold_honeypot_frames} of them honeypots)" if card.gold_honeypot_frames else "")),
                 *_honeypots_unread(work),
                 ("estimated F1 vs truth (± one standard error)", estimated_text(card)),
                 ("agreement vs consensus (not accuracy)", "—" if card.vs_consensus is None else
                  f"{card.vs_consensus:.3f}"),
                 ("rule errors", f"{card.rule_errors}" + ("" if card.rule_errors_per_100 is None else
                                                          f" ({card.rule_errors_per_100:.1f} per 100 objects)")),
                 ("rule errors by rule", ", ".join(f"{code}: {n}" for code, n in card.rule_errors_by_rule.items())
                  or "—"),
                 ("issues on their work (resolved / opened)", f"{card.issues_resolved} / {card.issues_opened}"),
                 ("median time to complete", "—" if card.median_hours is None else f"{card.median_hours:.1f} h"),
                 ("objects per hour", "—" if card.objects_per_hour is None else f"{card.objects_per_hour:.0f}"),
                 ("last 7 / 30 days", f"{card.jobs_7d} / {card.jobs_30d} jobs")]
        summary = table(["", ""], [[esc(k), esc(v)] for k, v in facts])
        checks = sorted(((r.completed_at or 0.0, GoldCheck(r.job_id, **r.facts["gold"]).f1, r)
                         for r in work if r.facts.get("gold")), key=lambda t: (t[0], t[2].job_id))
        chart = ("<h2>Accuracy on gold, job by job</h2>" + line_chart(
            [(t, f1) for t, f1, _ in checks], threshold=self.qualification_bar, x_label="completed (oldest → newest)")
                 if checks else "")
        frames = sorted(((float(frame_f1), int(frame), f1, r) for _, f1, r in checks
                         for frame, frame_f1 in r.facts["gold"].get("worst_frames", ())),
                        key=lambda t: (t[0], t[3].job_id, t[1]))[:10]
        rows = [[f'<a href="{esc(self.cvat_url)}/tasks/{r.task_id}/jobs/{r.job_id}?frame={frame}">'
                 f"job {r.job_id}, frame {frame}</a>", f"task {r.task_id}", f"{frame_f1:.3f}", f"{job_f1:.3f}",
                 esc(r.completed_date or "")] for frame_f1, frame, job_f1, r in frames]
        worst_html = "<h2>Worst gold frames</h2>" + table(["frame in CVAT", "task", "accuracy on the frame",
                                                           "accuracy on the job", "completed"], rows,
                                                          numeric=(2, 3))
        return layout(f"Annotator {card.username}", summary + chart + worst_html, username=viewer.username)

    def _task(self, viewer: Viewer, store: StateStore, org: str, task_id: int) -> bytes:
        scores = store.scores_of_task(task_id)
        rows = [[f'<a href="{esc(self.cvat_url)}/tasks/{task_id}/jobs/{s.job_id}">job {s.job_id}</a>', esc(s.kind),
                 f"{s.agreement:.3f}" if s.agreement is not None else "—", str(s.rule_errors), str(s.findings),
                 esc(s.decision)] for s in scores]
        bars = [(f"job {s.job_id}", s.agreement) for s in scores if s.agreement is not None and s.kind == "consensus"]
        chart = (f"<h2>Consensus agreement per parent job</h2>{bar_chart(bars, threshold=self.min_agreement)}"
                 if bars else "")
        body = (f'<p><a href="{esc(self.cvat_url)}/tasks/{task_id}">Open task {task_id} in CVAT</a></p>{chart}'
                "<h2>Scored jobs</h2>" + table(["job", "kind", "agreement", "rule errors", "findings", "decision"],
                                               rows, numeric=(2, 3, 4))
                + _annotators_of_task(scores))
        return layout(f"Task {task_id}", body, username=viewer.username)

    def _rounds(self, viewer: Viewer, store: StateStore, org: str, project_id: int) -> bytes:
        from cvat_ext.active_learning.round import list_rounds

        del org
        parts = []
        for rec in list_rounds(store, project_id=project_id):
            dest = (f'<a href="{esc(self.cvat_url)}/tasks/{rec.task_id}">task {rec.task_id}</a>'
                    if rec.task_id is not None else "not in CVAT yet")
            rows = [[str(p.rank), str(p.frame), esc(p.name), f"{p.score:.3f}", esc(p.why)] for p in rec.picks]
            parts.append(f"<h2>Round {rec.number} · pool task {rec.pool_task_id} ({esc(rec.status)})</h2>"
                         f"<p>{len(rec.picks)} frames by <code>{esc(rec.model_version)}</code>, planned "
                         f"{esc(rec.planned_at)}; sent to {dest}"
                         f"{f', {rec.prelabels} pre-labels' if rec.prelabels else ''}.</p>"
                         + table(["rank", "pool frame", "file", "score", "why"], rows, numeric=(0, 1, 3)))
        body = "".join(parts) or '<p class="muted">No rounds yet.</p>'
        return layout(f"Active learning · project {project_id}", body, username=viewer.username)


def estimated_text(card: Scorecard) -> str:
    """A scorecard's estimated F1 vs truth: ``0.812 ± 0.031 (14 GT objects)`` (± one standard error), or ``—``."""
    if card.estimated_f1 is None:
        return "—"
    se = "" if card.estimated_f1_se is None else f" ± {card.estimated_f1_se:.3f}"
    gt = f" ({card.estimated_gt_objects} GT objects)" if card.estimated_gt_objects else ""
    return f"{card.estimated_f1:.3f}{se}{gt}"


def _honeypots_unread(work: Sequence[WorkRow]) -> list[tuple[str, str]]:
    """The annotator page's ``honeypots not used`` line: each task whose validation layout CVAT would
    not give while their jobs were measured (``task 7, 3 jobs: why``); none when every layout was read."""
    by_task: dict[int, tuple[int, str]] = {}
    for r in work:
        why = r.facts.get("gold_honeypots_unread")
        if why:
            by_task[r.task_id] = (by_task.get(r.task_id, (0, ""))[0] + 1, str(why))
    if not by_task:
        return []
    return [("honeypots not used", "; ".join(f"task {task_id}, {n} job{'s' if n > 1 else ''}: {why}"
                                             for task_id, (n, why) in sorted(by_task.items())))]


def _annotators_of_task(scores: Sequence[ScoreRow]) -> str:
    """The task's annotators over its consensus jobs: estimates vs truth beside F1 vs consensus."""
    from cvat_ext.workforce.accuracy import accuracies_of, gt_check_line, summarise

    consensus = [s for s in scores if s.kind == "consensus"]
    summaries = summarise([a for s in consensus for a in accuracies_of(s.detail)])
    if not summaries:
        return ""
    rows = [[esc(a.name), str(a.jobs), a.f1_text(), a.mean_iou_text(), str(a.gt_objects),
             f"{a.vs_consensus_f1:.3f}"] for a in summaries]
    checks = "".join(f'<p class="muted">{esc(gt_check_line(s.job_id, s.detail["ground_truth"]))}</p>'
                     for s in consensus if s.detail.get("ground_truth"))
    return ("<h2>Annotators</h2><p class=\"muted\">Estimated against the truth (± one standard error; twice it "
            "is the range); F1 vs consensus is agreement with the other replicas, not accuracy.</p>"
            + table(["annotator", "jobs", "estimated F1 (±)", "estimated mean IoU (±)", "GT objects",
                     "F1 vs consensus"], rows, numeric=(1, 2, 3, 4, 5)) + checks)


def _cookie(headers: Mapping[str, str]) -> str | None:
    raw = next((v for k, v in headers.items() if k.lower() == "cookie"), "")
    for part in raw.split(";"):
        name, _, value = part.strip().partition("=")
        if name == SESSION_COOKIE:
            return value
    return None

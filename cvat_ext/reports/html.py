"""Server-side HTML for the report pages: one layout, tables, and SVG bar charts (no script, no CDN).

Everything interpolated into a page goes through :func:`esc`; pages work offline (CVAT
installations often are) because the style is inline and charts are drawn here as SVG.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2430;background:#f5f6f8}
header{background:#1d2430;color:#fff;padding:10px 24px;display:flex;gap:24px;align-items:center}
header a{color:#cfe3ff;text-decoration:none}main{padding:20px 24px;max-width:1200px}
h1{font-size:22px;margin:0 0 12px}h2{font-size:17px;margin:24px 0 8px}
table{border-collapse:collapse;background:#fff;width:100%;font-size:14px}
th,td{border-bottom:1px solid #e3e6eb;padding:6px 10px;text-align:left;vertical-align:top}
th{background:#eef1f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
.bad{color:#b3261e;font-weight:600}.ok{color:#1e7b34}.muted{color:#6b7380}
form{background:#fff;padding:20px;max-width:380px;border-radius:6px}
label{display:block;margin:10px 0 4px}input{width:100%;padding:6px;box-sizing:border-box}
button{margin-top:14px;padding:8px 16px}.error{color:#b3261e}
"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def layout(title: str, body: str, *, username: str | None = None) -> bytes:
    """A whole page (UTF-8)."""
    who = (f'<span>{esc(username)}</span><a href="/reports">organizations</a>'
           '<form method="post" action="/logout" style="display:inline;padding:0;background:none">'
           '<button style="margin:0">Sign out</button></form>') if username else ""
    # an empty icon: browsers would otherwise ask for /favicon.ico
    page = ('<!doctype html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">'
            f"<title>{esc(title)} · cvat-ext</title>"
            f"<style>{STYLE}</style></head><body><header><strong>cvat-ext QA</strong>{who}</header>"
            f"<main><h1>{esc(title)}</h1>{body}</main></body></html>")
    return page.encode("utf-8")


def table(header: Sequence[str], rows: Sequence[Sequence[str]], *, numeric: Sequence[int] = ()) -> str:
    """Cells are already HTML (escape them with :func:`esc`); ``numeric`` columns are right-aligned."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
                         for i, c in enumerate(row)) + "</tr>" for row in rows)
    if not rows:
        body = f'<tr><td colspan="{len(header)}" class="muted">nothing yet</td></tr>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def bar_chart(bars: Sequence[tuple[str, float]], *, threshold: float | None = None, width: int = 720,
              bar_h: int = 22, label_w: int = 160) -> str:
    """Horizontal bars of values in [0, 1] with an optional threshold line, as inline SVG."""
    height = max(1, len(bars)) * (bar_h + 6) + 24
    plot_w = width - label_w - 60
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="bar chart" style="background:#fff">']
    for i, (label, value) in enumerate(bars):
        y = 8 + i * (bar_h + 6)
        v = min(max(value, 0.0), 1.0)
        color = "#b3261e" if threshold is not None and value < threshold else "#2f6fb5"
        parts.append(f'<text x="{label_w - 8}" y="{y + bar_h - 6}" text-anchor="end" font-size="13">{esc(label)}</text>'
                     f'<rect x="{label_w}" y="{y}" width="{v * plot_w:.1f}" height="{bar_h}" fill="{color}"/>'
                     f'<text x="{label_w + v * plot_w + 6:.1f}" y="{y + bar_h - 6}" font-size="13">{value:.3f}</text>')
    if threshold is not None:
        x = label_w + threshold * plot_w
        parts.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height - 16}" stroke="#444" '
                     f'stroke-dasharray="4 3"/><text x="{x:.1f}" y="{height - 4}" font-size="12" '
                     f'text-anchor="middle">threshold {threshold:.2f}</text>')
    parts.append("</svg>")
    return "".join(parts)


def line_chart(points: Sequence[tuple[float, float]], *, threshold: float | None = None, width: int = 720,
               height: int = 220, x_label: str = "", y_label: str = "") -> str:
    """Values in [0, 1] over time (``(epoch_s, value)``, sorted) as points joined by a line, inline SVG."""
    left, right, top, bottom = 48, 16, 12, 32
    plot_w, plot_h = width - left - right, height - top - bottom
    if points:
        t0, t1 = points[0][0], points[-1][0]
        span = (t1 - t0) or 1.0
        xy = [(left + (t - t0) / span * plot_w if t1 > t0 else left + plot_w / 2,
               top + (1.0 - min(max(v, 0.0), 1.0)) * plot_h) for t, v in points]
    else:
        xy = []
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{esc(y_label or "chart")}" style="background:#fff">',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#999"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#999"/>']
    for tick in (0.0, 0.5, 1.0):
        y = top + (1.0 - tick) * plot_h
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{tick:.1f}</text>')
    if threshold is not None:
        y = top + (1.0 - threshold) * plot_h
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#b3261e" '
                     f'stroke-dasharray="4 3"/>')
    if len(xy) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
        parts.append(f'<polyline points="{path}" fill="none" stroke="#2f6fb5" stroke-width="2"/>')
    parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="#2f6fb5"/>' for x, y in xy]
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle" font-size="12">'
                 f'{esc(x_label)}</text></svg>')
    return "".join(parts)

"""List semantics shared by every CVAT list endpoint: JSON-logic ``filter``, ``sort``, pagination.

Rows are plain dicts of filterable values (``{"id": 131, "updated_date": "2026-...Z", ...}``);
dates are compared as ISO strings, which orders correctly for CVAT's fixed-width UTC format.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any

from tests.cvat_standin.routing import HttpError, Request, bad_request

Row = dict[str, Any]


def _compare(op: str, a: Any, b: Any) -> bool:
    if a is None or b is None:
        return op == "==" and a == b
    try:
        if op == "<":
            return bool(a < b)
        if op == ">":
            return bool(a > b)
        if op == "<=":
            return bool(a <= b)
        if op == ">=":
            return bool(a >= b)
    except TypeError:
        return False
    raise AssertionError(op)


def json_logic(expr: Any, row: Row) -> Any:
    """Evaluate the JSON-logic subset CVAT supports on ``row``; raises 400 on unknown operators."""
    if isinstance(expr, list):
        return [json_logic(e, row) for e in expr]
    if not isinstance(expr, dict):
        return expr
    if len(expr) != 1:
        raise bad_request({"filter": ["expected one operator per JSON-logic object"]})
    (op, raw_args), = expr.items()
    args = raw_args if isinstance(raw_args, list) else [raw_args]
    if op == "var":
        key = args[0]
        if key not in row:
            raise bad_request({"filter": [f"unknown filter field {key!r}"]})
        return row[key]
    if op == "and":
        return all(json_logic(a, row) for a in args)
    if op == "or":
        return any(json_logic(a, row) for a in args)
    if op == "!":
        return not json_logic(args[0], row)
    if op == "!!":
        return bool(json_logic(args[0], row))
    values = [json_logic(a, row) for a in args]
    if op == "==":
        return values[0] == values[1]
    if op == "!=":
        return values[0] != values[1]
    if op in ("<", ">", "<=", ">="):
        if len(values) == 3:  # "between"
            return _compare(op, values[0], values[1]) and _compare(op, values[1], values[2])
        return _compare(op, values[0], values[1])
    if op == "in":
        needle, haystack = values
        if haystack is None or needle is None:
            return False
        return needle in haystack
    raise bad_request({"filter": [f"unsupported JSON-logic operator {op!r}"]})


def apply_list_params(
    ctx: Request,
    items: Sequence[Any],
    row: Callable[[Any], Row],
    *,
    simple_filters: Sequence[str] = (),
    default_sort: str = "-id",
) -> list[Any]:
    """Filter (simple query params + JSON-logic ``filter``) and sort ``items``."""
    rows = [(row(it), it) for it in items]
    for name in simple_filters:
        if name in ctx.query:
            wanted = ctx.query[name]
            rows = [(r, it) for r, it in rows if _matches_simple(r.get(name), wanted)]
    if ctx.query.get("filter"):
        try:
            expr = json.loads(ctx.query["filter"])
        except ValueError as exc:
            raise bad_request({"filter": [f"invalid JSON: {exc}"]}) from exc
        rows = [(r, it) for r, it in rows if json_logic(expr, r)]
    for key in reversed(ctx.query.get("sort", default_sort).split(",")):
        key = key.strip()
        if not key:
            continue
        desc = key.startswith("-")
        name = key.lstrip("-")
        if rows and name not in rows[0][0]:
            raise bad_request({"sort": [f"unknown sort field {name!r}"]})
        rows.sort(key=_row_key(name), reverse=desc)
    return [it for _, it in rows]


def _matches_simple(value: Any, wanted: str) -> bool:
    if value is None:
        return wanted in ("", "null")
    if isinstance(value, bool):
        return str(value).lower() == wanted.lower()
    return str(value) == wanted


def _row_key(name: str) -> Callable[[tuple[Row, Any]], tuple[int, Any]]:
    """Sort key on one field; nulls last ascending and first descending, as PostgreSQL orders them."""

    def key(pair: tuple[Row, Any]) -> tuple[int, Any]:
        value = pair[0].get(name)
        return (1, "") if value is None else (0, value)

    return key


def paginate(ctx: Request, items: Sequence[Any], render: Callable[[Any], Any]) -> dict[str, Any]:
    """CVAT page: ``{count, next, previous, results}``; ``page_size`` default 10, ``all`` = unlimited."""
    size_raw = ctx.query.get("page_size", "10")
    try:
        page = int(ctx.query.get("page", "1"))
        size = len(items) or 1 if size_raw == "all" else int(size_raw)
    except ValueError as exc:
        raise bad_request({"detail": "Invalid page."}) from exc
    if page < 1 or size < 1 or (page > 1 and (page - 1) * size >= len(items)):
        raise HttpError(404, {"detail": "Invalid page."})
    chunk = items[(page - 1) * size : page * size]
    return {
        "count": len(items),
        "next": _page_url(ctx, page + 1) if page * size < len(items) else None,
        "previous": _page_url(ctx, page - 1) if page > 1 else None,
        "results": [render(it) for it in chunk],
    }


def _page_url(ctx: Request, page: int) -> str:
    query = dict(ctx.query)
    if page == 1:
        query.pop("page", None)
    else:
        query["page"] = str(page)
    return f"{ctx.base_url}{ctx.path}?{urllib.parse.urlencode(sorted(query.items()))}"

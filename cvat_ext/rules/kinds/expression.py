"""The ``expression`` kind: a tiny predicate language over shape fields, compiled once, run per frame.

The text is parsed with :mod:`ast` and only a whitelist of nodes is accepted: constants, the names in
:data:`FIELD_TYPES`, ``attributes["name"]``, comparisons (chains included), ``in``/``not in`` a
literal list, ``and``/``or``/``not``, unary ``-``/``+`` and ``+ - * / // % **``. A static type pass
rejects ``label > 3`` or ``width and height`` at load time. The compiled predicate evaluates over
the frame's columns (numpy arrays of length N) and returns an (N,) bool array: nothing is ever
passed to ``eval``/``exec``, and numeric constants are floats so ``10**10**10`` cannot build a huge
integer.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from cvat_ext.qa.findings import Finding
from cvat_ext.rules.frame_batch import FrameBatch
from cvat_ext.rules.kinds.base import Checker, JobContext, fmt
from cvat_ext.rules.schema import ExpressionRule

ExprType = Literal["num", "str", "bool"]
Env = Mapping[str, Any]
Evaluator = Callable[[Env], Any]

#: name -> type; ``attributes["x"]`` is a str
FIELD_TYPES: dict[str, ExprType] = {
    "area": "num",
    "width": "num",
    "height": "num",
    "rotation": "num",
    "score": "num",
    "frame": "num",
    "frame_width": "num",
    "frame_height": "num",
    "label": "str",
    "type": "str",
    "occluded": "bool",
}

_ARITH: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.true_divide,
    ast.FloorDiv: np.floor_divide,
    ast.Mod: np.mod,
    ast.Pow: np.power,
}
_ORDER: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Lt: np.less,
    ast.LtE: np.less_equal,
    ast.Gt: np.greater,
    ast.GtE: np.greater_equal,
}
_EQUALITY: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {ast.Eq: np.equal, ast.NotEq: np.not_equal}


@dataclass(frozen=True)
class CompiledExpression:
    """A checked predicate. ``attributes`` lists the attribute names it reads."""

    text: str
    names: tuple[str, ...]
    attributes: tuple[str, ...]
    _run: Evaluator

    def evaluate(self, env: Env, n: int) -> npt.NDArray[np.bool_]:
        """(n,) bool: the predicate for each of the n objects whose columns are in ``env``.

        ``env`` maps field names to (n,) arrays or scalars and ``"attributes"`` to a mapping
        name -> (n,) str array.
        """
        with np.errstate(all="ignore"):
            out = np.asarray(self._run(env))
        if out.ndim == 0:
            out = np.full(n, bool(out))
        return out.astype(bool, copy=False)


class _Compiler:
    def __init__(self, text: str) -> None:
        self.text = text
        self.attributes: list[str] = []
        self.names: list[str] = []

    def fail(self, node: ast.AST, what: str) -> ValueError:
        col = getattr(node, "col_offset", 0) + 1
        return ValueError(f"expression {self.text!r} column {col}: {what}")

    def compile(self, node: ast.AST) -> tuple[Evaluator, ExprType]:
        handler = getattr(self, f"_{type(node).__name__}", None)
        if handler is None:
            raise self.fail(node, f"{type(node).__name__} is not allowed (comparisons, and/or/not, arithmetic only)")
        result: tuple[Evaluator, ExprType] = handler(node)
        return result

    def _Constant(self, node: ast.Constant) -> tuple[Evaluator, ExprType]:
        value = node.value
        if isinstance(value, bool):
            return (lambda env: value), "bool"
        if isinstance(value, int | float):
            number = float(value)
            return (lambda env: number), "num"
        if isinstance(value, str):
            return (lambda env: value), "str"
        raise self.fail(node, f"constant {value!r} is not a number, string or boolean")

    def _Name(self, node: ast.Name) -> tuple[Evaluator, ExprType]:
        kind = FIELD_TYPES.get(node.id)
        if kind is None:
            known = ", ".join(sorted(FIELD_TYPES))
            raise self.fail(node, f'unknown name {node.id!r} (known: {known}, attributes["name"])')
        name = node.id
        self.names.append(name)
        return (lambda env: env[name]), kind

    def _Subscript(self, node: ast.Subscript) -> tuple[Evaluator, ExprType]:
        key = node.slice
        if not (isinstance(node.value, ast.Name) and node.value.id == "attributes"):
            raise self.fail(node, 'only attributes["name"] may be subscripted')
        if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
            raise self.fail(node, 'attributes must be indexed by a string constant: attributes["name"]')
        attr = key.value
        self.attributes.append(attr)
        return (lambda env: env["attributes"][attr]), "str"

    def _BoolOp(self, node: ast.BoolOp) -> tuple[Evaluator, ExprType]:
        parts = [self.expect(v, "bool") for v in node.values]
        combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or

        def run(env: Env) -> Any:
            out = parts[0](env)
            for part in parts[1:]:
                out = combine(out, part(env))
            return out

        return run, "bool"

    def _UnaryOp(self, node: ast.UnaryOp) -> tuple[Evaluator, ExprType]:
        if isinstance(node.op, ast.Not):
            inner = self.expect(node.operand, "bool")
            return (lambda env: np.logical_not(inner(env))), "bool"
        if isinstance(node.op, ast.USub | ast.UAdd):
            inner = self.expect(node.operand, "num")
            sign = -1.0 if isinstance(node.op, ast.USub) else 1.0
            return (lambda env: np.multiply(sign, inner(env))), "num"
        raise self.fail(node, f"operator {type(node.op).__name__} is not allowed")

    def _BinOp(self, node: ast.BinOp) -> tuple[Evaluator, ExprType]:
        func = _ARITH.get(type(node.op))
        if func is None:
            raise self.fail(node, f"operator {type(node.op).__name__} is not allowed")
        left = self.expect(node.left, "num")
        right = self.expect(node.right, "num")
        return (lambda env: func(left(env), right(env))), "num"

    def _Compare(self, node: ast.Compare) -> tuple[Evaluator, ExprType]:
        steps: list[Evaluator] = []
        left_node = node.left
        left, left_type = self.compile(left_node)
        for index, (op, right_node) in enumerate(zip(node.ops, node.comparators, strict=True)):
            if isinstance(op, ast.In | ast.NotIn):
                if index != len(node.ops) - 1:
                    raise self.fail(node, "'in' cannot be chained with another comparison")
                steps.append(self.membership(op, left, left_type, right_node))
                continue
            right, right_type = self.compile(right_node)
            if isinstance(op, tuple(_ORDER)):
                if left_type != "num" or right_type != "num":
                    raise self.fail(
                        right_node, f"{type(op).__name__} compares numbers, got {left_type} and {right_type}"
                    )
                func = _ORDER[type(op)]
            elif isinstance(op, tuple(_EQUALITY)):
                if left_type != right_type:
                    raise self.fail(right_node, f"cannot compare {left_type} with {right_type}")
                func = _EQUALITY[type(op)]
            else:
                raise self.fail(node, f"comparison {type(op).__name__} is not allowed")
            steps.append(self.bind(func, left, right))
            left, left_type = right, right_type

        def run(env: Env) -> Any:
            out = steps[0](env)
            for step in steps[1:]:
                out = np.logical_and(out, step(env))
            return out

        return run, "bool"

    @staticmethod
    def bind(func: Callable[[Any, Any], Any], left: Evaluator, right: Evaluator) -> Evaluator:
        return lambda env: func(left(env), right(env))

    def membership(self, op: ast.cmpop, left: Evaluator, left_type: ExprType, right_node: ast.expr) -> Evaluator:
        if not isinstance(right_node, ast.List | ast.Tuple | ast.Set):
            raise self.fail(right_node, '\'in\' needs a literal list, e.g. label in ["car", "bus"]')
        values: list[Any] = []
        for element in right_node.elts:
            run, kind = self.compile(element)
            if not isinstance(element, ast.Constant) or kind != left_type:
                raise self.fail(element, f"list items must be {left_type} constants")
            values.append(run({}))
        negate = isinstance(op, ast.NotIn)
        choices = np.array(values, dtype=object if left_type == "str" else np.float64)

        def run_in(env: Env) -> Any:
            found = np.isin(np.asarray(left(env), dtype=choices.dtype), choices)
            return np.logical_not(found) if negate else found

        return run_in

    def expect(self, node: ast.AST, wanted: ExprType) -> Evaluator:
        run, kind = self.compile(node)
        if kind != wanted:
            what = "a condition" if wanted == "bool" else f"a {wanted}"
            raise self.fail(node, f"expected {what}, got {kind}")
        return run


def compile_expression(text: str) -> CompiledExpression:
    """Parse and type-check ``text``; raise ValueError naming the column of the first problem."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"expression {text!r} column {exc.offset or 0}: syntax error: {exc.msg}") from None
    compiler = _Compiler(text)
    run = compiler.expect(tree.body, "bool")
    return CompiledExpression(
        text=text,
        names=tuple(dict.fromkeys(compiler.names)),
        attributes=tuple(dict.fromkeys(compiler.attributes)),
        _run=run,
    )


class ExpressionChecker(Checker[ExpressionRule]):
    """Evaluates the compiled predicate over the in-scope columns of each frame; a row where it is
    false is a finding."""

    kind = "expression"

    def __init__(self, rule: ExpressionRule, ctx: JobContext) -> None:
        super().__init__(rule, ctx)
        self.compiled = compile_expression(rule.expr)
        self.spec_ids: dict[str, set[int]] = {}
        for spec_id, name in ctx.attribute_names.items():
            self.spec_ids.setdefault(name, set()).add(spec_id)
        dense = ctx.index.dense
        self.label_by_idx = np.array([""] * (len(dense) + 1), dtype=object)
        for label_id, k in dense.items():
            self.label_by_idx[k] = ctx.index.names[label_id]

    def _env(self, batch: FrameBatch, rows: npt.NDArray[np.intp]) -> dict[str, Any]:
        """Columns of the names the expression reads, for ``rows`` only."""
        columns: dict[str, Callable[[], Any]] = {
            "area": lambda: batch.area[rows],
            "width": lambda: batch.width[rows],
            "height": lambda: batch.height[rows],
            "rotation": lambda: batch.rotation[rows],
            "score": lambda: batch.score[rows],
            "occluded": lambda: batch.occluded[rows],
            "label": lambda: self.label_by_idx[batch.label_idx[rows]],
            "type": lambda: batch.type_name[rows].astype(object),
            "frame": lambda: batch.frame[rows].astype(np.float64),
            "frame_width": lambda: batch.frame_w[rows],
            "frame_height": lambda: batch.frame_h[rows],
        }
        env: dict[str, Any] = {name: columns[name]() for name in self.compiled.names}
        attributes: dict[str, npt.NDArray[np.object_]] = {}
        for name in self.compiled.attributes:
            ids = self.spec_ids.get(name, set())
            values = [
                next((a.value for a in batch.row_attributes(int(i)) if a.spec_id in ids), "") for i in rows.tolist()
            ]
            attributes[name] = np.array(values, dtype=object)
        env["attributes"] = attributes
        return env

    def check_batch(self, batch: FrameBatch) -> Iterator[Finding]:
        rows = np.flatnonzero(self.in_scope(batch))
        if rows.size == 0:
            return
        env = self._env(batch, rows)
        holds = self.compiled.evaluate(env, rows.size)
        for k in np.flatnonzero(~holds):
            if self.rule.message:
                detail = self.rule.message
            else:
                shown = [f"{n}={fmt(env[n][k])}" for n in self.compiled.names if FIELD_TYPES[n] == "num"]
                shown += [f"attributes[{a!r}]={env['attributes'][a][k]!r}" for a in self.compiled.attributes]
                values = f" ({', '.join(shown)})" if shown else ""
                detail = f"fails `{self.rule.expr}`{values}"
            yield self.object_finding(batch, int(rows[k]), detail)

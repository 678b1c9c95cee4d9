"""The expression language: a whitelist of ast nodes, static types, and vectorised evaluation
checked against a plain per-object reference."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvat_ext.rules.kinds.expression import compile_expression

ROWS = [
    {"area": 4.0, "width": 2.0, "height": 2.0, "label": "car", "type": "rectangle", "occluded": False, "kind": ""},
    {
        "area": 900.0,
        "width": 30.0,
        "height": 30.0,
        "label": "sign",
        "type": "polygon",
        "occluded": True,
        "kind": "stop",
    },
    {"area": 0.0, "width": 0.0, "height": 5.0, "label": "person", "type": "mask", "occluded": False, "kind": "other"},
]


def env_of(rows: list[dict[str, Any]]) -> dict[str, Any]:
    env: dict[str, Any] = {k: np.array([r[k] for r in rows]) for k in ("area", "width", "height", "occluded")}
    env |= {k: np.array([r[k] for r in rows], dtype=object) for k in ("label", "type")}
    env |= {"score": np.ones(len(rows)), "rotation": np.zeros(len(rows)), "frame": 3.0}
    env |= {"frame_width": 640.0, "frame_height": 480.0}
    env["attributes"] = {"kind": np.array([r["kind"] for r in rows], dtype=object)}
    return env


def reference(text: str, row: dict[str, Any]) -> bool:
    """Plain Python on one row (the test's oracle; trusted test strings only)."""
    names = {**row, "score": 1.0, "rotation": 0.0, "frame": 3.0, "frame_width": 640.0, "frame_height": 480.0}
    names["attributes"] = {"kind": row["kind"]}
    with np.errstate(all="ignore"):
        try:
            return bool(eval(text, {"__builtins__": {}}, names))
        except ZeroDivisionError:
            return False


GOOD = [
    "width >= 4 and height >= 4",
    "area > 10 or occluded",
    "not occluded",
    "label in ['car', 'truck']",
    "label not in ('car',)",
    "0 < width <= 30",
    'attributes["kind"] == "stop" or label != "sign"',
    "width * height == area",
    "width / frame_width < 0.01",
    "-width < 1 and +height >= 2",
    "area % 2 == 0 and width // 2 >= 1",
    "width ** 2 >= area",
    "type == 'mask' or score >= 0.5",
    "frame == 3 and frame_height == 480",
    "True",
]


@pytest.mark.parametrize("text", GOOD)
def test_matches_reference(text: str) -> None:
    compiled = compile_expression(text)
    got = compiled.evaluate(env_of(ROWS), len(ROWS))
    assert got.dtype == bool and got.shape == (3,)
    assert got.tolist() == [reference(text, r) for r in ROWS]


BAD = [
    ("__import__('os')", "Call is not allowed"),
    ("width.real > 1", "Attribute is not allowed"),
    ("[x for x in range(3)]", "ListComp is not allowed"),
    ("lambda: 1", "Lambda is not allowed"),
    ("widht > 3", "unknown name 'widht'"),
    ("label > 3", "compares numbers"),
    ("label == 3", "cannot compare str with num"),
    ("width and height", "expected a condition, got num"),
    ("width + 1", "expected a condition, got num"),
    ("label + 'x' == 'y'", "expected a num, got str"),
    ("label in labels", "needs a literal list"),
    ("label in width", "needs a literal list"),
    ("label in ['car', 3]", "list items must be str constants"),
    ("width in [1, 2] == True", "cannot be chained"),
    ("attributes.kind == 'x'", "Attribute is not allowed"),
    ("attributes[0] == 'x'", "string constant"),
    ("label[0] == 'c'", "only attributes"),
    ("width >", "syntax error"),
    ("width > 1; import os", "syntax error"),
    ("None == None", "constant None"),
    ("width if occluded else height", "IfExp is not allowed"),
    ("width @ height > 1", "MatMult is not allowed"),
    ("width << 2 > 1", "LShift is not allowed"),
    ("(width := 3) > 1", "NamedExpr is not allowed"),
    ("f'{width}' == 'x'", "JoinedStr is not allowed"),
    ("~occluded", "Invert is not allowed"),
]


@pytest.mark.parametrize(("text", "words"), BAD)
def test_rejected_at_compile_time(text: str, words: str) -> None:
    with pytest.raises(ValueError, match="column") as info:
        compile_expression(text)
    assert words in str(info.value)


def test_huge_powers_are_floats_not_big_integers() -> None:
    compiled = compile_expression("10 ** 10 ** 10 > width")
    assert compiled.evaluate(env_of(ROWS), 3).tolist() == [True, True, True]


def test_attribute_names_are_reported() -> None:
    compiled = compile_expression('attributes["kind"] == "a" or attributes["color"] != "b" and width > 1')
    assert compiled.attributes == ("kind", "color")
    assert compiled.names == ("width",)


rows_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "area": st.floats(0, 1e5),
            "width": st.floats(0, 1e3),
            "height": st.floats(0, 1e3),
            "label": st.sampled_from(["car", "sign", "person"]),
            "type": st.sampled_from(["rectangle", "mask"]),
            "occluded": st.booleans(),
            "kind": st.sampled_from(["", "stop", "other"]),
        }
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=60, deadline=None)
@given(rows=rows_strategy, text=st.sampled_from(GOOD[:13]))
def test_vectorised_equals_reference_on_random_rows(rows: list[dict[str, Any]], text: str) -> None:
    got = compile_expression(text).evaluate(env_of(rows), len(rows)).tolist()
    assert got == [reference(text, r) for r in rows]

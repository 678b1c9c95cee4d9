"""Reading a JSON file with one clear error naming it (standard library only: commands read their
small input files before importing NumPy and the engines)."""

from __future__ import annotations

import json
from collections.abc import Callable
from os import PathLike
from typing import Any, NoReturn

from cvat_ext.errors import AnnotationFormatError
from cvat_ext.inputs.text import read_utf8

__all__ = ["load_json_file"]


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def load_json_file(path: str | PathLike[str]) -> Any:
    """Read a JSON file; bad JSON (NaN/Infinity included) or an unreadable file raises
    :class:`AnnotationFormatError` naming the file (and the line and column)."""
    parse_constant: Callable[[str], Any] = _reject_constant
    try:
        text = read_utf8(path)
    except ValueError as exc:  # not UTF-8: the message gives line and column
        raise AnnotationFormatError(str(exc)) from exc
    except OSError as exc:
        raise AnnotationFormatError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        return json.loads(text, parse_constant=parse_constant)
    except json.JSONDecodeError as exc:
        raise AnnotationFormatError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from exc
    except ValueError as exc:
        raise AnnotationFormatError(f"{path}: invalid JSON: {exc}") from exc

"""Text files must be UTF-8: one wording for the file that is not (a rule pack saved as Latin-1).

The message gives the line and column of the first bad byte, so the user can find the ``é`` their
editor wrote in another encoding, and says what to do.
"""

from __future__ import annotations

from os import PathLike


def not_utf8_message(path: str | PathLike[str], data: bytes, exc: UnicodeDecodeError) -> str:
    """``rules.yaml:3:14: not UTF-8 text (byte 0xe9); save the file as UTF-8``.

    ``data`` is the file's bytes (or the part of them ``exc`` was raised for: ``exc.start`` is an
    offset into it).
    """
    head = data[: exc.start]
    line = head.count(b"\n") + 1
    column = exc.start - (head.rfind(b"\n") + 1) + 1
    byte = data[exc.start : exc.start + 1].hex()
    return f"{path}:{line}:{column}: not UTF-8 text (byte 0x{byte}); save the file as UTF-8"


def read_utf8(path: str | PathLike[str]) -> str:
    """The file's text. Raises :class:`ValueError` with :func:`not_utf8_message` when it is not UTF-8
    and lets :class:`OSError` through: callers translate both into their own error class."""
    with open(path, "rb") as fh:
        data = fh.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(not_utf8_message(path, data, exc)) from exc

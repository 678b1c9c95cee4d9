"""Blocks that cvat-ext owns inside a CVAT task guide's markdown, between two HTML comments.

A guide is shared with people: cvat-ext writes only between its own markers
(``<!-- cvat-ext:<name>:begin -->`` ... ``<!-- cvat-ext:<name>:end -->``) and keeps everything
around them. Each writer has its own name (the QA summary, one per active-learning round).
"""

from __future__ import annotations


def markers(name: str) -> tuple[str, str]:
    """The begin and end comments of block ``name``."""
    return f"<!-- cvat-ext:{name}:begin -->", f"<!-- cvat-ext:{name}:end -->"


def replace_block(markdown: str, block: str, name: str) -> str:
    """``markdown`` with block ``name`` replaced by ``block`` (markers included), or appended when absent."""
    begin, end = markers(name)
    start, stop = markdown.find(begin), markdown.find(end)
    if start != -1 and stop > start:
        return markdown[:start] + block + markdown[stop + len(end) :]
    sep = "\n\n" if markdown.strip() else ""
    return markdown.rstrip() + sep + block + "\n"

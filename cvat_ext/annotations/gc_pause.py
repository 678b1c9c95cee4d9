"""Pausing Python's cyclic garbage collector while a whole job is built or read.

A 500,000-shape job allocates millions of container objects; each allocation burst makes the
collector rescan the growing heap (and the caller's: a sidecar holds the decoded CVAT bodies it
reads from), which made dumping 5x slower (bench/annotations_parse.py) and reading three decoded
1,000-frame bodies into columns 3x slower (bench/sidecar_consensus.py). Nothing built under the
pause forms a reference cycle, so pausing loses nothing.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the ``with`` block (restored as it was)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()

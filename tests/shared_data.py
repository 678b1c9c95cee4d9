"""Where the recorded CVAT 2.73 facts the tests use live: ``tests/data/cvat-2.73`` in this repository.

The recordings (real request/response pairs from a CVAT 2.73.0 server) and CVAT's OpenAPI schema
are data of this project: a bare ``git clone`` runs every test with nothing beside it. See
``tests/data/cvat-2.73/README.md`` for where they come from.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(__file__).resolve().parent / "data" / "cvat-2.73"
RECORDED_DIR = DATA_DIR / "recorded"
SCHEMA_PATH = DATA_DIR / "schema-2.73.0.yml"

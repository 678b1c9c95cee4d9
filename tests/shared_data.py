"""Where the team's shared reference data lives: ``../shared`` beside the checkout.

``CVAT_EXT_SHARED`` overrides it. The recordings and the OpenAPI schema are test inputs, not
optional extras: when they are missing the tests that need them fail with this message rather than
skip, so CI can never pass by silently testing less.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """The shared folder (``$CVAT_EXT_SHARED``, else ``<repo>/../shared``, else ``<repo>/shared``)."""
    env = os.environ.get("CVAT_EXT_SHARED")
    candidates = [Path(env)] if env else []
    candidates += [REPO_ROOT.parent / "shared", REPO_ROOT / "shared", Path("/work/shared")]
    for path in candidates:
        if (path / "cvat").is_dir():
            return path
    raise FileNotFoundError(
        "shared reference data not found: expected ../shared/cvat beside the checkout "
        f"(looked in {', '.join(str(c) for c in candidates)}); set CVAT_EXT_SHARED"
    )


SHARED_DIR = shared_dir()
RECORDED_DIR = SHARED_DIR / "cvat" / "recorded"
SCHEMA_PATH = SHARED_DIR / "cvat" / "schema-2.73.0.yml"

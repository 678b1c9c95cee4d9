"""Model side of the LF pre-label detector: LF packs from CVAT_EXT_LF_PACKS (or the examples)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cvat_ext.functions.spec import function_yaml_path, read_labels
from cvat_ext.labeling_functions.prelabel import LfPrelabelFunction, prelabel_function_from_env


def build_model(context: Any) -> LfPrelabelFunction:
    """Called once per worker by ``init_context``."""
    return prelabel_function_from_env(read_labels(function_yaml_path(Path(__file__).parent)))

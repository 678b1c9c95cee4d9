"""Load a function folder's main.py in-process (as Nuclio would) for nuclio_sdk.test.Platform calls."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from cvat_ext.functions.dev.gateway import load_function

REPO = Path(__file__).resolve().parents[2]
SERVERLESS = REPO / "serverless"


def function_module(relpath: str, yaml_name: str = "function.yaml") -> ModuleType:
    return load_function(SERVERLESS / relpath / "nuclio" / yaml_name).module


def iou(a: list[float], b: list[float]) -> float:
    """IoU of two xyxy boxes (scalar reference, independent of the code under test)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0

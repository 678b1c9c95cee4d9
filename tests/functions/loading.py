"""Load a function folder's main.py in-process (as Nuclio would) for nuclio_sdk.test.Platform calls."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

from cvat_ext.functions.dev.gateway import load_function

REPO = Path(__file__).resolve().parents[2]
SERVERLESS = REPO / "serverless"


def function_module(relpath: str, yaml_name: str = "function.yaml") -> ModuleType:
    return load_function(SERVERLESS / relpath / "nuclio" / yaml_name).module


class NuclioWorker:
    """One function module + one nuclio-sdk test platform (= one Nuclio worker); ``context`` is the
    worker's context after its first call (``context.user_data.model`` is the function's model)."""

    def __init__(self, relpath: str) -> None:
        import nuclio_sdk.test

        self.module: ModuleType = function_module(relpath)
        self.platform = nuclio_sdk.test.Platform()
        self.context: Any = None

    def call(self, body: Any) -> tuple[int, Any]:
        import nuclio_sdk

        def keep(context: Any) -> Any:
            self.context = context
            return context

        event = nuclio_sdk.Event(body=body, content_type="application/json", method="POST", path="/")
        response = self.platform.call_handler_with_context_mutation(self.module.handler, event, keep)
        assert response.content_type == "application/json"
        return response.status_code, json.loads(response.body)


def iou(a: list[float], b: list[float]) -> float:
    """IoU of two xyxy boxes (scalar reference, independent of the code under test)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0

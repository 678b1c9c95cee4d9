"""Model side of the fine superpixel interactor (environment: see cvat_ext.functions.superpixels)."""

from __future__ import annotations

from typing import Any

from cvat_ext.functions.superpixels import SuperpixelFunction, superpixel_function_from_env


def build_model(context: Any) -> SuperpixelFunction:
    """Called once per worker by ``init_context``."""
    return superpixel_function_from_env("fine")

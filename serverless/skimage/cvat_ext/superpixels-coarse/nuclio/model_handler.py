"""Model side of the coarse superpixel interactor (environment: see cvat_ext.models.superpixel_function)."""

from __future__ import annotations

from typing import Any

from cvat_ext.models.superpixel_function import SuperpixelFunction, superpixel_function_from_env


def build_model(context: Any) -> SuperpixelFunction:
    """Called once per worker by ``init_context``."""
    return superpixel_function_from_env("coarse")

"""Loading a checkpoint file into a torch module, with errors that name the file and the model."""

from __future__ import annotations

import importlib
import os
from typing import Any

from cvat_ext.errors import ConfigError


def load_checkpoint(module: Any, path: str | os.PathLike[str], *, what: str) -> None:
    """Load the state dict at ``path`` (CPU, ``weights_only``) into ``module``.

    ``what`` names the model in errors, e.g. ``"sam: checkpoint ... does not fit vit_b"``; a
    missing/corrupt file or a state dict of another architecture raises :class:`ConfigError`.
    """
    torch = importlib.import_module("torch")
    try:
        state = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exc:
        raise ConfigError(f"{what}: cannot load checkpoint {path} ({exc})") from exc
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        raise ConfigError(f"{what}: checkpoint {path} does not fit the model ({exc})"[:2000]) from exc

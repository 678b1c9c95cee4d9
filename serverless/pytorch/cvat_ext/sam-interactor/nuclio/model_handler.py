"""Model side of the server-decoded SAM interactor: embedding cache + SamPredictor-style decoding.

Environment (function.yaml): CVAT_EXT_SAM_MODEL_TYPE (vit_b | vit_l | vit_h; a fine-tuned SAM-1
checkpoint of one of these architectures works the same), CVAT_EXT_WEIGHTS, CVAT_EXT_DEVICE,
CVAT_EXT_SAM_PRECISION, CVAT_EXT_SAM_CACHE_MB, CVAT_FUNCTIONS_REDIS_HOST / _PORT / _PASSWORD.
"""

from __future__ import annotations

from typing import Any

from cvat_ext.functions.sam import SamInteractorFunction, interactor_function_from_env


def build_model(context: Any) -> SamInteractorFunction:
    """Called once per worker by ``init_context``."""
    return interactor_function_from_env()

"""Model side of the SAM drop-in: ViT-H image embedding with a content-hash cache (local + Redis).

Environment (function.yaml): CVAT_EXT_SAM_MODEL_TYPE, CVAT_EXT_WEIGHTS, CVAT_EXT_DEVICE,
CVAT_EXT_SAM_PRECISION, CVAT_EXT_SAM_COMPILE, CVAT_EXT_SAM_CACHE_MB, and the shared cache
CVAT_FUNCTIONS_REDIS_HOST / _PORT / _PASSWORD (passed by deploy.sh), CVAT_EXT_SAM_REDIS_TTL_S.
"""

from __future__ import annotations

from typing import Any

from cvat_ext.functions.sam import SamBlobFunction, blob_function_from_env


def build_model(context: Any) -> SamBlobFunction:
    """Called once per worker by ``init_context``."""
    return blob_function_from_env()

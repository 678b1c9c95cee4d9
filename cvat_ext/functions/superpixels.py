"""The superpixel click-to-fill interactor on top of the shared runtime (``cvat_ext.functions``).

CVAT's interactor call ``{"image", "pos_points", "neg_points", "obj_bbox"}`` is answered as
interactor version 2 (contracts §2.6)::

    {"shapes": [{"type": "mask", "points": <CVAT RLE counts + [l, t, r, b]>, "attributes": []},
                {"type": "polygon", "points": [x0, y0, x1, y1, ...]}]}

The UI renders the mask (and converts it to a polygon or mask itself); the polygon, the outer
contour of the largest filled blob, is for other clients (cvat-sdk scripts, the QA sidecar). An
empty fill (every clicked superpixel removed again) answers ``{"shapes": []}``.

The superpixel map of a frame is computed on the first click and cached in the SAM embedding
cache (:mod:`cvat_ext.functions.embedding_cache`): per worker by the SHA-256 of the frame file,
and in CVAT's Redis as :meth:`SuperpixelMap.to_bytes` under model key ``superpixels-<scale key>``.
Every further click on the frame is a lookup. ``{"prefetch": [...]}`` warms the cache exactly as
for SAM (:mod:`cvat_ext.functions.sam`).

Environment: ``CVAT_EXT_SUPERPIXEL_CACHE_MB`` (per-worker cache, default 256: ~60 1080p frames),
``CVAT_EXT_SUPERPIXEL_MAX_PIXELS`` (largest frame accepted, default 33,177,600 = 8K UHD; a larger
one is a 413), ``CVAT_FUNCTIONS_REDIS_*`` (shared cache).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cvat_ext.errors import ConfigError, FunctionInputError
from cvat_ext.functions.embedding_cache import CacheSource, EmbeddingCache, LruCache, RedisStore
from cvat_ext.functions.request import ImageInput, InteractorRequest
from cvat_ext.functions.response import interactor_mask_shape, interactor_response
from cvat_ext.functions.sam import PrefetchRequest
from cvat_ext.models.contours import mask_polygon
from cvat_ext.models.superpixels import SCALES, SuperpixelMap, SuperpixelScale, segment_frame

__all__ = ["SuperpixelFunction", "superpixel_function_from_env"]

ENV_CACHE_MB = "CVAT_EXT_SUPERPIXEL_CACHE_MB"
ENV_MAX_PIXELS = "CVAT_EXT_SUPERPIXEL_MAX_PIXELS"
DEFAULT_MAX_PIXELS = 7680 * 4320

logger = logging.getLogger(__name__)


@dataclass
class SuperpixelFunction:
    """Callable ``(InteractorRequest | PrefetchRequest) -> {"shapes": [...]} | prefetch report``."""

    scale: SuperpixelScale
    cache: EmbeddingCache[SuperpixelMap]
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __call__(self, request: InteractorRequest | PrefetchRequest) -> dict[str, Any]:
        if isinstance(request, PrefetchRequest):
            return {
                "prefetch": [
                    {"sha256": im.sha256(), "source": self.superpixels(im)[1].value} for im in request.prefetch
                ]
            }
        if request.text_prompts:
            raise FunctionInputError("text_prompts: superpixels take no text prompts", field="text_prompts")
        box = request.box_xyxy
        if request.pos_xy.shape[0] == 0 and box is None:
            raise FunctionInputError(
                "pos_points: need at least one positive point or a box (obj_bbox)", field="pos_points"
            )
        spx, _ = self.superpixels(request.image)
        crop = spx.fill(request.pos_xy, request.neg_xy, box, edge_lab=self.scale.edge_lab, seed_lab=self.scale.seed_lab)
        if crop is None:
            return interactor_response([])
        shapes: list[dict[str, Any] | None] = [interactor_mask_shape(crop.bitmap, left=crop.left, top=crop.top)]
        polygon_xy = mask_polygon(crop)
        if polygon_xy is not None:
            shapes.append({"type": "polygon", "points": polygon_xy.reshape(-1).tolist()})
        return interactor_response(shapes)

    def superpixels(self, image: ImageInput) -> tuple[SuperpixelMap, CacheSource]:
        """The superpixel map of ``image`` and where it came from (local, shared, computed)."""
        if image.width * image.height > self.max_pixels:
            raise FunctionInputError(
                f"image: {image.width}x{image.height} frame is above the superpixel limit of {self.max_pixels} "
                f"pixels ({ENV_MAX_PIXELS})",
                field=image.field,
                status=413,
            )

        def compute() -> tuple[SuperpixelMap, bytes]:
            spx = segment_frame(image.rgb(), self.scale)
            # serialising costs ~50 ms of a 1080p first click: only when a shared cache takes it
            return spx, spx.to_bytes() if self.cache.shared is not None else b""

        def from_raw(raw: bytes) -> SuperpixelMap:
            try:
                return SuperpixelMap.from_bytes(raw)
            except ValueError as exc:
                raise _ForeignValue(str(exc)) from exc

        digest = image.sha256()
        try:
            return self.cache.get_or_compute(digest, compute, from_raw)
        except _ForeignValue as exc:
            # a corrupt or foreign shared value: recompute and overwrite it rather than fail every click
            logger.warning("superpixels: shared value for %s unreadable (%s); recomputing", digest, exc)
            spx, raw = compute()
            self.cache.stats.computed += 1
            self.cache.local.put(digest, spx)
            if self.cache.shared is not None:
                self.cache.shared.set(self.cache.shared_key(digest), raw)
            return spx, CacheSource.COMPUTED


class _ForeignValue(Exception):
    """A shared-cache value that is not a serialised :class:`SuperpixelMap`."""


def _env_int(environ: Mapping[str, str], name: str, default: int) -> int:
    try:
        return int(environ.get(name, str(default)) or default)
    except ValueError as exc:
        raise ConfigError(f"superpixels: {name} must be an integer ({exc})") from exc


def superpixel_function_from_env(scale: str, environ: Mapping[str, str] | None = None) -> SuperpixelFunction:
    """The function as a ``model_handler.build_model`` makes it; ``scale`` is a key of :data:`SCALES`."""
    if scale not in SCALES:
        raise ConfigError(f"superpixels: unknown scale {scale!r}, expected one of {sorted(SCALES)}")
    env = os.environ if environ is None else environ
    spx_scale = SCALES[scale]
    local: LruCache[SuperpixelMap] = LruCache(_env_int(env, ENV_CACHE_MB, 256) * 2**20, lambda m: m.nbytes)
    cache = EmbeddingCache(local, model_key=f"superpixels-{spx_scale.key}", shared=RedisStore.from_env(env))
    return SuperpixelFunction(spx_scale, cache, max_pixels=_env_int(env, ENV_MAX_PIXELS, DEFAULT_MAX_PIXELS))

"""The two SAM Nuclio functions on top of the shared runtime (``cvat_ext.functions``).

**Drop-in** ``pth-facebookresearch-sam-vit-h`` (:class:`SamBlobFunction`): answers CVAT's interactor
call with ``{"blob": base64(float32 (1, 256, 64, 64) embedding bytes)}`` — the browser decodes the
prompts, so they are ignored here. The local cache keeps the **finished JSON body** (a str of
~5.6 MB): a hit costs the request's base64 decode + SHA-256 of the file and nothing else.

**Server-decoded interactor** (:class:`SamInteractorFunction`): SAM ViT-B/L/H or a fine-tuned SAM
checkpoint the browser decoder cannot serve. Answers interactor version 2:
``{"shapes": [{"type": "mask", "points": <CVAT RLE counts + [l, t, r, b]>, "attributes":
[{"spec_id": 0, "value": "<predicted IoU>"}]}]}``; the local cache keeps the embedding tensor on
the model's device.

**Prefetch** (both functions): the body ``{"prefetch": ["<b64 frame file>", ...]}`` (1 to
:data:`MAX_PREFETCH` images, the same bytes CVAT would send, i.e. the original-quality frame of
``GET /api/jobs/{id}/data?type=frame&quality=original&number=N``) embeds every frame not cached
yet and answers ``{"prefetch": [{"sha256": "<hex>", "source": "local" | "shared" | "computed"}]}``
in request order. Any other key in a prefetch body is a 400.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from cvat_ext.errors import ConfigError, FunctionInputError
from cvat_ext.functions.embedding_cache import (
    ENV_LOCAL_CACHE_SCOPE,
    CacheSource,
    EmbeddingCache,
    LruCache,
    RedisStore,
    process_lru,
)
from cvat_ext.functions.request import (
    DEFAULT_LIMITS,
    FunctionRequest,
    ImageInput,
    InteractorRequest,
    RequestLimits,
    decode_body,
    parse_request,
)
from cvat_ext.functions.response import RawJson, interactor_mask_shape, interactor_response
from cvat_ext.models.frame_input import check_frame
from cvat_ext.models.sam import FRAME_LIMITS

__all__ = [
    "MAX_PREFETCH",
    "PrefetchRequest",
    "SamBlobFunction",
    "SamInteractorFunction",
    "blob_body",
    "blob_function_from_env",
    "interactor_function_from_env",
    "make_parse",
    "prefetch_bodies",
]

#: images per prefetch call: a ViT-H embedding takes ~0.1-0.5 s on a GPU, several s on a CPU,
#: and the call must finish inside eventTimeout while interactive calls wait for the worker
MAX_PREFETCH = 16
EMBEDDING_NBYTES = 256 * 64 * 64 * 4
#: local (per worker) cache budget in MiB
ENV_CACHE_MB = "CVAT_EXT_SAM_CACHE_MB"


class PrefetchRequest(BaseModel):
    """``{"prefetch": ["<b64 image file>", ...]}``: frames to embed ahead of the first click."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, frozen=True)

    prefetch: list[ImageInput] = Field(min_length=1, max_length=MAX_PREFETCH)

    @field_validator("prefetch", mode="before")
    @classmethod
    def _decode_images(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, list):
            return value  # pydantic reports the type error
        limits = (info.context or {}).get("limits", DEFAULT_LIMITS)
        if len(value) > MAX_PREFETCH:
            return value  # pydantic reports max_length
        images = []
        for i, item in enumerate(value):
            where = f"prefetch.{i}"
            if isinstance(item, ImageInput):
                images.append(item)
            elif isinstance(item, str):
                images.append(ImageInput.from_b64(item, limits=limits, field=where))
            else:
                raise FunctionInputError(f"{where}: expected a base64 string, got {type(item).__name__}", field=where)
        return images


def prefetch_bodies(files: Iterable[bytes], *, batch: int = MAX_PREFETCH) -> Iterator[dict[str, list[str]]]:
    """Prefetch request bodies for frame files (as CVAT stores them), ``batch`` frames per body.

    For a caller such as the QA sidecar: POST each body to the function (one Nuclio invocation
    per body). Keep ``batch`` small on a CPU function so a call fits its ``eventTimeout``.
    """
    if not 1 <= batch <= MAX_PREFETCH:
        raise ConfigError(f"sam prefetch: batch must be 1..{MAX_PREFETCH}, got {batch}")
    chunk: list[str] = []
    for data in files:
        chunk.append(base64.b64encode(data).decode("ascii"))
        if len(chunk) == batch:
            yield {"prefetch": chunk}
            chunk = []
    if chunk:
        yield {"prefetch": chunk}


def make_parse(request_type: type[BaseModel], *, limits: RequestLimits = DEFAULT_LIMITS) -> Callable[[Any], BaseModel]:
    """Body parser for ``make_handler(parse=...)``: a prefetch body or a ``request_type`` body."""

    def parse(body: Any) -> BaseModel:
        data = decode_body(body, limits=limits)
        if "prefetch" in data:
            return parse_request(PrefetchRequest, data, limits=limits)
        return parse_request(request_type, data, limits=limits)

    return parse


def blob_body(raw: bytes) -> str:
    """``{"blob": "<base64 of raw>"}`` built by concatenation (no json.dumps pass over 5.6 MB)."""
    return '{"blob":"' + base64.b64encode(raw).decode("ascii") + '"}'


class Embedder(Protocol):
    """What the functions need from :class:`cvat_ext.models.sam.SamEmbedder`."""

    model_key: str

    def embed(self, rgb: npt.NDArray[np.uint8]) -> Any: ...

    def embed_numpy(self, rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]: ...

    def from_bytes(self, raw: bytes) -> Any: ...


MaskDecoder = Callable[..., tuple[npt.NDArray[np.bool_], float]]


def _prefetch(request: PrefetchRequest, warm: Callable[[ImageInput], CacheSource]) -> dict[str, Any]:
    return {"prefetch": [{"sha256": image.sha256(), "source": warm(image).value} for image in request.prefetch]}


@dataclass
class SamBlobFunction:
    """Callable ``(FunctionRequest | PrefetchRequest) -> RawJson {"blob": ...} | prefetch report``."""

    embedder: Embedder
    cache: EmbeddingCache[str]

    def __call__(self, request: FunctionRequest | PrefetchRequest) -> RawJson | dict[str, Any]:
        if isinstance(request, PrefetchRequest):
            return _prefetch(request, lambda image: self.blob(image)[1])
        return RawJson(self.blob(request.image)[0])

    def blob(self, image: ImageInput) -> tuple[str, CacheSource]:
        """The JSON body for ``image`` and where it came from; a frame SAM cannot take -> 400."""
        check_frame(image.width, image.height, FRAME_LIMITS, field=image.field)

        def compute() -> tuple[str, bytes]:
            raw = self.embedder.embed_numpy(image.rgb()).astype("<f4", copy=False).tobytes()
            return blob_body(raw), raw

        return self.cache.get_or_compute(image.sha256(), compute, blob_body)


def _check_xy(xy: npt.NDArray[np.float64], size_wh: tuple[int, int], field: str) -> None:
    w, h = size_wh
    bad = np.flatnonzero(~((xy[:, 0] >= 0) & (xy[:, 0] <= w) & (xy[:, 1] >= 0) & (xy[:, 1] <= h)))
    if bad.size:
        i = int(bad[0])
        raise FunctionInputError(
            f"{field}.{i}: point ({xy[i, 0]:g}, {xy[i, 1]:g}) is outside the {w}x{h} image", field=f"{field}.{i}"
        )


def _check_prompts(request: InteractorRequest) -> None:
    size_wh = request.image.size_wh
    if request.text_prompts:
        raise FunctionInputError("text_prompts: SAM takes no text prompts", field="text_prompts")
    _check_xy(request.pos_xy, size_wh, "pos_points")
    _check_xy(request.neg_xy, size_wh, "neg_points")
    box = request.box_xyxy
    if box is not None:
        _check_xy(box.reshape(2, 2), size_wh, "obj_bbox")
    elif len(request.pos_points) == 0:
        raise FunctionInputError("pos_points: need at least one positive point or a box (obj_bbox)", field="pos_points")


@dataclass
class SamInteractorFunction:
    """Callable ``(InteractorRequest | PrefetchRequest) -> {"shapes": [...]} | prefetch report``.

    ``threshold`` (CVAT's, optional) is the mask probability cut (default 0.5).
    """

    embedder: Embedder
    decoder: MaskDecoder
    cache: EmbeddingCache[Any]
    default_mask_prob_thr: float = 0.5

    def __call__(self, request: InteractorRequest | PrefetchRequest) -> dict[str, Any]:
        if isinstance(request, PrefetchRequest):
            return _prefetch(request, lambda image: self.embedding(image)[1])
        _check_prompts(request)
        embedding, _ = self.embedding(request.image)
        thr = request.threshold
        if thr is None or not 0.0 < thr < 1.0:
            thr = self.default_mask_prob_thr
        mask, score = self.decoder(
            embedding,
            (request.image.height, request.image.width),
            request.pos_xy,
            request.neg_xy,
            request.box_xyxy,
            mask_prob_thr=float(thr),
        )
        return interactor_response([interactor_mask_shape(mask, confidence=score)])

    def embedding(self, image: ImageInput) -> tuple[Any, CacheSource]:
        """The (1, 256, 64, 64) float32 embedding tensor of ``image`` on the model's device."""
        check_frame(image.width, image.height, FRAME_LIMITS, field=image.field)

        def compute() -> tuple[Any, bytes]:
            tensor = self.embedder.embed(image.rgb())
            return tensor, np.asarray(tensor.cpu().numpy(), dtype="<f4").tobytes()

        return self.cache.get_or_compute(image.sha256(), compute, self.embedder.from_bytes)


def _cache_mb(environ: Mapping[str, str], default_mb: int) -> int:
    try:
        return int(environ.get(ENV_CACHE_MB, str(default_mb)) or default_mb)
    except ValueError as exc:
        raise ConfigError(f"sam: {ENV_CACHE_MB} must be an integer number of MiB ({exc})") from exc


def _embedding_cache(
    env: Mapping[str, str], model_key: str, what: str, default_mb: int, sizeof: Callable[[Any], int]
) -> EmbeddingCache[Any]:
    """The worker's cache: its LRU (shared by sibling workers when the server set a scope) + Redis."""
    max_bytes = _cache_mb(env, default_mb) * 2**20
    scope = env.get(ENV_LOCAL_CACHE_SCOPE, "")
    local = process_lru(f"{scope}:{what}:{model_key}", max_bytes, sizeof) if scope else LruCache(max_bytes, sizeof)
    return EmbeddingCache(local, model_key=model_key, shared=RedisStore.from_env(env), raw_nbytes=EMBEDDING_NBYTES)


def _tensor_nbytes(tensor: Any) -> int:
    return int(tensor.numel() * tensor.element_size())


def blob_function_from_env(environ: Mapping[str, str] | None = None) -> SamBlobFunction:
    """The drop-in as a function's ``build_model`` makes it (ViT-H by default; env in sam.py)."""
    from cvat_ext.models.sam import embedder_from_env

    env = os.environ if environ is None else environ
    embedder, _ = embedder_from_env(env, default_model_type="vit_h")
    return SamBlobFunction(embedder, _embedding_cache(env, embedder.model_key, "blob", 1024, len))


def interactor_function_from_env(environ: Mapping[str, str] | None = None) -> SamInteractorFunction:
    """The server-decoded interactor (``CVAT_EXT_SAM_MODEL_TYPE`` vit_b by default)."""
    from cvat_ext.models.sam import SamMaskDecoder, embedder_from_env

    env = os.environ if environ is None else environ
    embedder, sam = embedder_from_env(env, default_model_type="vit_b")
    cache = _embedding_cache(env, embedder.model_key, "embedding", 512, _tensor_nbytes)
    return SamInteractorFunction(embedder, SamMaskDecoder(sam), cache)

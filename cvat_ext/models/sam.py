"""Segment Anything (SAM 1) model code: build, embed an image fast, decode prompts on the server.

Shapes and formats:

* image: ``rgb`` (H, W, 3) uint8;
* embedding: (1, 256, 64, 64) float32 — what ``SamPredictor.get_image_embedding()`` returns and
  what CVAT's browser decoder (``decoder.onnx``) reads from the function's ``blob``;
* prompts: points (N, 2) XY pixels of the original image, box (4,) ``xyxy`` pixels.

The embedding path differs from ``SamPredictor.set_image`` only where it is faster:

1. resize on the model's device (``F.interpolate`` bilinear + antialias, rounded to integer levels
   like the PIL resize of ``ResizeLongestSide``) instead of PIL on the CPU;
2. the image encoder in half precision on a GPU (fp16 by default, bf16 on request); the output is
   cast back to float32 so the blob and the decoder stay float32;
3. attention through ``F.scaled_dot_product_attention`` with the decomposed relative-position
   bias as the additive mask (same arithmetic as the stock ``Attention.forward``);
4. optionally ``torch.compile`` of the image encoder.

torch and segment_anything are imported only inside the functions that need them.
"""

from __future__ import annotations

import importlib
import os
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from cvat_ext.errors import ConfigError
from cvat_ext.models.frame_input import FrameLimits, shrink_rgb
from cvat_ext.models.weights import load_checkpoint

__all__ = [
    "CHECKPOINTS",
    "EMBEDDING_SHAPE",
    "SamCheckpoint",
    "SamEmbedder",
    "SamMaskDecoder",
    "build_sam",
    "embedder_from_env",
    "preprocess_shape",
    "stock_embedding",
    "use_sdpa_attention",
]

ModelType = Literal["vit_h", "vit_l", "vit_b", "tiny"]
Precision = Literal["fp32", "fp16", "bf16"]

#: (1, 256, 64, 64) float32 for every SAM-1 variant (image 1024, patch 16, 256 prompt channels)
EMBEDDING_SHAPE = (1, 256, 64, 64)
EMBEDDING_NBYTES = int(np.prod(EMBEDDING_SHAPE)) * 4
IMAGE_SIZE = 1024
#: the long side is scaled to IMAGE_SIZE: beyond IMAGE_SIZE:1 the short side rounds to 0 pixels and
#: the resize fails. An interactor has no empty answer, so such a frame is a 400 naming the limit.
FRAME_LIMITS = FrameLimits("SAM", max_aspect=IMAGE_SIZE, outside="reject")
#: frames with a longer side are shrunk on the CPU before the device resize (see SamEmbedder.preprocess)
SHRINK_ABOVE = 2 * IMAGE_SIZE

#: environment read by :func:`embedder_from_env` (set in function.yaml)
ENV_MODEL_TYPE = "CVAT_EXT_SAM_MODEL_TYPE"
ENV_WEIGHTS = "CVAT_EXT_WEIGHTS"
ENV_DEVICE = "CVAT_EXT_DEVICE"
ENV_PRECISION = "CVAT_EXT_SAM_PRECISION"
ENV_COMPILE = "CVAT_EXT_SAM_COMPILE"
#: "1": run without a checkpoint (random weights; benchmarks and tests only)
ENV_RANDOM_WEIGHTS = "CVAT_EXT_SAM_RANDOM_WEIGHTS"


@dataclass(frozen=True, slots=True)
class SamCheckpoint:
    """An official checkpoint: ``url``, file name, full ``sha256`` (the 6 hex digits in the file
    name are the start of its **md5**, not of its sha256)."""

    model_type: str
    url: str
    filename: str
    sha256: str
    md5_prefix: str


CHECKPOINTS: Mapping[str, SamCheckpoint] = {
    "vit_h": SamCheckpoint(
        "vit_h",
        "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
        "sam_vit_h_4b8939.pth",
        "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
        "4b8939",
    ),
    "vit_l": SamCheckpoint(
        "vit_l",
        "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
        "sam_vit_l_0b3195.pth",
        "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
        "0b3195",
    ),
    "vit_b": SamCheckpoint(
        "vit_b",
        "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
        "sam_vit_b_01ec64.pth",
        "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
        "01ec64",
    ),
}


def preprocess_shape(height: int, width: int, long_side: int = IMAGE_SIZE) -> tuple[int, int]:
    """(h, w) after scaling the long side to ``long_side`` (``ResizeLongestSide`` rounding)."""
    scale = long_side / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def _tiny_sam(seed: int) -> Any:
    """A real ``Sam`` with a 2-block, 32-wide image encoder: same I/O shapes, tiny compute."""
    from functools import partial

    torch = importlib.import_module("torch")
    sam_mod = importlib.import_module("segment_anything.modeling")

    torch.manual_seed(seed)
    encoder = sam_mod.ImageEncoderViT(
        img_size=IMAGE_SIZE,
        patch_size=16,
        embed_dim=32,
        depth=2,
        num_heads=2,
        mlp_ratio=2.0,
        out_chans=256,
        qkv_bias=True,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        use_rel_pos=True,
        window_size=14,
        global_attn_indexes=(1,),
    )
    sam = sam_mod.Sam(
        image_encoder=encoder,
        prompt_encoder=sam_mod.PromptEncoder(
            embed_dim=256, image_embedding_size=(64, 64), input_image_size=(IMAGE_SIZE, IMAGE_SIZE), mask_in_chans=16
        ),
        mask_decoder=sam_mod.MaskDecoder(
            num_multimask_outputs=3,
            transformer=sam_mod.TwoWayTransformer(depth=1, embedding_dim=256, mlp_dim=64, num_heads=2),
            transformer_dim=256,
            iou_head_depth=2,
            iou_head_hidden_dim=32,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    return sam.eval()


def build_sam(model_type: ModelType | str, checkpoint: str | os.PathLike[str] | None = None, *, seed: int = 0) -> Any:
    """A ``segment_anything.modeling.Sam`` in eval mode on the CPU.

    ``model_type`` vit_h | vit_l | vit_b (official architectures) or ``tiny`` (tests); without a
    ``checkpoint`` the weights are random (seeded): same FLOPs, meaningless masks.
    """
    torch = importlib.import_module("torch")
    if model_type == "tiny":
        sam = _tiny_sam(seed)
    else:
        registry = importlib.import_module("segment_anything").sam_model_registry
        if model_type not in CHECKPOINTS:
            raise ConfigError(f"sam: unknown model type {model_type!r}, expected one of vit_h, vit_l, vit_b, tiny")
        torch.manual_seed(seed)
        sam = registry[model_type](checkpoint=None).eval()
    if checkpoint is not None:
        load_checkpoint(sam, checkpoint, what=f"sam {model_type}")
    return sam


def _rel_pos_table(module: Any, axis: str, size: int) -> Any:
    """(size, size, C) relative-position embeddings for one axis.

    The stock ``get_rel_pos`` builds its gather index with ``torch.arange`` on the CPU at every
    call; indexing a GPU tensor with it copies the index to the device and stalls the CPU until the
    GPU has drained, twice per block. The index is built once, on the device, by
    :func:`use_sdpa_attention`; other sizes fall back to the stock function.
    """
    rel_pos = getattr(module, f"rel_pos_{axis}")
    index = getattr(module, f"_rel_index_{axis}", None)
    if index is not None and index.shape[0] == size:
        return rel_pos[index]
    return importlib.import_module("segment_anything.modeling.image_encoder").get_rel_pos(size, size, rel_pos)


def _sdpa_attention_forward(self: Any, x: Any) -> Any:
    """``segment_anything`` ``Attention.forward`` on ``F.scaled_dot_product_attention``.

    The stock code adds the decomposed relative-position terms (computed from the *unscaled* q)
    to ``q * scale @ k^T``; SDPA scales q·k by the same ``head_dim ** -0.5`` and adds the mask
    unscaled, so passing those terms as ``attn_mask`` is the same arithmetic.
    """
    torch = importlib.import_module("torch")
    functional = torch.nn.functional

    b, h, w, _ = x.shape
    qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)  # each (B, nHead, H*W, C)
    bias = None
    if self.use_rel_pos:
        rel_h_pos = _rel_pos_table(self, "h", h)  # (H, H, C)
        rel_w_pos = _rel_pos_table(self, "w", w)  # (W, W, C)
        r_q = q.reshape(b * self.num_heads, h, w, -1)
        rel_h = torch.einsum("bhwc,hkc->bhwk", r_q, rel_h_pos)
        rel_w = torch.einsum("bhwc,wkc->bhwk", r_q, rel_w_pos)
        bias = (rel_h[:, :, :, :, None] + rel_w[:, :, :, None, :]).reshape(b, self.num_heads, h * w, h * w)
        bias = bias.to(q.dtype)
    out = functional.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    out = out.view(b, self.num_heads, h, w, -1).permute(0, 2, 3, 1, 4).reshape(b, h, w, -1)
    return self.proj(out)


def use_sdpa_attention(image_encoder: Any) -> int:
    """Switch every attention block of a SAM ``ImageEncoderViT`` to SDPA; returns how many.

    Also registers the relative-position gather indices as (non-persistent) buffers on the
    module's device, for the input size the embeddings were trained for (2 * size - 1 rows).
    """
    torch = importlib.import_module("torch")
    attention_cls = importlib.import_module("segment_anything.modeling.image_encoder").Attention
    count = 0
    for module in image_encoder.modules():
        if not isinstance(module, attention_cls):
            continue
        if module.use_rel_pos:
            for axis in ("h", "w"):
                rel_pos = getattr(module, f"rel_pos_{axis}")
                size = (rel_pos.shape[0] + 1) // 2
                coords = torch.arange(size, device=rel_pos.device)
                index = coords[:, None] - coords[None, :] + (size - 1)
                module.register_buffer(f"_rel_index_{axis}", index, persistent=False)
        module.forward = types.MethodType(_sdpa_attention_forward, module)
        count += 1
    return count


def _torch_dtype(precision: Precision) -> Any:
    torch = importlib.import_module("torch")
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


@dataclass
class SamEmbedder:
    """Image -> (1, 256, 64, 64) float32 embedding on ``device``.

    ``precision`` of the image encoder (the decoder side always gets float32); ``sdpa`` switches
    attention to ``F.scaled_dot_product_attention``; ``compile`` wraps the encoder in
    ``torch.compile`` (first call slow). ``model_key`` names the weights in cache keys.
    ``encoder_calls`` counts image-encoder runs (tests check that a cache hit runs none).
    """

    sam: Any
    device: str = "cpu"
    precision: Precision = "fp32"
    sdpa: bool = True
    compile: bool = False
    compile_mode: str | None = None
    model_key: str = "sam"
    encoder_calls: int = field(default=0, init=False)
    _encoder: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        torch = importlib.import_module("torch")
        self.sam = self.sam.to(self.device).eval()
        if self.sdpa:
            use_sdpa_attention(self.sam.image_encoder)
        dtype = _torch_dtype(self.precision)
        # in place: the prompt encoder and mask decoder keep float32 weights and get float32 features
        encoder = self.sam.image_encoder.to(dtype)
        if self.compile:
            encoder = torch.compile(encoder, mode=self.compile_mode)
        self._encoder = encoder
        self._dtype = dtype
        mean = torch.as_tensor(self.sam.pixel_mean, device=self.device).reshape(1, 3, 1, 1)
        std = torch.as_tensor(self.sam.pixel_std, device=self.device).reshape(1, 3, 1, 1)
        self._mean, self._std = mean, std

    def preprocess(self, rgb: npt.NDArray[np.uint8]) -> Any:
        """(H, W, 3) uint8 -> (1, 3, 1024, 1024) normalised, zero-padded, on device, encoder dtype."""
        torch = importlib.import_module("torch")
        functional = torch.nn.functional
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"sam: expected an (H, W, 3) uint8 image, got {rgb.shape} {rgb.dtype}")
        h, w = rgb.shape[:2]
        new_h, new_w = preprocess_shape(h, w)
        if max(h, w) > SHRINK_ABOVE:
            # as float32 on the device a frame costs 12 bytes a pixel (768 MB at 64 MP): average it
            # down on the CPU (uint8) to SHRINK_ABOVE first; the antialiased resize below does the rest
            rgb, _ = shrink_rgb(rgb, SHRINK_ABOVE / max(h, w))
        pixels = torch.from_numpy(np.ascontiguousarray(rgb)).to(self.device, non_blocking=True)
        x = pixels.permute(2, 0, 1).unsqueeze(0).float()
        if (new_h, new_w) != (h, w):
            x = functional.interpolate(x, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
            x = x.round_().clamp_(0, 255)  # the stock path resizes uint8 pixels with PIL
        x = (x - self._mean) / self._std
        x = functional.pad(x, (0, IMAGE_SIZE - new_w, 0, IMAGE_SIZE - new_h))
        return x.to(self._dtype)

    def embed(self, rgb: npt.NDArray[np.uint8]) -> Any:
        """(H, W, 3) uint8 -> (1, 256, 64, 64) float32 tensor on ``device``."""
        torch = importlib.import_module("torch")
        with torch.inference_mode():
            x = self.preprocess(rgb)
            self.encoder_calls += 1
            # a copy: a compiled encoder with CUDA graphs reuses its output buffer on the next call
            return self._encoder(x).to(torch.float32, copy=True)

    def embed_numpy(self, rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """The embedding as a C-contiguous (1, 256, 64, 64) float32 host array."""
        out: npt.NDArray[np.float32] = np.ascontiguousarray(self.embed(rgb).cpu().numpy(), dtype=np.float32)
        return out

    def from_bytes(self, raw: bytes) -> Any:
        """A float32 embedding tensor on ``device`` from its raw little-endian bytes."""
        torch = importlib.import_module("torch")
        arr = np.frombuffer(raw, dtype="<f4").reshape(EMBEDDING_SHAPE)
        return torch.from_numpy(arr.copy()).to(self.device)


@dataclass
class SamMaskDecoder:
    """Server-side prompt decoding on a cached embedding (``SamPredictor.predict`` underneath).

    ``__call__(embedding, size_hw, pos_xy (N,2), neg_xy (M,2), box_xyxy (4,) | None)`` returns
    ``(mask (H, W) bool, score)`` where score is SAM's predicted IoU. With a single positive
    click and nothing else SAM is ambiguous: three masks are predicted and the best scoring one
    kept. ``mask_prob_thr`` binarises the mask probability (0.5 = SAM's logit threshold 0).
    """

    sam: Any

    def __post_init__(self) -> None:
        predictor_cls = importlib.import_module("segment_anything").SamPredictor
        self._predictor = predictor_cls(self.sam)

    def __call__(
        self,
        embedding: Any,
        size_hw: tuple[int, int],
        pos_xy: npt.NDArray[np.float64],
        neg_xy: npt.NDArray[np.float64],
        box_xyxy: npt.NDArray[np.float64] | None,
        *,
        mask_prob_thr: float = 0.5,
    ) -> tuple[npt.NDArray[np.bool_], float]:
        torch = importlib.import_module("torch")
        predictor = self._predictor
        # what set_image would have left behind, without running the encoder
        predictor.reset_image()
        predictor.features = embedding
        predictor.original_size = tuple(size_hw)
        predictor.input_size = preprocess_shape(*size_hw)
        predictor.is_image_set = True
        coords = np.concatenate([pos_xy, neg_xy]).astype(np.float32).reshape(-1, 2)
        labels = np.concatenate([np.ones(len(pos_xy)), np.zeros(len(neg_xy))]).astype(np.int64)
        multimask = len(pos_xy) == 1 and len(neg_xy) == 0 and box_xyxy is None
        with torch.inference_mode():
            logits, scores, _ = predictor.predict(
                point_coords=coords if len(coords) else None,
                point_labels=labels if len(coords) else None,
                box=None if box_xyxy is None else np.asarray(box_xyxy, dtype=np.float32),
                multimask_output=multimask,
                return_logits=True,
            )
        best = int(np.argmax(scores))
        logit_thr = float(np.log(mask_prob_thr / (1.0 - mask_prob_thr))) if 0.0 < mask_prob_thr < 1.0 else 0.0
        return np.asarray(logits[best] > logit_thr), float(scores[best])


def stock_embedding(sam: Any, rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """CVAT's stock code path: ``SamPredictor.set_image`` + ``get_image_embedding()`` in float32."""
    predictor = importlib.import_module("segment_anything").SamPredictor(sam)
    predictor.set_image(rgb)
    out: npt.NDArray[np.float32] = predictor.get_image_embedding().cpu().numpy()
    return out


def _compile_mode(environ: Mapping[str, str]) -> tuple[bool, str | None]:
    """``CVAT_EXT_SAM_COMPILE``: empty/0 off, 1 default mode, else a torch.compile mode name."""
    value = environ.get(ENV_COMPILE, "").strip()
    if value.lower() in ("", "0", "false", "no", "off"):
        return False, None
    if value.lower() in ("1", "true", "yes", "on", "default"):
        return True, None
    return True, value


def embedder_from_env(
    environ: Mapping[str, str] | None = None, *, default_model_type: str = "vit_h"
) -> tuple[SamEmbedder, Any]:
    """The ``(SamEmbedder, Sam)`` a function builds from ``CVAT_EXT_*`` (see function.yaml).

    ``CVAT_EXT_SAM_MODEL_TYPE`` vit_h|vit_l|vit_b; ``CVAT_EXT_WEIGHTS`` checkpoint path (required
    unless the type is ``tiny`` or ``CVAT_EXT_SAM_RANDOM_WEIGHTS=1``); ``CVAT_EXT_DEVICE`` (default
    cuda when available);
    ``CVAT_EXT_SAM_PRECISION`` fp16|bf16|fp32 (default fp16 on a GPU, fp32 on CPU);
    ``CVAT_EXT_SAM_COMPILE`` 1 (or a mode such as ``reduce-overhead``) to ``torch.compile`` the
    encoder (needs a C compiler in the image for Triton; the first call compiles for 10-20 s).
    """
    env = os.environ if environ is None else environ
    torch = importlib.import_module("torch")
    model_type = env.get(ENV_MODEL_TYPE, default_model_type) or default_model_type
    weights = env.get(ENV_WEIGHTS) or None
    if weights is None and model_type != "tiny" and env.get(ENV_RANDOM_WEIGHTS) != "1":
        raise ConfigError(f"sam: {ENV_WEIGHTS} must name the {model_type} checkpoint file")
    device = env.get(ENV_DEVICE) or ("cuda" if torch.cuda.is_available() else "cpu")
    precision = env.get(ENV_PRECISION) or ("fp16" if device.startswith("cuda") else "fp32")
    if precision not in ("fp32", "fp16", "bf16"):
        raise ConfigError(f"sam: {ENV_PRECISION}={precision!r}, expected fp16, bf16 or fp32")
    sam = build_sam(model_type, weights)
    key = f"{model_type}-{Path(weights).stem}" if weights else f"{model_type}-random"
    compile_on, compile_mode = _compile_mode(env)
    embedder = SamEmbedder(
        sam,
        device=device,
        precision=precision,  # type: ignore[arg-type]
        compile=compile_on,
        compile_mode=compile_mode,
        model_key=key,
    )
    return embedder, embedder.sam

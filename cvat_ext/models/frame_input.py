"""The one way from an image file to the pixels a model takes: header, decode, geometry limits.

Every model function (the Nuclio handlers through :class:`cvat_ext.functions.request.ImageInput`,
the cvat-sdk ``cvat_ext.functions.sdk`` modules through :func:`rgb_from_pil`) goes through this module, so no model
library ever sees a frame it cannot take. Three steps:

1. :func:`read_header` opens the file with Pillow and reads only its header: format, mode, size and
   frame count. The declared ``width * height`` is checked against the pixel limit **before** any
   pixel is decoded (a 7.8 kB PNG can declare 64 MP).
2. :func:`decode_rgb` decodes the **first frame** (animated GIF/PNG/WebP, multi-page TIFF, ICO
   with several sizes: the one Pillow opens first) to ``(H, W, 3) uint8`` RGB:

   * 8-bit files (modes ``1 L P RGB RGBA LA PA`` in JPEG/PNG/BMP/WebP/TIFF) are decoded by OpenCV
     when it is installed (1.6-3x faster than Pillow) straight into one RGB buffer: the peak is the
     RGB frame itself, 3 bytes a pixel (a 64 MP frame: 192 MB), not three copies of it;
   * everything else by Pillow: alpha is dropped (as CVAT shows it), palettes expanded, CMYK and
     YCbCr converted; 16-bit integer samples (``I;16*``, ``I``) are scaled by 1/257 (65535 -> 255,
     what libpng's strip-16 does); float samples (``F``) map [0, 1] to [0, 255] when they lie in it,
     else their finite min..max range; NaN becomes 0.

   Concurrent decodes share a :class:`DecodeBudget` of pixels, so N clients sending 64 MP frames do
   not decode N of them at once.
3. :func:`check_frame` applies a model's declared :class:`FrameLimits` (minimum width and height,
   maximum aspect ratio): ``"empty"`` (the frame cannot hold anything the model finds: a detector
   answers ``[]``, which is what CVAT expects and does not fail a batch auto-annotation, where a
   4xx would fail the whole RQ job) or a :class:`~cvat_ext.errors.FunctionInputError` (400) whose
   message names the limit (interactors: the annotator sees why).

Every failure is a ``FunctionInputError`` naming ``field`` (``image``, ``prefetch.3``); nothing
here raises a library exception.
"""

from __future__ import annotations

import functools
import importlib
import io
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from cvat_ext.errors import ConfigError, FunctionInputError

if TYPE_CHECKING:
    from PIL import Image as PILImage

__all__ = [
    "DEFAULT_DECODE_BUDGET",
    "DecodeBudget",
    "FrameHeader",
    "FrameLimits",
    "check_frame",
    "decode_rgb",
    "read_header",
    "rgb_from_pil",
    "shrink_rgb",
]

#: default in-flight decoded pixels per process (env ``CVAT_EXT_DECODE_BUDGET_MP``, megapixels):
#: one 64 MP frame at a time, or many small ones
ENV_DECODE_BUDGET_MP = "CVAT_EXT_DECODE_BUDGET_MP"
DEFAULT_DECODE_BUDGET_MP = 64
#: seconds a decode waits for budget before the request gets 503 (never for a frame alone)
DECODE_WAIT_S = 60.0

#: formats and modes OpenCV decodes to the same 8-bit pixels Pillow gives (alpha dropped)
_CV2_FORMATS = frozenset({"JPEG", "PNG", "BMP", "WEBP", "TIFF"})
_CV2_MODES = frozenset({"1", "L", "P", "RGB", "RGBA", "LA", "PA"})
_GREY_MODES = frozenset({"1", "L", "LA"})
#: rows per step of the in-place BGR -> RGB swap (bounds its temporary to a strip)
_SWAP_ROWS = 256
#: pixels per strip of a Pillow conversion
_STRIP_PIXELS = 1 << 20


@dataclass(frozen=True, slots=True)
class FrameHeader:
    """What the file's header says: ``format`` (Pillow name, ``"PNG"``), ``mode`` (``"RGB"``,
    ``"I;16"``...), ``width``/``height`` in pixels, ``n_frames`` (1 for a still image)."""

    format: str
    mode: str
    width: int
    height: int
    n_frames: int = 1

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass(frozen=True, slots=True)
class FrameLimits:
    """The frame geometry a model takes, and what happens to a frame outside it.

    ``min_width``/``min_height`` in pixels; ``max_aspect`` the largest ``long side / short side``
    (None: any); ``outside`` is ``"empty"`` (the function answers its empty result) or ``"reject"``
    (400 naming the limit). ``model`` names the model in messages.
    """

    model: str
    min_width: int = 1
    min_height: int = 1
    max_aspect: float | None = None
    outside: Literal["empty", "reject"] = "empty"

    def __post_init__(self) -> None:
        if self.min_width < 1 or self.min_height < 1:
            raise ConfigError(f"{self.model}: frame limits need min_width, min_height >= 1")
        if self.max_aspect is not None and self.max_aspect < 1:
            raise ConfigError(f"{self.model}: max_aspect must be >= 1, got {self.max_aspect}")

    def violation(self, width: int, height: int) -> str | None:
        """Why a ``width x height`` frame is outside the limits, or None when it is inside."""
        if width < self.min_width or height < self.min_height:
            return f"{width}x{height} is smaller than the {self.min_width}x{self.min_height} minimum of {self.model}"
        if self.max_aspect is not None:
            aspect = max(width, height) / min(width, height)
            if aspect > self.max_aspect:
                limit = f"{self.model} takes at most {self.max_aspect:g}:1"
                return f"{width}x{height} has aspect ratio {aspect:.0f}:1, {limit}"
        return None


def check_frame(width: int, height: int, limits: FrameLimits, *, field: str = "image") -> bool:
    """True when the model may run on the frame; False when it must answer its empty result.

    Raises :class:`FunctionInputError` (400) naming the limit when ``limits.outside == "reject"``.
    """
    problem = limits.violation(width, height)
    if problem is None:
        return True
    if limits.outside == "reject":
        raise FunctionInputError(f"{field}: {problem}", field=field)
    return False


class DecodeBudget:
    """Pixels decoded at once in this process: a decode of ``n`` pixels waits until ``n`` are free.

    A frame larger than the whole budget still decodes, alone (the per-request pixel limit bounds it).
    Waiting longer than ``wait_s`` -> FunctionInputError with status 503 (the server is busy, the
    request was fine: the client may retry).
    """

    def __init__(self, max_pixels: int, *, wait_s: float = DECODE_WAIT_S, clock: Callable[[], float] = time.monotonic):
        if max_pixels < 1:
            raise ConfigError(f"decode budget must be >= 1 pixel, got {max_pixels}")
        self.max_pixels = max_pixels
        self.wait_s = wait_s
        self._clock = clock
        self._in_use = 0
        self._cond = threading.Condition()

    @property
    def in_use(self) -> int:
        return self._in_use

    @contextmanager
    def hold(self, pixels: int, *, field: str = "image") -> Iterator[None]:
        """Hold ``pixels`` (clamped to the budget) for the duration of the ``with`` block."""
        need = min(max(pixels, 0), self.max_pixels)
        deadline = self._clock() + self.wait_s
        with self._cond:
            while self._in_use + need > self.max_pixels:
                left = deadline - self._clock()
                if left <= 0 or not self._cond.wait(timeout=left):
                    if self._in_use + need <= self.max_pixels:
                        break
                    raise FunctionInputError(
                        f"{field}: server busy decoding {self._in_use} pixels (budget {self.max_pixels}), retry",
                        field=field,
                        status=503,
                    )
            self._in_use += need
        try:
            yield
        finally:
            with self._cond:
                self._in_use -= need
                self._cond.notify_all()


def _budget_from_env() -> DecodeBudget:
    raw = os.environ.get(ENV_DECODE_BUDGET_MP, "") or str(DEFAULT_DECODE_BUDGET_MP)
    try:
        megapixels = float(raw)
    except ValueError as exc:
        raise ConfigError(f"{ENV_DECODE_BUDGET_MP} must be a number of megapixels, got {raw!r}") from exc
    return DecodeBudget(max(1, int(megapixels * 1_000_000)))


#: the process-wide budget every decode shares
DEFAULT_DECODE_BUDGET = _budget_from_env()


def _pil() -> Any:
    return importlib.import_module("PIL.Image")


def read_header(data: bytes, *, max_pixels: int, field: str = "image") -> FrameHeader:
    """Format, mode, size and frame count from the file header; no pixel is decoded.

    Not an image, a broken header, zero size or more than ``max_pixels`` -> FunctionInputError.
    """
    image_mod = _pil()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", image_mod.DecompressionBombWarning)
            with image_mod.open(io.BytesIO(data)) as img:
                width, height = (int(v) for v in img.size)
                header = FrameHeader(
                    str(img.format or ""), str(img.mode), width, height, int(getattr(img, "n_frames", 1) or 1)
                )
    except (image_mod.DecompressionBombError, image_mod.DecompressionBombWarning) as exc:
        raise FunctionInputError(f"{field}: image too large to decode safely ({exc})", field=field) from exc
    except (OSError, SyntaxError, ValueError, TypeError, EOFError, IndexError, KeyError, MemoryError) as exc:
        # Pillow's plugins raise any of these on broken or hostile headers
        raise FunctionInputError(f"{field}: not a readable image file ({type(exc).__name__})", field=field) from exc
    if header.width <= 0 or header.height <= 0:
        raise FunctionInputError(f"{field}: image has no pixels ({header.width}x{header.height})", field=field)
    if header.pixels > max_pixels:
        raise FunctionInputError(
            f"{field}: image is {header.width}x{header.height} = {header.pixels} pixels, limit {max_pixels}",
            field=field,
        )
    return header


def decode_rgb(
    data: bytes, header: FrameHeader, *, field: str = "image", budget: DecodeBudget | None = None
) -> npt.NDArray[np.uint8]:
    """The first frame as ``(H, W, 3) uint8`` RGB (see the module docstring for the conversions).

    ``header`` from :func:`read_header` on the same bytes; the decoded size must match it.
    """
    with (budget or DEFAULT_DECODE_BUDGET).hold(header.pixels, field=field):
        rgb = _decode_cv2(data, header) if _cv2_can_decode(data, header) else None
        if rgb is None:
            rgb = _decode_pil(data, field)
    if rgb.shape[:2] != (header.height, header.width):
        raise FunctionInputError(
            f"{field}: decoded {rgb.shape[1]}x{rgb.shape[0]}, header said {header.width}x{header.height}", field=field
        )
    return rgb


def rgb_from_pil(image: PILImage.Image, *, field: str = "image") -> npt.NDArray[np.uint8]:
    """``(H, W, 3) uint8`` RGB of an already opened Pillow image (the cvat-sdk path), same conversions."""
    with suppress(EOFError, AttributeError, ValueError):  # a still image has no frame to seek
        image.seek(0)
    try:
        return _pil_to_rgb(image)
    except (OSError, SyntaxError, ValueError, TypeError, EOFError, MemoryError) as exc:
        raise FunctionInputError(f"{field}: image does not convert to RGB ({exc})", field=field) from exc


def shrink_rgb(rgb: npt.NDArray[np.uint8], scale: float) -> tuple[npt.NDArray[np.uint8], tuple[float, float]]:
    """``rgb`` (H, W, 3) uint8 shrunk by ``scale`` < 1 (area average, each side >= 1 pixel) and the
    ``(sx, sy)`` input pixels per output pixel, to map results back (``x_input = x_out * sx``).

    Done on uint8 before a model sees the frame, so no float copy of a large frame is ever made.
    """
    h, w = rgb.shape[:2]
    out_w, out_h = max(1, round(w * scale)), max(1, round(h * scale))
    cv2 = _cv2_module()
    if cv2 is not None:
        small = cv2.resize(np.ascontiguousarray(rgb), (out_w, out_h), interpolation=cv2.INTER_AREA)
    else:
        small = np.asarray(_pil().fromarray(rgb).resize((out_w, out_h), _pil().Resampling.BOX), dtype=np.uint8)
    return np.asarray(small, dtype=np.uint8), (w / out_w, h / out_h)


def _cv2_can_decode(data: bytes, header: FrameHeader) -> bool:
    if header.format not in _CV2_FORMATS or header.mode not in _CV2_MODES or header.n_frames != 1:
        return False
    if header.format == "JPEG":
        # OpenCV silently grey-fills a truncated JPEG where Pillow raises: only whole JPEGs go to it
        return data.rstrip(b"\0").endswith(b"\xff\xd9")
    return True


@functools.cache
def _cv2_module() -> Any:
    try:
        return importlib.import_module("cv2")
    except ImportError:
        return None


def _decode_cv2(data: bytes, header: FrameHeader) -> npt.NDArray[np.uint8] | None:
    """RGB via OpenCV, or None when OpenCV is missing, refuses the file or reads another size."""
    cv2 = _cv2_module()
    if cv2 is None:
        return None
    grey = header.mode in _GREY_MODES
    # a grey file decoded as colour costs a hidden grey buffer plus the colour one: decode grey, expand once
    flags = (cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR) | cv2.IMREAD_IGNORE_ORIENTATION
    try:
        pixels = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    except cv2.error:
        return None
    if pixels is None or pixels.dtype != np.uint8 or pixels.shape[:2] != (header.height, header.width):
        return None
    if grey and pixels.ndim == 2:
        rgb = np.empty((header.height, header.width, 3), dtype=np.uint8)
        rgb[...] = pixels[..., None]
        return rgb
    bgr = pixels
    if bgr.ndim != 3 or bgr.shape[2] != 3:
        return None
    # swap B and R in place, a strip at a time: a second full-frame buffer would double the peak
    for top in range(0, bgr.shape[0], _SWAP_ROWS):
        strip = bgr[top : top + _SWAP_ROWS]
        strip[...] = strip[..., ::-1].copy()
    return np.asarray(bgr, dtype=np.uint8)


def _decode_pil(data: bytes, field: str) -> npt.NDArray[np.uint8]:
    image_mod = _pil()
    try:
        with image_mod.open(io.BytesIO(data)) as img:
            img.seek(0)  # first frame of an animation or a multi-page file
            # the pixel limit was checked on the header; Pillow's own global one is not the contract
            img.load()
            return _pil_to_rgb(img)
    except (
        OSError,
        SyntaxError,
        ValueError,
        TypeError,
        EOFError,
        IndexError,
        KeyError,
        image_mod.DecompressionBombError,
    ) as exc:
        raise FunctionInputError(f"{field}: image does not decode ({type(exc).__name__}: {exc})", field=field) from exc


def _strips(img: PILImage.Image) -> Iterator[tuple[int, PILImage.Image]]:
    """``(top row, strip image)`` of about ``_STRIP_PIXELS`` each, so conversions never hold a
    second full-frame copy (Pillow stores RGB at 4 bytes a pixel: a 64 MP frame would be 256 MB)."""
    width, height = img.size
    rows = max(1, _STRIP_PIXELS // max(width, 1))
    for top in range(0, height, rows):
        yield top, img.crop((0, top, width, min(top + rows, height)))


def _pil_to_rgb(img: PILImage.Image) -> npt.NDArray[np.uint8]:
    """A loaded Pillow image -> ``(H, W, 3) uint8`` RGB, converted a strip at a time."""
    width, height = img.size
    rgb = np.empty((height, width, 3), dtype=np.uint8)
    if img.mode == "F" or img.mode.startswith("I"):
        to_uint8 = _high_depth_to_uint8(img)
        for top, strip in _strips(img):
            grey = to_uint8(np.asarray(strip))
            rgb[top : top + grey.shape[0]] = grey[..., None]
        return rgb
    for top, strip in _strips(img):
        part = np.asarray(strip if strip.mode == "RGB" else strip.convert("RGB"), dtype=np.uint8)
        rgb[top : top + part.shape[0]] = part
    return rgb


def _high_depth_to_uint8(img: PILImage.Image) -> Callable[[npt.NDArray[Any]], npt.NDArray[np.uint8]]:
    """The mapping of high bit-depth grey samples to uint8 (see the module docstring).

    Integers: 1/257 (65535 -> 255). Floats: [0, 1] -> [0, 255] when every finite sample lies in
    it, else the finite min..max range (found in a first pass over the strips); NaN/inf -> 0.
    """
    if img.mode != "F":
        return lambda samples: np.clip((np.asarray(samples, dtype=np.int64) + 128) // 257, 0, 255).astype(np.uint8)
    lo, hi = np.inf, -np.inf
    for _, strip in _strips(img):
        values = np.asarray(strip, dtype=np.float64)
        finite = values[np.isfinite(values)]
        if finite.size:
            lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
    if not np.isfinite(lo) or (lo >= 0.0 and hi <= 1.0):
        lo, hi = 0.0, 1.0
    gain = 255.0 / (hi - lo) if hi > lo else 0.0

    def scale(samples: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
        values = np.asarray(samples, dtype=np.float64)
        finite = np.isfinite(values)
        scaled = np.where(finite, (np.where(finite, values, lo) - lo) * gain, 0.0)
        return np.asarray(np.clip(np.rint(scaled), 0, 255), dtype=np.uint8)

    return scale

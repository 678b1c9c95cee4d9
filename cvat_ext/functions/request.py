"""Requests CVAT sends to a Nuclio function, parsed and validated at the boundary.

What CVAT 2.73 sends (contracts §2.5; ``None`` values are dropped before sending):

* detector:   ``{"image": <b64 frame file>, "threshold"?: float}`` — ``threshold`` is sent only when
  truthy, so an absent threshold means "the function's default";
* interactor: ``{"image", "pos_points": [[x, y], ...], "neg_points": [[x, y], ...],
  "obj_bbox": [[x1, y1], [x2, y2]] | [] | null, "threshold"?, "text_prompts"?}`` in image pixels.

``image`` is the base64 of the frame file exactly as stored (JPEG, PNG, ...). The models here are
lenient on keys (CVAT may add keys in later versions: unknown keys are ignored) but strict on
types: ``"0.5"`` is not a threshold, ``true`` is not a coordinate. Every problem becomes a
:class:`~cvat_ext.errors.FunctionInputError` whose ``field`` names the offending key (``pos_points.1``).

The image is checked in two steps so a cache-hit path never pays for pixel decoding:
:class:`ImageInput` holds the file bytes and the header size (read and bounded on parse: bad
base64, not an image, decompression bomb are rejected here); :meth:`ImageInput.rgb` decodes the
pixels on first use.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import numpy as np
import numpy.typing as npt
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from cvat_ext.errors import FunctionInputError
from cvat_ext.json_depth import json_depth
from cvat_ext.models.frame_input import decode_rgb, read_header

__all__ = [
    "DEFAULT_LIMITS",
    "DetectorRequest",
    "FunctionRequest",
    "ImageInput",
    "InteractorRequest",
    "RequestLimits",
    "decode_body",
    "parse_request",
]


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """Upper bounds on what one request may carry.

    ``max_body_bytes`` applies to a raw (not yet JSON-decoded) body; ``max_image_b64_chars`` to the
    base64 text of ``image`` (48 Mi chars ≈ 36 MiB file, above CVAT's usual 32 MB
    ``maxRequestBodySize``); ``max_image_pixels`` is the decompression-bomb guard checked on the
    header before any pixel is decoded (64 MP: a 8K x 8K frame passes, a 30000 x 30000 PNG bomb not);
    ``max_points`` bounds each prompt list; ``max_json_depth`` the nesting of a raw JSON body
    (checked without recursion before ``json.loads``, which recurses once per level).
    """

    max_body_bytes: int = 64 * 2**20
    max_image_b64_chars: int = 48 * 2**20
    max_image_pixels: int = 64_000_000
    max_points: int = 1000
    max_json_depth: int = 64


DEFAULT_LIMITS = RequestLimits()


class ImageInput:
    """One request image: the encoded file bytes, its header size, pixels decoded lazily.

    ``data`` the file bytes as CVAT stored them; ``width``/``height`` from the header; ``format``
    the PIL format name (``"JPEG"``, ``"PNG"``). ``decode_s`` is the seconds spent in :meth:`rgb`
    (0 until called) so the runtime can report its own overhead apart from the model's.
    """

    __slots__ = ("_rgb", "data", "decode_s", "field", "format", "header", "height", "max_pixels", "width")

    def __init__(self, data: bytes, *, max_pixels: int = DEFAULT_LIMITS.max_image_pixels, field: str = "image") -> None:
        self.data = data
        self.field = field
        self.max_pixels = max_pixels
        self.decode_s = 0.0
        self._rgb: npt.NDArray[np.uint8] | None = None
        self.header = read_header(data, max_pixels=max_pixels, field=field)
        self.width, self.height, self.format = self.header.width, self.header.height, self.header.format

    @classmethod
    def from_b64(cls, text: str, *, limits: RequestLimits = DEFAULT_LIMITS, field: str = "image") -> ImageInput:
        """Decode base64 (standard alphabet, padding required, whitespace not allowed) and read the header."""
        if len(text) > limits.max_image_b64_chars:
            raise FunctionInputError(
                f"{field}: {len(text)} base64 characters, limit {limits.max_image_b64_chars}", field=field
            )
        if not text:
            raise FunctionInputError(f"{field}: empty image", field=field)
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise FunctionInputError(f"{field}: not valid base64 ({exc})", field=field) from exc
        return cls(data, max_pixels=limits.max_image_pixels, field=field)

    @property
    def size_wh(self) -> tuple[int, int]:
        return self.width, self.height

    def sha256(self) -> str:
        """Hex SHA-256 of the file bytes (a content key: identical frames give identical keys)."""
        return hashlib.sha256(self.data).hexdigest()

    def rgb(self) -> npt.NDArray[np.uint8]:
        """The first frame as (H, W, 3) uint8 RGB, decoded once by :func:`cvat_ext.models.frame_input.decode_rgb`
        (every bit depth and mode converted; a truncated file -> FunctionInputError).

        EXIF orientation is not applied, as in CVAT's own functions: coordinates refer to the stored
        pixel grid.
        """
        if self._rgb is None:
            t0 = time.perf_counter()
            self._rgb = decode_rgb(self.data, self.header, field=self.field)
            self.decode_s += time.perf_counter() - t0
        return self._rgb

    def __repr__(self) -> str:
        return f"ImageInput({self.format} {self.width}x{self.height}, {len(self.data)} bytes)"


XY = Annotated[list[StrictFloat], Field(min_length=2, max_length=2)]
"""One point ``[x, y]`` in image pixels (ints accepted, strings and booleans not)."""


class FunctionRequest(BaseModel):
    """Base of every function request: ``image`` decoded into an :class:`ImageInput`.

    Subclass it for other request kinds (add fields; keep ``extra="ignore"``). Validation needs the
    limits in the validation context: use :func:`parse_request`.
    """

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, arbitrary_types_allowed=True, frozen=True)

    image: ImageInput

    @field_validator("image", mode="before")
    @classmethod
    def _decode_image(cls, value: Any, info: ValidationInfo) -> ImageInput:
        if isinstance(value, ImageInput):
            return value
        if not isinstance(value, str):
            raise FunctionInputError(f"image: expected a base64 string, got {type(value).__name__}", field="image")
        limits = (info.context or {}).get("limits", DEFAULT_LIMITS)
        return ImageInput.from_b64(value, limits=limits, field="image")


class DetectorRequest(FunctionRequest):
    """``{"image", "threshold"?}``: ``threshold`` None means the function's own default."""

    threshold: StrictFloat | None = Field(default=None, ge=0.0, le=1.0)

    def threshold_or(self, default: float) -> float:
        return default if self.threshold is None else float(self.threshold)


class InteractorRequest(FunctionRequest):
    """``{"image", "pos_points", "neg_points", "obj_bbox", "threshold"?}`` in image pixels.

    ``obj_bbox`` is two corners ``[[x1, y1], [x2, y2]]`` in any order, or ``[]``/``null`` for none.
    Use :attr:`pos_xy`, :attr:`neg_xy` (N, 2) float64 and :attr:`box_xyxy` (4,) | None.
    """

    pos_points: list[XY] = Field(default_factory=list)
    neg_points: list[XY] = Field(default_factory=list)
    obj_bbox: list[XY] | None = None
    threshold: StrictFloat | None = Field(default=None, ge=0.0, le=1.0)
    text_prompts: list[StrictStr] | None = None

    @field_validator("pos_points", "neg_points")
    @classmethod
    def _bound_points(cls, value: list[list[float]], info: ValidationInfo) -> list[list[float]]:
        limits = (info.context or {}).get("limits", DEFAULT_LIMITS)
        if len(value) > limits.max_points:
            raise ValueError(f"{len(value)} points, limit {limits.max_points}")
        return value

    @field_validator("obj_bbox")
    @classmethod
    def _box_corners(cls, value: list[list[float]] | None) -> list[list[float]] | None:
        if value is not None and len(value) not in (0, 2):
            raise ValueError(f"expected [] or two corners [[x1, y1], [x2, y2]], got {len(value)} points")
        return value

    @property
    def pos_xy(self) -> npt.NDArray[np.float64]:
        """(N, 2) positive clicks, XY pixels."""
        return np.asarray(self.pos_points, dtype=np.float64).reshape(-1, 2)

    @property
    def neg_xy(self) -> npt.NDArray[np.float64]:
        """(M, 2) negative clicks, XY pixels."""
        return np.asarray(self.neg_points, dtype=np.float64).reshape(-1, 2)

    @property
    def box_xyxy(self) -> npt.NDArray[np.float64] | None:
        """(4,) ``[x_min, y_min, x_max, y_max]`` from the two corners, or None without a box."""
        if not self.obj_bbox:
            return None
        corners = np.asarray(self.obj_bbox, dtype=np.float64)
        return np.concatenate([corners.min(axis=0), corners.max(axis=0)])


RequestT = TypeVar("RequestT", bound=BaseModel)


def decode_body(body: Any, *, limits: RequestLimits = DEFAULT_LIMITS) -> Mapping[str, Any]:
    """The JSON object of an event body: Nuclio gives a dict for JSON requests, bytes/str otherwise."""
    if isinstance(body, Mapping):
        return body
    if isinstance(body, bytes | bytearray | memoryview | str):
        size = len(body)
        if size > limits.max_body_bytes:
            raise FunctionInputError(f"body: {size} bytes, limit {limits.max_body_bytes}", field="body")
        if size == 0:
            raise FunctionInputError("body: empty, expected a JSON object", field="body")
        raw = bytes(body) if isinstance(body, memoryview) else body
        if json_depth(raw, stop_above=limits.max_json_depth) > limits.max_json_depth:
            raise FunctionInputError(f"body: JSON nested deeper than {limits.max_json_depth} levels", field="body")
        try:
            decoded = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise FunctionInputError(f"body: not JSON ({exc})", field="body") from exc
        if not isinstance(decoded, Mapping):
            raise FunctionInputError(f"body: expected a JSON object, got {type(decoded).__name__}", field="body")
        return decoded
    raise FunctionInputError(f"body: expected a JSON object, got {type(body).__name__}", field="body")


def _field_name(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "body"


def parse_request(request_type: type[RequestT], body: Any, *, limits: RequestLimits = DEFAULT_LIMITS) -> RequestT:
    """Validate an event body into ``request_type``; every problem -> FunctionInputError(field=...)."""
    data = decode_body(body, limits=limits)
    try:
        return request_type.model_validate(data, context={"limits": limits})
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = _field_name(tuple(first["loc"]))
        kind = first["type"]
        detail = "is required" if kind == "missing" else first["msg"]
        more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        raise FunctionInputError(f"{field}: {detail}{more}", field=field) from exc

"""Responses CVAT 2.73 accepts from a function, built from our types (contracts §2.6).

Detector: a JSON list of items ``{"label", "type", "points", "confidence"?, "attributes"?, ...}``:

* ``rectangle``: ``points`` ``[x1, y1, x2, y2]`` absolute pixels;
* ``polygon``: ``points`` flat ``[x0, y0, x1, y1, ...]``;
* ``mask``: ``mask`` is the **raw** (not run-length encoded) row-major crop, 0 or 255 per pixel,
  over the **inclusive** box, followed by ``[left, top, right, bottom]``; CVAT run-length encodes it
  itself. ``points`` (a polygon) is added when given, so ``conv_mask_to_poly`` can use it;
* ``skeleton``: ``elements`` = one ``{"label", "type": "points", "points": [x, y], "outside"}``
  per sublabel, all of them (CVAT would add missing ones at the centroid);
* ``tag``: no points.

``confidence`` is a string; CVAT 2.73 ignores it (it stores ``score=1``) but it is cheap and
useful for debugging. Interactor (version 2): ``{"shapes": [{"type": "mask", "points": <CVAT RLE
counts + [l, t, r, b]>, "attributes": [{"spec_id": 0, "value": <confidence>}]}]}`` — spec_id 0 is
read by the UI as the confidence.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, overload

import numpy as np
import numpy.typing as npt

from cvat_ext.annotations.model import MaskRle
from cvat_ext.errors import AnnotationFormatError
from cvat_ext.functions.encode import plan_shapes
from cvat_ext.functions.interface import LabelSpec, Polygonize
from cvat_ext.models.detections import Detections, MaskCrop

__all__ = [
    "RawJson",
    "RawMask",
    "detections_to_items",
    "encode_json",
    "interactor_mask_shape",
    "interactor_response",
    "mask_item",
    "polygon_item",
    "rectangle_item",
    "skeleton_item",
    "tag_item",
]


@dataclass(frozen=True, slots=True)
class RawJson:
    """An already serialised JSON body (e.g. a cached response): the handler sends it as is."""

    data: str | bytes


def _confidence(value: float | None) -> dict[str, str]:
    return {} if value is None else {"confidence": f"{float(value):.4f}"}


def _attributes(attributes: Mapping[str, str] | None) -> dict[str, Any]:
    if not attributes:
        return {}
    return {"attributes": [{"name": str(k), "value": str(v)} for k, v in attributes.items()]}


def _coords(values: npt.ArrayLike) -> list[float]:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.isfinite(arr).all():
        raise AnnotationFormatError(f"response: non-finite coordinates {arr.tolist()}")
    out: list[float] = np.round(arr, 2).tolist()
    return out


class RawMask(Sequence[int]):
    """The ``mask`` value of a detector item: 0/255 per crop pixel, row-major, then ``l, t, r, b``.

    Behaves as the list of ints it stands for (``==``, iteration, indexing, ``len``), but
    :func:`encode_json` writes it straight from the bitmap: about 10x faster than ``json.dumps``
    of a list, which matters for many or large masks next to a fast (GPU) model.
    """

    __slots__ = ("bits", "ltrb")
    _TOKENS = np.array([b"0,", b"255,"], dtype="S4")

    def __init__(self, bits: npt.NDArray[np.bool_], ltrb: tuple[int, int, int, int]) -> None:
        self.bits = bits
        self.ltrb = ltrb

    def to_list(self) -> list[int]:
        pixels: list[int] = (self.bits.ravel().astype(np.uint8) * np.uint8(255)).tolist()
        return [*pixels, *self.ltrb]

    def to_json(self) -> str:
        """``[0,255,...,l,t,r,b]`` as JSON text."""
        tokens = self._TOKENS[self.bits.ravel().view(np.uint8)].tobytes().replace(b"\0", b"")
        return "[" + tokens.decode("ascii") + ",".join(map(str, self.ltrb)) + "]"

    def __len__(self) -> int:
        return int(self.bits.size) + 4

    def __iter__(self) -> Iterator[int]:
        return iter(self.to_list())

    @overload
    def __getitem__(self, index: int) -> int: ...
    @overload
    def __getitem__(self, index: slice) -> list[int]: ...
    def __getitem__(self, index: int | slice) -> int | list[int]:
        return self.to_list()[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RawMask):
            return self.ltrb == other.ltrb and np.array_equal(self.bits, other.bits)
        return isinstance(other, list) and self.to_list() == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RawMask({self.bits.shape[1]}x{self.bits.shape[0]} at {self.ltrb})"


def rectangle_item(
    label: str,
    xyxy: npt.ArrayLike,
    *,
    confidence: float | None = None,
    attributes: Mapping[str, str] | None = None,
    rotation: float = 0.0,
) -> dict[str, Any]:
    """A detector rectangle item; ``xyxy`` (4,) absolute pixels."""
    item: dict[str, Any] = {"label": label, "type": "rectangle", "points": _coords(xyxy)}
    if rotation:
        item["rotation"] = float(rotation)
    return item | _confidence(confidence) | _attributes(attributes)


def polygon_item(
    label: str,
    points_xy: npt.ArrayLike,
    *,
    confidence: float | None = None,
    attributes: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A detector polygon item; ``points_xy`` (K, 2), K >= 3."""
    pts = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    if pts.shape[0] < 3:
        raise AnnotationFormatError(f"response: polygon for '{label}' has {pts.shape[0]} points, need >= 3")
    return (
        {"label": label, "type": "polygon", "points": _coords(pts)} | _confidence(confidence) | _attributes(attributes)
    )


def mask_item(
    label: str,
    mask: MaskCrop,
    *,
    confidence: float | None = None,
    attributes: Mapping[str, str] | None = None,
    polygon_xy: npt.ArrayLike | None = None,
) -> dict[str, Any] | None:
    """A detector mask item: raw 0/255 crop over the tight inclusive box + ``[l, t, r, b]``.

    Returns None for an empty mask (CVAT cannot store one). ``polygon_xy`` (K, 2) is sent as
    ``points`` for ``conv_mask_to_poly``.
    """
    tight = mask.tight()
    if tight is None:
        return None
    bits = tight.bitmap if tight.bitmap.dtype == np.bool_ else tight.bitmap.astype(bool)
    item: dict[str, Any] = {"label": label, "type": "mask", "mask": RawMask(np.ascontiguousarray(bits), tight.ltrb)}
    if polygon_xy is not None:
        pts = np.asarray(polygon_xy, dtype=np.float64).reshape(-1, 2)
        if pts.shape[0] >= 3:
            item["points"] = _coords(pts)
    return item | _confidence(confidence) | _attributes(attributes)


def skeleton_item(
    label: str,
    sublabels: Sequence[str],
    keypoints_xy: npt.ArrayLike,
    outside: npt.ArrayLike,
    *,
    confidence: float | None = None,
    attributes: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A detector skeleton item with one element per sublabel, in ``sublabels`` order.

    ``keypoints_xy`` (K, 2) pixels, ``outside`` (K,) bool (invisible keypoints keep their position).
    """
    kp = np.asarray(keypoints_xy, dtype=np.float64).reshape(-1, 2)
    out = np.asarray(outside, dtype=bool).reshape(-1)
    if kp.shape[0] != len(sublabels) or out.shape[0] != len(sublabels):
        raise AnnotationFormatError(
            f"response: skeleton '{label}' has {len(sublabels)} sublabels but {kp.shape[0]} keypoints "
            f"and {out.shape[0]} outside flags"
        )
    xy_rows = _coords(kp)  # one check and one rounding for the whole skeleton (hot with 100 people)
    elements = [
        {"label": name, "type": "points", "points": xy_rows[2 * k : 2 * k + 2], "outside": o}
        for k, (name, o) in enumerate(zip(sublabels, out.tolist(), strict=True))
    ]
    return (
        {"label": label, "type": "skeleton", "elements": elements} | _confidence(confidence) | _attributes(attributes)
    )


def tag_item(label: str, *, confidence: float | None = None) -> dict[str, Any]:
    return {"label": label, "type": "tag"} | _confidence(confidence)


def detections_to_items(
    dets: Detections,
    labels: Mapping[int, LabelSpec],
    *,
    keypoint_thr: float = 0.0,
    polygonize: Polygonize | None = None,
) -> list[dict[str, Any]]:
    """CVAT detector items for ``dets``; which object becomes which shape is :func:`plan_shapes`'s policy.

    ``polygonize`` (optional) adds each mask's polygon as the item's ``points`` so CVAT's
    ``conv_mask_to_poly`` can use it.
    """
    items: list[dict[str, Any]] = []
    for shape in plan_shapes(dets, labels, keypoint_thr=keypoint_thr).shapes:
        name = shape.label.name
        if shape.kind == "skeleton":
            assert shape.keypoints_xy is not None and shape.outside is not None
            sublabels = [s.name for s in shape.label.sublabels]
            items.append(skeleton_item(name, sublabels, shape.keypoints_xy, shape.outside, confidence=shape.score))
        elif shape.kind == "mask":
            assert shape.mask is not None
            polygon = polygonize(shape.mask) if polygonize is not None else None
            item = mask_item(name, shape.mask, confidence=shape.score, polygon_xy=polygon)
            if item is not None:
                items.append(item)
        else:
            items.append(rectangle_item(name, shape.xyxy, confidence=shape.score))
    return items


def interactor_mask_shape(
    bitmap: npt.ArrayLike, *, left: int = 0, top: int = 0, confidence: float | None = None
) -> dict[str, Any] | None:
    """One interactor v2 shape from a (H, W) bool mask whose top-left pixel is ``(left, top)``.

    ``points`` = CVAT RLE counts over the tight inclusive box, then ``[l, t, r, b]``; None if empty.
    """
    crop = MaskCrop(np.asarray(bitmap, dtype=bool), left, top).tight()
    if crop is None:
        return None
    rle = MaskRle.from_bitmap(crop.bitmap, crop.left, crop.top)
    shape: dict[str, Any] = {"type": "mask", "points": [*rle.counts.tolist(), *rle.ltrb]}
    if confidence is not None:
        shape["attributes"] = [{"spec_id": 0, "value": f"{float(confidence):.4f}"}]
    else:
        shape["attributes"] = []
    return shape


def interactor_response(shapes: Sequence[dict[str, Any] | None]) -> dict[str, Any]:
    """``{"shapes": [...]}`` with empty masks dropped."""
    return {"shapes": [s for s in shapes if s is not None]}


_RAW_MARK = "@@cvat-ext-raw-mask-"
_RAW_RE = re.compile(r'"@@cvat-ext-raw-mask-(\d+)@@"')


def encode_json(result: Any) -> str | bytes:
    """The response body: :class:`RawJson` as is, anything else through ``json.dumps``.

    :class:`RawMask` values are written by their own fast encoder: ``json.dumps`` first emits a
    short placeholder for each, then one regex pass over the (small) text swaps the masks in.
    Text, not bytes: Nuclio's Python wrapper base64-encodes a bytes body on its way out.
    """
    if isinstance(result, RawJson):
        return result.data
    masks: list[RawMask] = []

    def placeholder(obj: Any) -> str:
        if isinstance(obj, RawMask):
            masks.append(obj)
            return f"{_RAW_MARK}{len(masks) - 1}@@"
        raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")

    text = json.dumps(result, separators=(",", ":"), allow_nan=False, default=placeholder)
    if not masks:
        return text
    return _RAW_RE.sub(lambda m: masks[int(m.group(1))].to_json(), text)

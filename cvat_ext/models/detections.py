"""What a detection model returns for one image: a columnar, frozen set of N objects.

* ``xyxy`` (N, 4) float64 absolute pixels ``[x_min, y_min, x_max, y_max]``;
* ``score`` (N,) float64 in [0, 1];
* ``class_id`` (N,) int64, the model's class index (the ``id`` of the label in the function spec);
* ``masks`` optional, N :class:`MaskCrop` (a bool crop and its top-left pixel), None per object
  without a mask;
* ``keypoints`` optional (N, K, 3) float64 ``[x, y, score]`` per keypoint.

Torch-free: the model code converts its tensors into this, the serverless runtime and the cvat-sdk
function wrappers convert this into CVAT's formats.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cvat_ext.errors import AnnotationFormatError

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True, eq=False)
class MaskCrop:
    """A binary mask as a (h, w) bool crop whose top-left pixel is ``(left, top)`` in the image."""

    bitmap: BoolArray
    left: int
    top: int

    def __post_init__(self) -> None:
        bits = np.asarray(self.bitmap, dtype=bool)
        if bits.ndim != 2:
            raise AnnotationFormatError(f"mask crop: expected a 2-D bitmap, got shape {bits.shape}")
        object.__setattr__(self, "bitmap", bits)
        object.__setattr__(self, "left", int(self.left))
        object.__setattr__(self, "top", int(self.top))

    @classmethod
    def from_full(cls, bitmap: npt.ArrayLike) -> MaskCrop | None:
        """Crop a full-image (H, W) mask to its foreground; None when it is empty."""
        bits = np.asarray(bitmap, dtype=bool)
        rows = np.flatnonzero(bits.any(axis=1))
        if rows.size == 0:
            return None
        cols = np.flatnonzero(bits.any(axis=0))
        top, bottom, left, right = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
        return cls(bits[top : bottom + 1, left : right + 1], left, top)

    @property
    def ltrb(self) -> tuple[int, int, int, int]:
        """Inclusive box ``(left, top, right, bottom)``."""
        h, w = self.bitmap.shape
        return self.left, self.top, self.left + w - 1, self.top + h - 1

    def tight(self) -> MaskCrop | None:
        """The same mask cropped to its foreground (None if empty)."""
        inner = MaskCrop.from_full(self.bitmap)
        return None if inner is None else MaskCrop(inner.bitmap, self.left + inner.left, self.top + inner.top)


def xyxy_rows(xyxy: npt.ArrayLike, *, what: str) -> FloatArray:
    """``xyxy`` as an (N, 4) float64 array (an empty input is (0, 4)); any other shape is an
    :class:`AnnotationFormatError` naming ``what``."""
    arr = np.asarray(xyxy, dtype=np.float64)
    if arr.size == 0:
        arr = arr.reshape(0, 4)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise AnnotationFormatError(f"{what}: expected xyxy shape (N, 4), got {arr.shape}")
    return arr


@dataclass(frozen=True, slots=True, eq=False)
class Detections:
    """N detected objects of one image (see the module docstring for the arrays)."""

    xyxy: FloatArray
    score: FloatArray
    class_id: IntArray
    masks: tuple[MaskCrop | None, ...] | None = None
    keypoints: FloatArray | None = None

    def __post_init__(self) -> None:
        xyxy = xyxy_rows(self.xyxy, what="detections")
        n = xyxy.shape[0]
        score = np.asarray(self.score, dtype=np.float64).reshape(-1)
        class_id = np.asarray(self.class_id, dtype=np.int64).reshape(-1)
        if score.shape != (n,) or class_id.shape != (n,):
            raise AnnotationFormatError(
                f"detections: expected score and class_id shape ({n},), got {score.shape} and {class_id.shape}"
            )
        if self.masks is not None and len(self.masks) != n:
            raise AnnotationFormatError(f"detections: expected {n} masks, got {len(self.masks)}")
        keypoints = None
        if self.keypoints is not None:
            keypoints = np.asarray(self.keypoints, dtype=np.float64)
            if keypoints.ndim != 3 or keypoints.shape[0] != n or keypoints.shape[2] != 3:
                raise AnnotationFormatError(f"detections: expected keypoints shape ({n}, K, 3), got {keypoints.shape}")
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "score", score)
        object.__setattr__(self, "class_id", class_id)
        object.__setattr__(self, "masks", None if self.masks is None else tuple(self.masks))
        object.__setattr__(self, "keypoints", keypoints)

    @classmethod
    def empty(cls, *, with_masks: bool = False, num_keypoints: int | None = None) -> Detections:
        return cls(
            np.zeros((0, 4)),
            np.zeros(0),
            np.zeros(0, dtype=np.int64),
            masks=() if with_masks else None,
            keypoints=None if num_keypoints is None else np.zeros((0, num_keypoints, 3)),
        )

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def __getitem__(self, index: npt.ArrayLike) -> Detections:
        """Select objects by a boolean (N,) mask or an integer index array."""
        idx = np.asarray(index)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise AnnotationFormatError(f"detections: boolean index shape {idx.shape}, expected ({len(self)},)")
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64).reshape(-1)
        masks = None if self.masks is None else tuple(self.masks[i] for i in idx)
        keypoints = None if self.keypoints is None else self.keypoints[idx]
        return Detections(self.xyxy[idx], self.score[idx], self.class_id[idx], masks=masks, keypoints=keypoints)

    def above(self, threshold: float) -> Detections:
        """The objects with ``score >= threshold``."""
        return self[self.score >= threshold]

    @staticmethod
    def concat(parts: Sequence[Detections]) -> Detections:
        """Stack several results (all with or all without masks / the same keypoint count)."""
        if not parts:
            return Detections.empty()
        with_masks = {p.masks is not None for p in parts}
        if len(with_masks) != 1:
            raise AnnotationFormatError("detections: cannot concatenate results with and without masks")
        masks = None if parts[0].masks is None else tuple(m for p in parts for m in (p.masks or ()))
        keypoints = None
        if parts[0].keypoints is not None:
            keypoints = np.concatenate([p.keypoints for p in parts if p.keypoints is not None])
        return Detections(
            np.concatenate([p.xyxy for p in parts]),
            np.concatenate([p.score for p in parts]),
            np.concatenate([p.class_id for p in parts]),
            masks=masks,
            keypoints=keypoints,
        )

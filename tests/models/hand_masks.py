"""The hand-made ground-truth masks of tests/data/superpixels/hand_masks.json, rasterised."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

HAND_MASKS = Path(__file__).resolve().parents[1] / "data" / "superpixels" / "hand_masks.json"


@dataclass(frozen=True)
class HandMask:
    """One object: its skimage.data photo (H, W, 3) uint8 RGB and its (H, W) bool mask."""

    image_name: str
    name: str
    rgb: npt.NDArray[np.uint8]
    mask: npt.NDArray[np.bool_]


def load_hand_masks() -> list[HandMask]:
    import cv2
    from skimage import data

    out = []
    for obj in json.loads(HAND_MASKS.read_text())["objects"]:
        rgb = np.ascontiguousarray(getattr(data, obj["image"])()[:, :, :3])
        canvas = np.zeros(rgb.shape[:2], dtype=np.uint8)
        if "polygon" in obj:
            cv2.fillPoly(canvas, [np.asarray(obj["polygon"], dtype=np.int32)], 1)
        else:
            center, axes = obj["ellipse"]["center"], obj["ellipse"]["axes"]
            cv2.ellipse(canvas, tuple(center), tuple(axes), 0, 0, 360, 1, thickness=-1)
        out.append(HandMask(obj["image"], obj["name"], rgb, canvas.astype(bool)))
    return out

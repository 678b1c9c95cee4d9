"""The real photos of tests/data/privacy/faces.json and plates.json with their hand-labelled boxes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

DATA = Path(__file__).resolve().parents[1] / "data" / "privacy"


@dataclass(frozen=True)
class LabelledPhoto:
    name: str
    rgb: npt.NDArray[np.uint8]
    faces_xyxy: npt.NDArray[np.float64]  # (F, 4)
    plates_xyxy: npt.NDArray[np.float64]  # (P, 4)


def load_photo(source: str) -> npt.NDArray[np.uint8]:
    from PIL import Image
    from skimage import data

    kind, _, name = source.partition(":")
    if kind == "file":
        with Image.open(DATA / name) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    rgb = np.asarray(getattr(data, name)())
    if rgb.ndim == 2:
        rgb = np.stack([rgb] * 3, axis=-1)
    return np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)


def labelled_photos() -> list[LabelledPhoto]:
    out = []
    for entry in json.loads((DATA / "faces.json").read_text())["images"]:
        out.append(
            LabelledPhoto(
                entry["source"],
                load_photo(entry["source"]),
                np.asarray(entry["faces"], dtype=np.float64).reshape(-1, 4),
                np.asarray(entry["plates"], dtype=np.float64).reshape(-1, 4),
            )
        )
    return out


@dataclass(frozen=True)
class PlatePhoto:
    name: str
    rgb: npt.NDArray[np.uint8]
    plates_xyxy: npt.NDArray[np.float64]  # (P, 4)
    ignore_xyxy: npt.NDArray[np.float64]  # (I, 4) unreadable fragments: neither hits nor false detections


def plate_photos() -> list[PlatePhoto]:
    """The real photos of tests/data/privacy/plates.json with their hand-labelled plate boxes."""
    return [
        PlatePhoto(
            entry["source"],
            load_photo(entry["source"]),
            np.asarray(entry["plates"], dtype=np.float64).reshape(-1, 4),
            np.asarray(entry["ignore"], dtype=np.float64).reshape(-1, 4),
        )
        for entry in json.loads((DATA / "plates.json").read_text())["images"]
    ]


def box_iou(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """(N, M) IoU of xyxy boxes."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)

"""PII blurring: detector recall/precision on real photos with hand-labelled faces, and throughput.

1. **Detectors** (OpenCV Haar cascades: frontal + profile + plate, the ``cvat-ext privacy`` default):
   recall and precision at IoU >= 0.5 against the hand-labelled boxes of
   ``tests/data/privacy/faces.json`` (3 faces in 6 real photos, 3 of them without people); and on
   scikit-image's ``lfw_subset`` (100 real 25x25 face crops and 100 non-face crops from Labeled
   Faces in the Wild, upscaled 4x and tiled with gaps into mosaics): recall on the faces, false
   detections on the non-faces. **Plates**: recall and precision (plate detections only) on the
   2 photos of ``tests/data/privacy/plates.json`` (MIT-licensed photos from PyPI source
   distributions, 2 hand-labelled plates), as they are and enlarged 2x.
2. **Throughput**: ``blur_files`` (read, EXIF, detect, merge, blur, clean atomic write) over
   ``--images`` 1920x1080 JPEG frames made from the labelled photos, images/s: one process (wall
   and CPU) and two worker processes (wall), side by side.

    python3 bench/privacy_blur.py [--images 24]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from results_io import BenchResults  # noqa: E402

from cvat_ext.privacy.detectors import FACE, PLATE, CascadeDetector  # noqa: E402
from cvat_ext.privacy.files import list_sources  # noqa: E402
from cvat_ext.privacy.run import BlurParams, blur_files  # noqa: E402
from tests.privacy.photos import box_iou, labelled_photos, plate_photos  # noqa: E402

IOU_THR = 0.5
TILE, GAP, PER_ROW = 100, 60, 10


def _figure(name: str, value: float, unit: str, target: str | None = None, met: bool | None = None) -> dict[str, Any]:
    return {"name": name, "value": round(float(value), 4), "unit": unit, "target": target, "met": met}


def _match(gt: np.ndarray, found: np.ndarray) -> int:
    """True positives: ground-truth boxes matched one-to-one at IoU >= IOU_THR (greedy by IoU)."""
    if len(gt) == 0 or len(found) == 0:
        return 0
    iou = box_iou(gt, found)
    tp = 0
    while iou.size and iou.max() >= IOU_THR:
        i, j = np.unravel_index(int(np.argmax(iou)), iou.shape)
        tp += 1
        iou[i, :] = 0
        iou[:, j] = 0
    return tp


def bench_labelled(detector: CascadeDetector) -> list[dict[str, Any]]:
    tp = n_gt = n_found = 0
    for photo in labelled_photos():
        found = detector(photo.rgb)
        faces = found.xyxy[found.class_id == FACE]
        hit = _match(photo.faces_xyxy, faces)
        print(f"  {photo.name:<28} faces labelled {len(photo.faces_xyxy)}, detected {len(faces)}, matched {hit}")
        tp, n_gt, n_found = tp + hit, n_gt + len(photo.faces_xyxy), n_found + len(found)
    recall, precision = tp / max(n_gt, 1), tp / max(n_found, 1)
    print(f"labelled photos: recall {recall:.2f} ({tp}/{n_gt}), precision {precision:.2f} ({tp}/{n_found})")
    return [
        _figure("face recall, hand-labelled photos (IoU>=0.5)", recall, "ratio"),
        _figure("precision, hand-labelled photos (IoU>=0.5)", precision, "ratio"),
    ]


def bench_plates(detector: CascadeDetector) -> list[dict[str, Any]]:
    import cv2

    figures = []
    for factor in (1, 2):
        tp = n_gt = n_found = 0
        for photo in plate_photos():
            rgb = photo.rgb if factor == 1 else cv2.resize(photo.rgb, None, fx=factor, fy=factor)
            found = detector(np.ascontiguousarray(rgb))
            plates = found.xyxy[found.class_id == PLATE] / factor
            if len(photo.ignore_xyxy) and len(plates):  # a detection on an unreadable fragment counts for nothing
                plates = plates[box_iou(plates, photo.ignore_xyxy).max(axis=1) == 0]
            hit = _match(photo.plates_xyxy, plates)
            tp, n_gt, n_found = tp + hit, n_gt + len(photo.plates_xyxy), n_found + len(plates)
        what = "as shipped" if factor == 1 else f"enlarged {factor}x"
        print(f"plate photos ({what}): recall {tp}/{n_gt}, plate detections {n_found} ({tp} right)")
        figures += [
            _figure(f"plate recall, hand-labelled photos {what} (IoU>=0.5)", tp / max(n_gt, 1), "ratio"),
            _figure(f"plate detections, hand-labelled photos {what}", n_found, "count"),
        ]
    return figures


def _mosaic(crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tile (N, 25, 25) float crops, upscaled to TILE px, on grey; returns RGB and the tile boxes."""
    import cv2

    rows = -(-len(crops) // PER_ROW)
    size = (GAP + rows * (TILE + GAP), GAP + PER_ROW * (TILE + GAP))
    canvas = np.full(size, 128, dtype=np.uint8)
    boxes = []
    for k, crop in enumerate(crops):
        r, c = divmod(k, PER_ROW)
        y, x = GAP + r * (TILE + GAP), GAP + c * (TILE + GAP)
        canvas[y : y + TILE, x : x + TILE] = cv2.resize((crop * 255).astype(np.uint8), (TILE, TILE))
        boxes.append([x, y, x + TILE, y + TILE])
    return np.stack([canvas] * 3, axis=-1), np.asarray(boxes, dtype=np.float64)


def bench_lfw(detector: CascadeDetector) -> list[dict[str, Any]]:
    from skimage import data

    crops = data.lfw_subset()
    faces_rgb, faces_xyxy = _mosaic(crops[:100])
    found = detector(faces_rgb)
    # a crop counts as found when a face box overlaps its tile by IoU >= 0.3 (the crops are tight
    # around the face, the detector's boxes larger: 0.5 would count geometry, not detection)
    hit = int((box_iou(faces_xyxy, found.xyxy[found.class_id == FACE]).max(axis=1, initial=0) >= 0.3).sum())
    others_rgb, _ = _mosaic(crops[100:])
    false = len(detector(others_rgb))
    print(f"lfw_subset: {hit}/100 face crops found, {false} detections on 100 non-face crops")
    return [
        _figure("face recall, lfw_subset 100 face crops", hit / 100, "ratio"),
        _figure("false detections, lfw_subset 100 non-face crops", false, "count"),
    ]


def bench_throughput(detector: CascadeDetector, n_images: int) -> list[dict[str, Any]]:
    import cv2
    from PIL import Image

    photos = labelled_photos()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for i in range(n_images):
            # the photo at 1080 px high, aspect kept (a stretched face is no face), repeated across
            photo = photos[i % len(photos)].rgb
            height = 1080
            width = round(photo.shape[1] * height / photo.shape[0])
            scaled = cv2.resize(photo, (width, height), interpolation=cv2.INTER_CUBIC)
            rgb = np.tile(scaled, (1, -(-1920 // width), 1))[:, :1920]
            Image.fromarray(np.ascontiguousarray(rgb)).save(src / f"frame_{i:04d}.jpg", quality=90)
        sources = list_sources(src)
        figures = []
        for workers in (1, 2):
            out = Path(tmp) / f"dst{workers}"
            t0, c0 = time.perf_counter(), time.process_time()
            report = blur_files(sources, out, detector, BlurParams(), src_label=str(src), workers=workers)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            assert report.status == "ok", report.error
            line = (
                f"throughput, {workers} process(es): {n_images} 1920x1080 JPEGs in {wall:.1f} s wall "
                f"({n_images / wall:.2f} images/s)"
            )
            if workers == 1:  # the CPU time of worker processes is not this process's
                line += f", {cpu:.1f} s CPU ({n_images / cpu:.2f} images/s per core)"
                figures.append(_figure("blur throughput 1920x1080 JPEG (per CPU core)", n_images / cpu, "images/s"))
            print(line)
            figures.append(
                _figure(f"blur throughput 1920x1080 JPEG, {workers} worker(s) (wall)", n_images / wall, "images/s")
            )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=24)
    args = parser.parse_args()
    detector = CascadeDetector()
    figures = bench_labelled(detector) + bench_plates(detector) + bench_lfw(detector)
    figures += bench_throughput(detector, args.images)
    results = BenchResults(__file__)
    results.add_all(figures)
    results.write()


if __name__ == "__main__":
    main()

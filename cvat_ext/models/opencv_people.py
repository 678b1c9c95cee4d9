"""People and face detector whose weights ship inside opencv-python(-headless) 4.x.

Pipeline for one RGB image:

1. downscale so the longer side is at most ``max_side`` (HOG cost grows with the pixel count);
2. **faces**: the Haar frontal-face cascade (``cv2.data.haarcascades``), scored by its last-stage
   weight (``detectMultiScale3(outputRejectLevels=True)``);
3. **people**: the HOG + linear SVM pedestrian detector (Dalal-Triggs, OpenCV's default people
   SVM), scored by the SVM margin; it needs a whole standing figure. Portraits and half-body shots
   (the usual case in photos) have no such figure, so every face also proposes a body box from
   head-to-body proportions (``BODY_FROM_FACE``), scored a little below its face;
4. per class non-maximum suppression, scale back to the input size.

A stage runs only on a working frame at least as large as its detection window (HOG 64x128, the
cascade's 24x24 or ``face_min_size``): OpenCV's HOG aborts the process or corrupts the heap on a
smaller frame (a 1x1, 64x64 or 200x40 image killed the server), so the check is made here, before
the library is called, and a frame too small for a stage gets no detection from it.

Scores are squashed to [0, 1] with a logistic function of the raw margin, so ``threshold`` 0.5
means "on the positive side of the classifier". Class ids: 0 = person, 1 = face (the ids in the
function's spec).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from cvat_ext.errors import ConfigError
from cvat_ext.models.detections import Detections
from cvat_ext.models.frame_input import FrameLimits

PERSON, FACE = 0, 1
#: the smallest frame any stage can take (the face cascade's 24x24 window); smaller -> no detection
FRAME_LIMITS = FrameLimits("the OpenCV people/face detector", min_width=24, min_height=24, outside="empty")
LABELS: dict[int, str] = {PERSON: "person", FACE: "face"}

#: body box from a face box (x, y, w, h): half-width 1.8 face widths, from 0.5 face heights above
#: the face to 7.5 below it (an adult is ~7.5 heads tall), clipped to the image
BODY_FROM_FACE = {"half_width": 1.8, "above": 0.5, "below": 7.5, "score_factor": 0.9}


def fits_window(gray_shape: tuple[int, ...], window_wh: tuple[int, int]) -> bool:
    """True when an (H, W) frame holds a ``window_wh`` (width, height) detection window."""
    return gray_shape[1] >= window_wh[0] and gray_shape[0] >= window_wh[1]


def _logistic(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float64)


def cascade_boxes(
    classifier: Any, gray: npt.NDArray[np.uint8], *, scale_factor: float, min_neighbors: int, min_size_px: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """A Haar cascade's boxes ``xywh`` (N, 4) on a grey image and their scores (N,): the logistic
    of the last stage's weight, so 0.5 is the cascade's own decision. None on a frame smaller than
    the detection window (the cascade's own, at least ``min_size_px``): OpenCV asserts there."""
    native_w, native_h = (int(v) for v in classifier.getOriginalWindowSize())
    window = (max(native_w, min_size_px), max(native_h, min_size_px))
    if not fits_window(gray.shape, window):
        return np.zeros((0, 4)), np.zeros(0)
    found, _, weights = classifier.detectMultiScale3(
        gray,
        scaleFactor=scale_factor,
        minNeighbors=min_neighbors,
        minSize=window,
        outputRejectLevels=True,
    )
    xywh = np.asarray(found, dtype=np.float64).reshape(-1, 4)
    return xywh, _logistic(np.asarray(weights, dtype=np.float64).reshape(-1))


def nms(xyxy: npt.NDArray[np.float64], score: npt.NDArray[np.float64], iou_thr: float) -> npt.NDArray[np.int64]:
    """Indices kept by greedy non-maximum suppression, highest score first."""
    order = np.argsort(-score, kind="stable")
    keep: list[int] = []
    area = np.prod(np.clip(xyxy[:, 2:] - xyxy[:, :2], 0, None), axis=1)
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        lt = np.maximum(xyxy[i, :2], xyxy[rest, :2])
        rb = np.minimum(xyxy[i, 2:], xyxy[rest, 2:])
        inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
        iou = inter / np.maximum(area[i] + area[rest] - inter, 1e-9)
        order = rest[iou <= iou_thr]
    return np.asarray(keep, dtype=np.int64)


@dataclass
class OpenCvPeopleDetector:
    """Callable: ``detector(rgb (H, W, 3) uint8) -> Detections`` with unthresholded scores."""

    frame_limits = FRAME_LIMITS

    max_side: int = 1024
    hog_scale: float = 1.05
    hog_win_stride: int = 8
    face_scale: float = 1.1
    face_min_neighbors: int = 5
    face_min_size: int = 24
    body_from_face: bool = True
    nms_iou: float = 0.45

    def __post_init__(self) -> None:
        cv2: Any = importlib.import_module("cv2")  # heavy import only where the model runs
        if not hasattr(cv2, "HOGDescriptor"):
            raise ConfigError(
                f"OpenCV {cv2.__version__} has no HOGDescriptor (OpenCV 5 moved it out of the main "
                "module): install opencv-python-headless>=4.8,<5"
            )
        self._cv2 = cv2
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        cascade_path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        self._face = cv2.CascadeClassifier(cascade_path)
        if self._face.empty():
            raise RuntimeError(f"OpenCV face cascade did not load from {cascade_path}")
        hog_w, hog_h = (int(v) for v in self._hog.winSize)
        self._hog_wh = (hog_w, hog_h)

    def __call__(self, rgb: npt.NDArray[np.uint8]) -> Detections:
        cv2 = self._cv2
        h, w = rgb.shape[:2]
        # step 1: bound the work; each side stays >= 1 pixel (a 1x4000 frame made resize assert)
        scale = min(1.0, self.max_side / max(h, w))
        work_w, work_h = max(1, round(w * scale)), max(1, round(h * scale))
        gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
        if (work_w, work_h) != (w, h):
            gray = cv2.resize(gray, (work_w, work_h), interpolation=cv2.INTER_AREA)
        # step 2: faces
        face_xywh, face_score = self._faces(gray)
        # step 3: people (HOG) and bodies proposed by faces
        person_xywh, person_score = self._people(gray)
        if self.body_from_face and face_xywh.size:
            body = self._bodies_from_faces(face_xywh, work_w, work_h)
            person_xywh = np.concatenate([person_xywh, body])
            person_score = np.concatenate([person_score, face_score * BODY_FROM_FACE["score_factor"]])
        # step 4: suppress duplicates per class, back to input pixels (per axis: rounding differs)
        to_input = np.array([w / work_w, h / work_h, w / work_w, h / work_h])
        parts = []
        for class_id, xywh, score in ((PERSON, person_xywh, person_score), (FACE, face_xywh, face_score)):
            xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1) * to_input
            xyxy = np.clip(xyxy, 0, [w - 1, h - 1, w - 1, h - 1])
            keep = nms(xyxy, score, self.nms_iou)
            parts.append(Detections(xyxy[keep], score[keep], np.full(keep.size, class_id, dtype=np.int64)))
        return Detections.concat(parts)

    def _faces(self, gray: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """(N, 4) xywh and (N,) scores of the cascade; none on a frame smaller than its window."""
        return cascade_boxes(self._face, gray, scale_factor=self.face_scale, min_neighbors=self.face_min_neighbors,
                             min_size_px=self.face_min_size)

    def _people(self, gray: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """(N, 4) xywh and (N,) scores of HOG; none on a frame smaller than its 64x128 window."""
        if not fits_window(gray.shape, self._hog_wh):
            return np.zeros((0, 4)), np.zeros(0)
        stride = (self.hog_win_stride, self.hog_win_stride)
        people, hog_w = self._hog.detectMultiScale(gray, winStride=stride, padding=(8, 8), scale=self.hog_scale)
        xywh = np.asarray(people, dtype=np.float64).reshape(-1, 4)
        return xywh, _logistic(np.asarray(hog_w, dtype=np.float64).reshape(-1))

    @staticmethod
    def _bodies_from_faces(face_xywh: npt.NDArray[np.float64], width: int, height: int) -> npt.NDArray[np.float64]:
        x, y, fw, fh = face_xywh.T
        cx = x + fw / 2
        x0 = np.clip(cx - BODY_FROM_FACE["half_width"] * fw, 0, width - 1)
        x1 = np.clip(cx + BODY_FROM_FACE["half_width"] * fw, 0, width - 1)
        y0 = np.clip(y - BODY_FROM_FACE["above"] * fh, 0, height - 1)
        y1 = np.clip(y + (1 + BODY_FROM_FACE["below"]) * fh, 0, height - 1)
        return np.stack([x0, y0, x1 - x0, y1 - y0], axis=1)

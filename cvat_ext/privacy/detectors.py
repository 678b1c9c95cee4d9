"""Detectors of personally identifying regions (faces, licence plates) for blurring and scanning.

A detector is a callable ``detector(rgb (H, W, 3) uint8) -> Detections`` (the project's columnar
table: ``xyxy`` (N, 4) absolute pixels, ``score`` (N,) in [0, 1], ``class_id`` (N,) one of
:data:`FACE`, :data:`PLATE`) with a ``name`` for the report. Two kinds ship:

* :class:`CascadeDetector`: OpenCV's Haar cascades that ship inside ``opencv-python(-headless)``
  (``cv2.data.haarcascades``): frontal face, profile face (run on the image and on its mirror, the
  cascade knows one side only) and the Russian licence-plate cascade. No download, CPU only.
  Tuned for recall (privacy errs on the blurred side): ``min_neighbors`` 3.
* :class:`HttpDetector`: any deployed cvat-ext (or CVAT) detector function, called over HTTP with
  the body CVAT sends (``{"image": <b64 file>, "threshold"}``); its rectangles whose label is in
  ``labels`` become faces or plates (e.g. ``opencv-people-face``'s ``face``), and its skeletons
  with such a label give a face box from their head keypoints (nose, eyes, ears: e.g.
  ``pth-torchvision-keypointrcnn``'s ``person`` with ``--detector-labels person=face``).

:func:`union_detector` runs several and concatenates their regions.
"""

from __future__ import annotations

import base64
import importlib
import io
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from cvat_ext.errors import ConfigError, CvatExtError
from cvat_ext.models.detections import Detections
from cvat_ext.models.opencv_people import cascade_boxes, nms

__all__ = [
    "FACE",
    "KINDS",
    "PLATE",
    "CascadeDetector",
    "HttpDetector",
    "PiiDetector",
    "union_detector",
]

FACE, PLATE = 0, 1
#: class id -> region kind, as written in reports
KINDS: dict[int, str] = {FACE: "face", PLATE: "plate"}

_CASCADES = {
    "frontal": ("haarcascade_frontalface_default.xml", FACE),
    "profile": ("haarcascade_profileface.xml", FACE),
    "plate": ("haarcascade_russian_plate_number.xml", PLATE),
}


class PiiDetector(Protocol):
    """``detector(rgb) -> Detections`` of faces and plates; ``name`` for reports."""

    name: str

    def __call__(self, rgb: npt.NDArray[np.uint8]) -> Detections: ...


@dataclass
class CascadeDetector:
    """OpenCV Haar cascades (see the module header). ``cascades`` picks among frontal, profile, plate.

    ``max_side``: the image is downscaled so its longer side is at most this many pixels (the
    cascades' cost grows with the pixel count; faces below ``min_size_px`` at that scale are not
    found); ``cascade_max_side`` lowers it for single cascades: the profile cascade (run twice, on
    the image and its mirror) was 2/3 of the detection time at 1280 px, and at 800 px it finds the
    same faces in the bench's photos (``bench/privacy_blur.py``), so by default it runs there: a
    profile face needs about 50 px on a 1920x1080 frame (a frontal one 30 px). The grey image is
    made once and shrunk from the largest scale. Scores are the logistic of the last stage's
    weight: 0.5 is the cascade's own decision.
    """

    cascades: Sequence[str] = ("frontal", "profile", "plate")
    max_side: int = 1280
    cascade_max_side: Mapping[str, int] = field(default_factory=lambda: {"profile": 800})
    scale_factor: float = 1.2
    min_neighbors: int = 3
    min_size_px: int = 20
    nms_iou: float = 0.3
    name: str = field(init=False)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.cascades) - set(_CASCADES))
        if unknown or not self.cascades:
            raise ConfigError(f"privacy detector: unknown cascades {unknown}, expected some of {sorted(_CASCADES)}")
        cv2: Any = importlib.import_module("cv2")
        self._cv2 = cv2
        self._classifiers = []
        for key in self.cascades:
            file_name, class_id = _CASCADES[key]
            path = cv2.data.haarcascades + file_name
            classifier = cv2.CascadeClassifier(path)
            if classifier.empty():
                raise ConfigError(f"privacy detector: OpenCV cascade {path} did not load")
            self._classifiers.append((key, classifier, class_id))
        self.name = "opencv-haar:" + "+".join(self.cascades)

    def __getstate__(self) -> dict[str, Any]:
        # OpenCV classifiers do not pickle: a worker process loads its own (blur --workers)
        return {k: v for k, v in self.__dict__.items() if k not in ("_cv2", "_classifiers")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__post_init__()

    def _run(
        self, classifier: Any, gray: npt.NDArray[np.uint8]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        return cascade_boxes(
            classifier,
            gray,
            scale_factor=self.scale_factor,
            min_neighbors=self.min_neighbors,
            min_size_px=self.min_size_px,
        )

    def _grey_at(self, grey: npt.NDArray[np.uint8], max_side: int) -> tuple[npt.NDArray[np.uint8], float]:
        """``grey`` shrunk to ``max_side`` on its longer side (itself when smaller) and the factor."""
        h, w = grey.shape[:2]
        scale = min(1.0, max_side / max(h, w))
        if scale >= 1.0:
            return grey, 1.0
        size = (round(w * scale), round(h * scale))
        return np.asarray(self._cv2.resize(grey, size, interpolation=self._cv2.INTER_AREA), dtype=np.uint8), scale

    def __call__(self, rgb: npt.NDArray[np.uint8]) -> Detections:
        cv2 = self._cv2
        h, w = rgb.shape[:2]
        grey, top_scale = self._grey_at(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY), self.max_side)
        # equalised contrast finds faces in dim or flat photos the raw image hides
        grey = cv2.equalizeHist(grey)
        parts = []
        for key, classifier, cid in self._classifiers:
            gray, shrink = self._grey_at(grey, min(self.max_side, self.cascade_max_side.get(key, self.max_side)))
            scale = top_scale * shrink
            gw = gray.shape[1]
            xywh, score = self._run(classifier, gray)
            if key == "profile":  # the cascade knows left profiles: run it on the mirror too
                mirrored, mscore = self._run(classifier, np.ascontiguousarray(gray[:, ::-1]))
                mirrored[:, 0] = gw - mirrored[:, 0] - mirrored[:, 2]
                xywh, score = np.concatenate([xywh, mirrored]), np.concatenate([score, mscore])
            xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1) / scale
            parts.append((xyxy, score, np.full(len(score), cid, dtype=np.int64)))
        xyxy = np.concatenate([p[0] for p in parts]).reshape(-1, 4)
        score = np.concatenate([p[1] for p in parts])
        class_id = np.concatenate([p[2] for p in parts])
        xyxy = np.clip(xyxy, 0, [w, h, w, h])
        keep_all = []
        for kind in np.unique(class_id):
            idx = np.flatnonzero(class_id == kind)
            keep_all.append(idx[nms(xyxy[idx], score[idx], self.nms_iou)])
        keep = np.sort(np.concatenate(keep_all)) if keep_all else np.zeros(0, dtype=np.int64)
        return Detections(xyxy[keep], score[keep], class_id[keep])


def _png_b64(rgb: npt.NDArray[np.uint8]) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


@dataclass
class HttpDetector:
    """A deployed detector function over HTTP (Nuclio's direct port, or ``cvat-ext functions serve``).

    ``url``: where to POST CVAT's detector body; ``labels``: model label -> ``"face"`` | ``"plate"``
    (other labels are ignored); ``threshold`` is sent as CVAT would. ``post`` is injectable
    (tests); by default urllib with ``timeout_s``.
    """

    url: str
    labels: Mapping[str, str]
    threshold: float = 0.3
    timeout_s: float = 60.0
    post: Callable[[str, bytes], bytes] | None = None
    name: str = field(init=False)

    def __post_init__(self) -> None:
        bad = sorted(k for k, v in self.labels.items() if v not in KINDS.values())
        if bad or not self.labels:
            raise ConfigError(f"privacy detector {self.url}: labels must map to face or plate, got {dict(self.labels)}")
        self.name = f"http:{self.url}"

    def _post(self, body: bytes) -> bytes:
        if self.post is not None:
            return self.post(self.url, body)
        request = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:
                return bytes(answer.read())
        except (urllib.error.URLError, OSError) as exc:
            raise CvatExtError(f"privacy detector {self.url}: request failed ({exc})") from exc

    def __call__(self, rgb: npt.NDArray[np.uint8]) -> Detections:
        body = json.dumps({"image": _png_b64(rgb), "threshold": self.threshold}).encode()
        raw = self._post(body)
        try:
            items = json.loads(raw)
        except ValueError as exc:
            raise CvatExtError(f"privacy detector {self.url}: answer is not JSON ({exc})") from exc
        if not isinstance(items, list):
            raise CvatExtError(
                f"privacy detector {self.url}: expected a list of detections, got {type(items).__name__}"
            )
        kind_to_id = {v: k for k, v in KINDS.items()}
        rows, scores, ids = [], [], []
        for i, item in enumerate(items):
            kind = self.labels.get(str(item.get("label"))) if isinstance(item, dict) else None
            if kind is None:
                continue
            if item.get("type") == "skeleton":
                box = _head_box(item)  # a pose model (e.g. pth-torchvision-keypointrcnn): its head keypoints
                if box is None:
                    continue
            elif item.get("type") == "rectangle":
                points = item.get("points")
                if not isinstance(points, list) or len(points) != 4:
                    raise CvatExtError(
                        f"privacy detector {self.url}: item {i}: rectangle needs 4 points, got {points!r}"
                    )
                box = [float(v) for v in points]
            else:
                continue
            rows.append(box)
            scores.append(float(item.get("confidence", 1.0)))
            ids.append(kind_to_id[kind])
        return Detections(
            np.asarray(rows, dtype=np.float64).reshape(-1, 4),
            np.asarray(scores, dtype=np.float64),
            np.asarray(ids, dtype=np.int64),
        )


#: COCO keypoint names of the head
HEAD_KEYPOINTS = frozenset({"nose", "left_eye", "right_eye", "left_ear", "right_ear"})


def _head_box(item: Mapping[str, Any]) -> list[float] | None:
    """A face box from a skeleton's visible head keypoints: their bounding square grown 1.6x (the
    keypoints sit inside the face, the box must cover hair and chin); None with fewer than two."""
    xy = [
        element["points"][:2]
        for element in item.get("elements") or ()
        if isinstance(element, dict) and element.get("label") in HEAD_KEYPOINTS and not element.get("outside")
    ]
    if len(xy) < 2:
        return None
    pts = np.asarray(xy, dtype=np.float64)
    centre = (pts.min(axis=0) + pts.max(axis=0)) / 2
    half = 0.8 * float(np.ptp(pts, axis=0).max())
    return [centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half]


@dataclass
class _Union:
    detectors: Sequence[PiiDetector]
    name: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = " + ".join(d.name for d in self.detectors)

    def __call__(self, rgb: npt.NDArray[np.uint8]) -> Detections:
        return Detections.concat([d(rgb) for d in self.detectors])


def union_detector(detectors: Sequence[PiiDetector]) -> PiiDetector:
    """One detector that runs each of ``detectors`` and keeps every region."""
    if not detectors:
        raise ConfigError("privacy: no detector configured")
    return detectors[0] if len(detectors) == 1 else _Union(detectors)

"""Model predictions with scores for the frames of a pool task, for an active-learning round.

CVAT's own auto-annotation path drops scores (the lambda manager stores every Nuclio detection
with ``score=1``, contracts §2.6), so a round reads them where they are kept:

* :class:`FunctionPredictor` calls a deployed detector function the way CVAT's lambda manager does
  (contracts §2.3, §2.5): ``POST {"image": <base64 of the original frame>, "threshold": t}`` either
  to the function's own HTTP trigger, or to the Nuclio dashboard's invocation URL
  (``http://nuclio:8070/api/function_invocations``) with ``x-nuclio-function-name`` (as the sidecar's
  SAM prefetch does). The answer is the detector list of §2.6 whose ``confidence`` is the
  score; labels are mapped to the project's labels by name (as CVAT's default mapping does).
* :class:`TaskAnnotationsPredictor` reads shapes that carry a ``score`` from the pool task's jobs
  (what ``cvat-cli task auto-annotate`` with cvat-ext's cvat-sdk functions leaves there).

Both return :class:`PoolPredictions`: the columnar detections the uncertainty signal needs, and
per frame the CVAT shapes (LabeledData, project label ids, pool frame numbers) that become the
round's pre-labels. Detector masks become their bounding rectangles as pre-labels (the round's
pre-labels are for "verify and adjust"; a mask pre-label would need the detector's raw crop
turned into CVAT's RLE).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import requests

from cvat_ext.active_learning.signals import Prelabels
from cvat_ext.errors import ConfigError, CvatExtError

log = logging.getLogger(__name__)

#: detector item types kept as pre-labels as they are (a mask becomes its box)
_PRELABEL_TYPES = {"rectangle", "polygon", "polyline", "points", "ellipse"}


@dataclass(frozen=True)
class PoolPredictions:
    """``detections``: columnar (frame_idx, score, label_id); ``shapes``: frame -> CVAT shape dicts."""

    detections: Prelabels
    shapes: Mapping[int, Sequence[dict[str, Any]]] = field(default_factory=dict)
    model_version: str = ""
    dropped_labels: Mapping[str, int] = field(default_factory=dict)  # model label -> count not in project


class FrameSource(Protocol):
    def __call__(self, frame_idx: int) -> bytes: ...


class Predictor(Protocol):
    """Predictions for the given pool frames; raises :class:`PredictorError` before anything is acted on."""

    def predict(self, frame_idx: Sequence[int], frames: FrameSource) -> PoolPredictions: ...


class PredictorError(CvatExtError):
    """The model could not be asked (function down, bad answer): the round stops before acting."""


def _score(value: Any, where: str) -> float:
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise PredictorError(f"{where}: confidence {value!r} is not a number") from None
    if not 0.0 <= score <= 1.0:
        raise PredictorError(f"{where}: confidence {score} is not in [0, 1]")
    return score


def _prelabel(item: Mapping[str, Any], frame: int, label_id: int, score: float, where: str) -> dict[str, Any] | None:
    kind = item.get("type")
    points = item.get("points")
    if kind == "mask":
        box = item.get("mask") or []
        if len(box) < 4:
            return None
        points, kind = [float(v) for v in box[-4:]], "rectangle"
    if kind not in _PRELABEL_TYPES or not isinstance(points, list) or not points:
        return None
    if not all(isinstance(v, int | float) for v in points):
        raise PredictorError(f"{where}: points must be numbers")
    return {"type": kind, "frame": frame, "label_id": label_id, "points": [float(v) for v in points],
            "rotation": float(item.get("rotation", 0.0) or 0.0), "occluded": False, "outside": False, "z_order": 0,
            "group": 0, "source": "auto", "attributes": [], "score": score}


def parse_detector_answer(
    answer: Any, frame: int, label_ids: Mapping[str, int], *, where: str
) -> tuple[list[float], list[int], list[dict[str, Any]], dict[str, int]]:
    """One detector answer (contracts §2.6) as scores, label ids, pre-label shapes and unmapped labels."""
    if not isinstance(answer, list):
        raise PredictorError(f"{where}: expected a JSON list of detections, got {type(answer).__name__}")
    scores: list[float] = []
    labels: list[int] = []
    shapes: list[dict[str, Any]] = []
    dropped: dict[str, int] = {}
    for i, item in enumerate(answer):
        at = f"{where} item {i}"
        if not isinstance(item, dict) or not isinstance(item.get("label"), str):
            raise PredictorError(f"{at}: expected an object with a 'label'")
        if item.get("type") == "tag":
            continue
        label_id = label_ids.get(item["label"])
        if label_id is None:
            dropped[item["label"]] = dropped.get(item["label"], 0) + 1
            continue
        score = _score(item.get("confidence", 1.0), at)
        scores.append(score)
        labels.append(label_id)
        shape = _prelabel(item, frame, label_id, score, at)
        if shape is not None:
            shapes.append(shape)
    return scores, labels, shapes, dropped


def project_label_ids(client: Any, project_id: int, *, renames: str = "") -> dict[str, int]:
    """Model label name -> project label id: CVAT's default mapping by name, plus ``MODEL=PROJECT``
    pairs from ``renames`` (``--label-map``)."""
    by_name = {lb.name: lb.id for lb in client.get_labels(project_id=project_id)}
    out = dict(by_name)
    for pair in filter(None, (p.strip() for p in renames.split(","))):
        model, sep, project = pair.partition("=")
        if not sep or not model or project not in by_name:
            raise ConfigError(f"--label-map {pair!r}: expected MODEL=PROJECT_LABEL with a label of project "
                              f"{project_id} ({', '.join(sorted(by_name))})")
        out[model] = by_name[project]
    return out


class FunctionPredictor:
    """A deployed detector function, called once per frame as CVAT's lambda manager calls it."""

    def __init__(
        self,
        url: str,
        *,
        label_ids: Mapping[str, int],
        function_name: str | None = None,
        threshold: float = 0.05,
        timeout_s: float = 120.0,
        post: Callable[..., requests.Response] | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"function url must start with http:// or https://, got {url!r}")
        self.url = url.rstrip("/")
        self.function_name = function_name
        self.label_ids = dict(label_ids)
        self.threshold = threshold
        self.timeout_s = timeout_s
        self._post = post or requests.post

    @property
    def model_version(self) -> str:
        return f"{self.function_name or 'function'}@{self.url}"

    def _call(self, image: bytes, where: str) -> Any:
        payload = {"image": base64.b64encode(image).decode("ascii"), "threshold": self.threshold}
        headers = {"x-nuclio-function-name": self.function_name, "x-nuclio-path": "/"} if self.function_name else {}
        try:
            resp = self._post(self.url, json=payload, headers=headers, timeout=self.timeout_s)
        except requests.Timeout:
            raise PredictorError(f"{where}: function {self.model_version} timed out after {self.timeout_s:g} s") \
                from None
        except requests.ConnectionError as exc:
            raise PredictorError(f"{where}: cannot connect to function {self.model_version} ({exc})") from None
        if resp.status_code != 200:
            raise PredictorError(f"{where}: function {self.model_version} answered {resp.status_code}: "
                                 f"{resp.text[:200]}")
        try:
            return resp.json()
        except ValueError:
            raise PredictorError(f"{where}: function {self.model_version} answered non-JSON") from None

    def predict(self, frame_idx: Sequence[int], frames: FrameSource) -> PoolPredictions:
        frame_col: list[int] = []
        score_col: list[float] = []
        label_col: list[int] = []
        shapes: dict[int, list[dict[str, Any]]] = {}
        dropped: dict[str, int] = {}
        for frame in frame_idx:
            where = f"frame {frame}"
            scores, labels, frame_shapes, frame_dropped = parse_detector_answer(
                self._call(frames(frame), where), frame, self.label_ids, where=f"{where}: function answer")
            frame_col += [frame] * len(scores)
            score_col += scores
            label_col += labels
            if frame_shapes:
                shapes[frame] = frame_shapes
            for name, n in frame_dropped.items():
                dropped[name] = dropped.get(name, 0) + n
        if dropped:
            log.warning("function %s: labels not in the project were ignored: %s", self.model_version,
                        ", ".join(f"{k} ({v})" for k, v in sorted(dropped.items())))
        return PoolPredictions(Prelabels(np.array(frame_col, np.int64), np.array(score_col), np.array(label_col,
                               np.int64)), shapes, self.model_version, dropped)


class TaskAnnotationsPredictor:
    """Scored shapes already in the pool task's jobs (``annotations``: job LabeledData bodies)."""

    def __init__(self, annotations: Iterable[Mapping[str, Any]], *, model_version: str = "task annotations") -> None:
        self._bodies = list(annotations)
        self.model_version = model_version

    def predict(self, frame_idx: Sequence[int], frames: FrameSource) -> PoolPredictions:
        del frames  # the scores are in the annotations
        wanted = set(int(f) for f in frame_idx)
        frame_col: list[int] = []
        score_col: list[float] = []
        label_col: list[int] = []
        shapes: dict[int, list[dict[str, Any]]] = {}
        for body in self._bodies:
            for i, shape in enumerate(body.get("shapes", [])):
                frame = shape.get("frame")
                if frame not in wanted or "score" not in shape:
                    continue
                score = _score(shape["score"], f"shape {i} on frame {frame}")
                frame_col.append(int(frame))
                score_col.append(score)
                label_col.append(int(shape["label_id"]))
                kept = {k: v for k, v in shape.items() if k not in ("id", "elements")}
                shapes.setdefault(int(frame), []).append(json.loads(json.dumps(kept)) | {"source": "auto"})
        return PoolPredictions(Prelabels(np.array(frame_col, np.int64), np.array(score_col), np.array(label_col,
                               np.int64)), shapes, self.model_version)

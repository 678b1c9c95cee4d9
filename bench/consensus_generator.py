"""Synthetic consensus replicas with a hidden truth, for the consensus benchmark and tests.

A truth of ``objects_per_frame`` objects per frame (a share of them tiny) is drawn once; each
annotator then copies it with its own noise: positional jitter (a fraction of the object size),
missed objects, wrong labels and extra (false positive) objects. Shape kinds: ``rectangle``,
``polygon``, ``mask`` (a rasterised polygon) and ``skeleton`` (5 keypoints, with visibility flips).

``python3 bench/consensus_generator.py`` prints a small sample.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from cvat_ext.annotations.model import (
    FrameInfo,
    JobAnnotations,
    JobMeta,
    Label,
    LabelSet,
    MaskRle,
    Shape,
    ShapeType,
)

Kind = Literal["rectangle", "polygon", "mask", "skeleton"]
CLASS_LABELS = ((1, "car"), (2, "person"), (3, "sign"), (4, "bike"))
SKELETON_ID = 10
KEYPOINTS = ((11, "head"), (12, "l_hand"), (13, "r_hand"), (14, "l_foot"), (15, "r_foot"))
#: keypoint layout in the object's unit box
_KP_LAYOUT = np.array([[0.5, 0.1], [0.15, 0.45], [0.85, 0.45], [0.3, 0.95], [0.7, 0.95]])


@dataclass(frozen=True)
class AnnotatorProfile:
    """Noise of one annotator. ``jitter`` is a std as a fraction of the object size; rates are
    probabilities per truth object (``extra_rate``: expected false positives per truth object)."""

    name: str
    jitter: float = 0.03
    miss_rate: float = 0.02
    wrong_label_rate: float = 0.02
    extra_rate: float = 0.02
    flip_visibility_rate: float = 0.02


PRECISE = AnnotatorProfile("precise", jitter=0.02, miss_rate=0.01, wrong_label_rate=0.01, extra_rate=0.01)
MODERATE = AnnotatorProfile("moderate", jitter=0.05, miss_rate=0.05, wrong_label_rate=0.05, extra_rate=0.05)
SLOPPY = AnnotatorProfile(
    "sloppy", jitter=0.12, miss_rate=0.2, wrong_label_rate=0.15, extra_rate=0.3, flip_visibility_rate=0.2
)
SCENARIO_PMS = (PRECISE, MODERATE, SLOPPY)


@dataclass(frozen=True)
class Scenario:
    kind: Kind = "rectangle"
    frames: int = 100
    objects_per_frame: int = 20
    annotators: tuple[AnnotatorProfile, ...] = SCENARIO_PMS
    image_wh: tuple[int, int] = (1280, 720)
    tiny_share: float = 0.1
    seed: int = 0
    #: share of the image (each side) the truth's object grid covers; below 1 the objects keep their
    #: size and crowd together, overlapping their neighbours (a crowd, a parking lot, a shelf)
    spread: float = 1.0
    #: skeletons: extra jitter per keypoint (std as a fraction of the object size, one value per
    #: keypoint of ``KEYPOINTS``), on top of the annotator's box jitter; None = none
    keypoint_jitter: tuple[float, ...] | None = None


@dataclass(frozen=True)
class Generated:
    truth: JobAnnotations
    replicas: dict[str, JobAnnotations]
    labels: LabelSet
    meta: JobMeta


def make_labels() -> LabelSet:
    """car, person, sign, bike (any shape) and the skeleton ``pose`` with 5 keypoints."""
    labels = [Label(id=i, name=n, type="any") for i, n in CLASS_LABELS]
    subs = tuple(Label(id=i, name=n, type="points", parent_id=SKELETON_ID) for i, n in KEYPOINTS)
    labels.append(Label(id=SKELETON_ID, name="pose", type="skeleton", sublabels=subs))
    return LabelSet(tuple(labels))


def make_meta(frames: int, image_wh: tuple[int, int]) -> JobMeta:
    info = FrameInfo(image_wh[0], image_wh[1], "")
    return JobMeta(start_frame=0, stop_frame=frames - 1, frames=(info,) * frames)


def write_labels_and_meta(folder: Path, frames: int, image_wh: tuple[int, int] = (1280, 720)) -> None:
    """``labels.json`` (``GET /api/labels`` results) and ``meta.json`` (job data meta) of a job."""
    import json

    from cvat_ext.annotations.cvat_json import dump_labels

    (folder / "labels.json").write_text(json.dumps(dump_labels(make_labels())))
    meta = make_meta(frames, image_wh)
    frames_meta = [{"width": f.width, "height": f.height, "name": f.name} for f in meta.frames]
    meta_body = {"start_frame": meta.start_frame, "stop_frame": meta.stop_frame, "frames": frames_meta}
    (folder / "meta.json").write_text(json.dumps(meta_body))


# ---------------------------------------------------------------------------------------------
# truth objects: a box, a label and a polygon outline in unit coordinates


def _truth_frame(rng: np.random.Generator, sc: Scenario) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    w, h = sc.image_wh
    n = sc.objects_per_frame
    tiny = rng.random(n) < sc.tiny_share
    size = np.where(tiny, rng.uniform(8, 16, n), rng.uniform(30, 160, n))
    aspect = rng.uniform(0.6, 1.6, n)
    bw, bh = size * np.sqrt(aspect), size / np.sqrt(aspect)
    # spread objects on a jittered grid so the truth has little overlap
    cols = int(np.ceil(np.sqrt(n * w / h)))
    rows = int(np.ceil(n / cols))
    cell = rng.permutation(cols * rows)[:n]
    bw = np.minimum(bw, 0.9 * w / cols)
    bh = np.minimum(bh, 0.9 * h / rows)
    gw, gh = w * sc.spread, h * sc.spread
    cx = (w - gw) / 2 + (cell % cols + 0.5) * (gw / cols) + rng.uniform(-0.15, 0.15, n) * (gw / cols)
    cy = (h - gh) / 2 + (cell // cols + 0.5) * (gh / rows) + rng.uniform(-0.15, 0.15, n) * (gh / rows)
    xyxy = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
    label = rng.integers(1, len(CLASS_LABELS) + 1, n)
    outlines = []
    for _ in range(n):
        k = int(rng.integers(6, 11))
        ang = np.sort(rng.uniform(0, 2 * np.pi, k))
        rad = rng.uniform(0.7, 1.0, k)
        outlines.append(np.stack([0.5 + 0.5 * rad * np.cos(ang), 0.5 + 0.5 * rad * np.sin(ang)], axis=1))
    return xyxy, label, outlines


def _polygon(xyxy: np.ndarray, outline: np.ndarray) -> np.ndarray:
    return xyxy[:2] + outline * (xyxy[2:] - xyxy[:2])


def _mask(points: np.ndarray) -> MaskRle:
    left, top = np.floor(points.min(axis=0)).astype(int)
    right, bottom = np.ceil(points.max(axis=0)).astype(int)
    canvas = np.zeros((bottom - top + 1, right - left + 1), dtype=np.uint8)
    pts = np.round((points - (left, top) - 0.5) * 16).astype(np.int32)
    cv2.fillPoly(canvas, [pts], 1, shift=4)
    if not canvas.any():
        canvas[canvas.shape[0] // 2, canvas.shape[1] // 2] = 1
    return MaskRle.from_bitmap(canvas.astype(bool), int(left), int(top)).tight()


def _shape(
    kind: Kind,
    frame: int,
    label: int,
    xyxy: np.ndarray,
    outline: np.ndarray,
    visible: np.ndarray,
    kp_offset: np.ndarray | None = None,
) -> Shape:
    if kind == "rectangle":
        return Shape(type=ShapeType.RECTANGLE, frame=frame, label_id=label, points=xyxy)
    if kind == "polygon":
        return Shape(type=ShapeType.POLYGON, frame=frame, label_id=label, points=_polygon(xyxy, outline))
    if kind == "mask":
        return Shape(
            type=ShapeType.MASK,
            frame=frame,
            label_id=label,
            points=np.zeros((0, 2)),
            mask=_mask(_polygon(xyxy, outline)),
        )
    kps = xyxy[:2] + _KP_LAYOUT * (xyxy[2:] - xyxy[:2])
    if kp_offset is not None:
        kps = kps + kp_offset
    elements = tuple(
        Shape(type=ShapeType.POINTS, frame=frame, label_id=kid, points=kps[i : i + 1], outside=not bool(visible[i]))
        for i, (kid, _) in enumerate(KEYPOINTS)
    )
    return Shape(type=ShapeType.SKELETON, frame=frame, label_id=SKELETON_ID, points=np.zeros((0, 2)), elements=elements)


def _clip(xyxy: np.ndarray, image_wh: tuple[int, int]) -> np.ndarray:
    w, h = image_wh
    out = xyxy.copy()
    out[[0, 2]] = np.clip(out[[0, 2]], 0, w)
    out[[1, 3]] = np.clip(out[[1, 3]], 0, h)
    if out[2] - out[0] < 1:
        out[2] = min(out[0] + 1, w)
        out[0] = out[2] - 1
    if out[3] - out[1] < 1:
        out[3] = min(out[1] + 1, h)
        out[1] = out[3] - 1
    return out


def generate(sc: Scenario) -> Generated:
    """Truth and replicas for ``sc`` (deterministic for a seed)."""
    rng = np.random.default_rng(sc.seed)
    n_cls = len(CLASS_LABELS)
    truth: list[Shape] = []
    per_annot: dict[str, list[Shape]] = {p.name: [] for p in sc.annotators}
    for frame in range(sc.frames):
        xyxy, label, outlines = _truth_frame(rng, sc)
        visible = rng.random((len(label), len(KEYPOINTS))) > 0.15
        if sc.kind == "skeleton":
            label = np.full(len(label), SKELETON_ID)
        for i in range(len(label)):
            truth.append(_shape(sc.kind, frame, int(label[i]), xyxy[i], outlines[i], visible[i]))
        for prof in sc.annotators:
            out = per_annot[prof.name]
            for i in range(len(label)):
                if rng.random() < prof.miss_rate:
                    continue
                size = xyxy[i, 2:] - xyxy[i, :2]
                noisy = _clip(xyxy[i] + rng.normal(0, prof.jitter, 4) * np.tile(size, 2), sc.image_wh)
                lab = int(label[i])
                if sc.kind != "skeleton" and rng.random() < prof.wrong_label_rate:
                    lab = int((lab + rng.integers(0, n_cls - 1)) % n_cls + 1)
                outline = np.clip(outlines[i] + rng.normal(0, prof.jitter / 2, outlines[i].shape), 0, 1)
                vis = np.where(rng.random(len(KEYPOINTS)) < prof.flip_visibility_rate, ~visible[i], visible[i])
                offset = None
                if sc.kind == "skeleton" and sc.keypoint_jitter is not None:
                    spread = np.asarray(sc.keypoint_jitter, dtype=np.float64)[:, None] * size[None, :]
                    offset = rng.normal(0, 1, (len(KEYPOINTS), 2)) * spread
                out.append(_shape(sc.kind, frame, lab, noisy, outline, vis, offset))
            n_extra = rng.poisson(prof.extra_rate * len(label))
            if n_extra:
                ex_xyxy, ex_label, ex_outlines = _truth_frame(rng, sc)
                for j in range(min(n_extra, len(ex_label))):
                    lab = SKELETON_ID if sc.kind == "skeleton" else int(ex_label[j])
                    out.append(_shape(sc.kind, frame, lab, ex_xyxy[j], ex_outlines[j], visible[0]))
    return Generated(
        truth=JobAnnotations(shapes=tuple(truth)),
        replicas={name: JobAnnotations(shapes=tuple(shapes)) for name, shapes in per_annot.items()},
        labels=make_labels(),
        meta=make_meta(sc.frames, sc.image_wh),
    )


if __name__ == "__main__":
    for kind in ("rectangle", "polygon", "mask", "skeleton"):
        g = generate(Scenario(kind=kind, frames=2, objects_per_frame=3))
        print(kind, {n: len(a.shapes) for n, a in g.replicas.items()}, "truth", len(g.truth.shapes))

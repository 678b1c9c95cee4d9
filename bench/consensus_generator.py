"""Synthetic consensus replicas with a hidden truth, for the consensus benchmark and tests.

A truth of ``objects_per_frame`` objects per frame (a share of them tiny) is drawn once; each
annotator then copies it with its own noise: positional jitter (a fraction of the object size,
and/or absolute pixels), missed objects, wrong labels and extra (false positive) objects. Shape
kinds: ``rectangle``, ``polygon``, ``mask`` (a rasterised polygon) and ``skeleton`` (5 keypoints,
with visibility flips).

Two families of scenarios share this one generator:

* the default :class:`Scenario`: a fixed object count per frame on a jittered grid, relative jitter
  (the consensus benchmark's and most tests' scenario; its random stream is kept stable);
* the annotator-quality presets of issue 11 (:data:`PRESETS`, :func:`preset_scenario`): object
  sides from 10 to 200 px (log-uniform), 5 to 60 objects per frame (varying per frame), a share of
  truth objects overlapping a neighbour, imbalanced classes, and annotators whose noise is in
  absolute pixels (a 15 px jitter hurts a 20 px sign far more than a 100 px car). A ground-truth
  sample (a frame subset of the truth, as a CVAT GT job) comes from :func:`gt_sample`.

``python3 bench/consensus_generator.py`` prints a small sample.
"""

from __future__ import annotations

import dataclasses
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
from cvat_ext.geometry.boxes import box_iou

Kind = Literal["rectangle", "polygon", "mask", "skeleton"]
SizeDist = Literal["log-uniform", "uniform"]
#: how an annotator's jitter scales with the object: ``absolute`` (pixels, the presets' own) or
#: ``relative`` (the same jitter at a ``RELATIVE_REF_PX`` side, proportional to the size)
NoiseLaw = Literal["absolute", "relative"]
RELATIVE_REF_PX = 100.0
CLASS_LABELS = ((1, "car"), (2, "person"), (3, "sign"), (4, "bike"))
SKELETON_ID = 10
KEYPOINTS = ((11, "head"), (12, "l_hand"), (13, "r_hand"), (14, "l_foot"), (15, "r_foot"))
#: keypoint layout in the object's unit box
_KP_LAYOUT = np.array([[0.5, 0.1], [0.15, 0.45], [0.85, 0.45], [0.3, 0.95], [0.7, 0.95]])


@dataclass(frozen=True)
class AnnotatorProfile:
    """Noise of one annotator. ``jitter`` is a std as a fraction of the object size; rates are
    probabilities per truth object (``extra_rate``: expected false positives per truth object).

    ``jitter_px`` adds a std in absolute pixels: to each box coordinate (rectangles, and the
    extent of polygons and masks), half of it to each outline vertex, and to each keypoint
    coordinate of a skeleton (whose box then takes no absolute jitter). ``extra_size_px``: the
    side range in pixels of this annotator's spurious objects (placed anywhere on the frame);
    None = drawn like truth objects."""

    name: str
    jitter: float = 0.03
    miss_rate: float = 0.02
    wrong_label_rate: float = 0.02
    extra_rate: float = 0.02
    flip_visibility_rate: float = 0.02
    jitter_px: float = 0.0
    extra_size_px: tuple[float, float] | None = None


PRECISE = AnnotatorProfile("precise", jitter=0.02, miss_rate=0.01, wrong_label_rate=0.01, extra_rate=0.01)
MODERATE = AnnotatorProfile("moderate", jitter=0.05, miss_rate=0.05, wrong_label_rate=0.05, extra_rate=0.05)
SLOPPY = AnnotatorProfile(
    "sloppy", jitter=0.12, miss_rate=0.2, wrong_label_rate=0.15, extra_rate=0.3, flip_visibility_rate=0.2
)
SCENARIO_PMS = (PRECISE, MODERATE, SLOPPY)

# issue 11's annotators: noise in absolute pixels
PX_PRECISE = AnnotatorProfile(
    "precise", jitter=0.0, jitter_px=2.0, miss_rate=0.01, wrong_label_rate=0.01, extra_rate=0.01,
    flip_visibility_rate=0.01,
)
PX_MODERATE = AnnotatorProfile(
    "moderate", jitter=0.0, jitter_px=6.0, miss_rate=0.10, wrong_label_rate=0.02, extra_rate=0.03,
    flip_visibility_rate=0.05,
)
PX_SLOPPY = AnnotatorProfile(
    "sloppy", jitter=0.0, jitter_px=15.0, miss_rate=0.20, wrong_label_rate=0.10, extra_rate=0.15,
    flip_visibility_rate=0.15, extra_size_px=(4.0, 12.0),
)
PX_EQUAL = AnnotatorProfile(
    "equal", jitter=0.0, jitter_px=5.0, miss_rate=0.06, wrong_label_rate=0.03, extra_rate=0.03,
    flip_visibility_rate=0.05,
)


def _renamed(profile: AnnotatorProfile, name: str) -> AnnotatorProfile:
    return dataclasses.replace(profile, name=name)


#: issue 11's teams: one precise (2 px), one moderate (6 px, 10 % missed), one sloppy (15 px,
#: 20 % missed, 10 % wrong labels, spurious tiny boxes); three equally good annotators (5 px);
#: five replicas, two of them sloppy
PRESETS: dict[str, tuple[AnnotatorProfile, ...]] = {
    "precise-moderate-sloppy": (PX_PRECISE, PX_MODERATE, PX_SLOPPY),
    "three-equal": tuple(_renamed(PX_EQUAL, f"equal{i}") for i in (1, 2, 3)),
    "five-two-sloppy": (
        PX_PRECISE,
        _renamed(PX_MODERATE, "moderate1"),
        _renamed(PX_MODERATE, "moderate2"),
        _renamed(PX_SLOPPY, "sloppy1"),
        _renamed(PX_SLOPPY, "sloppy2"),
    ),
}
#: class shares of the presets' truth (car, person, sign, bike): imbalanced, as real data is
IMBALANCED_CLASSES = (0.55, 0.25, 0.13, 0.07)


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
    #: truth object sides (sqrt of the box area) drawn in this range (px), boxes placed freely on
    #: the frame; None = the grid above (``tiny_share`` of 8-16 px, the rest 30-160 px)
    size_px: tuple[float, float] | None = None
    #: with ``size_px``: how sides spread over the range: ``log-uniform`` (small objects common, as
    #: in real data) or ``uniform``
    size_dist: SizeDist = "log-uniform"
    #: objects per frame drawn uniformly in this inclusive range for each frame; None =
    #: ``objects_per_frame`` on every frame
    objects_range: tuple[int, int] | None = None
    #: with ``size_px``: share of truth objects placed overlapping an earlier one (IoU in (0, 0.4));
    #: the others overlap nothing
    overlap_share: float = 0.0
    #: class shares of the truth's labels (one per ``CLASS_LABELS``); None = uniform
    class_weights: tuple[float, ...] | None = None


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


def _outlines(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    """``n`` star-shaped outlines of 6-10 vertices in the unit box, (K, 2) each."""
    outlines = []
    for _ in range(n):
        k = int(rng.integers(6, 11))
        ang = np.sort(rng.uniform(0, 2 * np.pi, k))
        rad = rng.uniform(0.7, 1.0, k)
        outlines.append(np.stack([0.5 + 0.5 * rad * np.cos(ang), 0.5 + 0.5 * rad * np.sin(ang)], axis=1))
    return outlines


def _labels(rng: np.random.Generator, n: int, sc: Scenario) -> np.ndarray:
    if sc.class_weights is None:
        return rng.integers(1, len(CLASS_LABELS) + 1, n)
    weights = np.asarray(sc.class_weights, dtype=np.float64)
    return rng.choice(np.arange(1, len(CLASS_LABELS) + 1), size=n, p=weights / weights.sum())


def _sized_boxes(rng: np.random.Generator, sides: np.ndarray, image_wh: tuple[int, int]) -> np.ndarray:
    """(N, 4) xyxy boxes of sides ``sides`` (N,) px (aspect 0.6-1.6), anywhere inside the frame."""
    n = len(sides)
    aspect = rng.uniform(0.6, 1.6, n)
    w, h = image_wh
    bw = np.minimum(sides * np.sqrt(aspect), w - 1.0)
    bh = np.minimum(sides / np.sqrt(aspect), h - 1.0)
    cx = rng.uniform(bw / 2, w - bw / 2)
    cy = rng.uniform(bh / 2, h - bh / 2)
    return np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)


#: placement tries per object before it is left out of a crowded frame
_PLACE_TRIES = 30


def _placed_boxes(rng: np.random.Generator, n: int, sc: Scenario) -> np.ndarray:
    """Up to ``n`` truth boxes (M, 4) xyxy: sides in ``sc.size_px`` (``sc.size_dist``); a share
    ``sc.overlap_share`` overlaps an earlier box (IoU in (0, 0.4)), the rest overlap nothing. An
    object that finds no place in ``_PLACE_TRIES`` tries is left out (crowded frames)."""
    assert sc.size_px is not None
    if sc.size_dist == "uniform":
        sides = rng.uniform(sc.size_px[0], sc.size_px[1], n)
    else:
        sides = np.exp(rng.uniform(np.log(sc.size_px[0]), np.log(sc.size_px[1]), n))
    overlapping = rng.random(n) < sc.overlap_share
    placed: list[np.ndarray] = []
    for i in range(n):
        tries = _sized_boxes(rng, np.full(_PLACE_TRIES, sides[i]), sc.image_wh)
        if placed:
            want_overlap = bool(overlapping[i])
            if want_overlap:
                # centre each try next to one placed box, at 0.3-0.9 of the two half-sizes apart
                ref = np.asarray(placed)[rng.integers(0, len(placed), _PLACE_TRIES)]
                half = (ref[:, 2:] - ref[:, :2] + tries[:, 2:] - tries[:, :2]) / 2
                ang = rng.uniform(0, 2 * np.pi, _PLACE_TRIES)
                dist = rng.uniform(0.3, 0.9, _PLACE_TRIES)[:, None] * half
                centre = (ref[:, :2] + ref[:, 2:]) / 2 + dist * np.stack([np.cos(ang), np.sin(ang)], axis=1)
                size = tries[:, 2:] - tries[:, :2]
                tries = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
                w, h = sc.image_wh
                inside = (tries[:, :2] >= 0).all(axis=1) & (tries[:, 2] <= w) & (tries[:, 3] <= h)
            else:
                inside = np.ones(_PLACE_TRIES, dtype=bool)
            iou = box_iou(tries, np.asarray(placed)).max(axis=1)
            ok = inside & ((iou > 0) & (iou < 0.4) if want_overlap else iou == 0)
            if not ok.any():
                continue
            tries = tries[ok]
        placed.append(tries[0])
    return np.asarray(placed, dtype=np.float64).reshape(-1, 4)


def _truth_frame(rng: np.random.Generator, sc: Scenario) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """One frame of truth: boxes (N, 4) xyxy, labels (N,) and outlines (unit box, (K, 2) each)."""
    n = sc.objects_per_frame
    if sc.objects_range is not None:
        n = int(rng.integers(sc.objects_range[0], sc.objects_range[1] + 1))
    if sc.size_px is not None:
        xyxy = _placed_boxes(rng, n, sc)
        return xyxy, _labels(rng, len(xyxy), sc), _outlines(rng, len(xyxy))
    w, h = sc.image_wh
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
    label = _labels(rng, n, sc)
    return xyxy, label, _outlines(rng, n)


def _spurious_frame(
    rng: np.random.Generator, sc: Scenario, prof: AnnotatorProfile, n: int
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """``n`` (or, drawn like the truth, at most ``n``) spurious objects of ``prof``."""
    if prof.extra_size_px is None:
        xyxy, label, outlines = _truth_frame(rng, sc)
        return xyxy[:n], label[:n], outlines[:n]
    sides = rng.uniform(prof.extra_size_px[0], prof.extra_size_px[1], n)
    return _sized_boxes(rng, sides, sc.image_wh), _labels(rng, n, sc), _outlines(rng, n)


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
                noisy = xyxy[i] + rng.normal(0, prof.jitter, 4) * np.tile(size, 2)
                if prof.jitter_px and sc.kind != "skeleton":
                    noisy = noisy + rng.normal(0, prof.jitter_px, 4)
                    # nobody draws a box inside out: a corner jittered past its opposite swaps
                    noisy = np.concatenate([np.minimum(noisy[:2], noisy[2:]), np.maximum(noisy[:2], noisy[2:])])
                noisy = _clip(noisy, sc.image_wh)
                lab = int(label[i])
                if sc.kind != "skeleton" and rng.random() < prof.wrong_label_rate:
                    lab = int((lab + rng.integers(0, n_cls - 1)) % n_cls + 1)
                outline = outlines[i] + rng.normal(0, prof.jitter / 2, outlines[i].shape)
                if prof.jitter_px and sc.kind in ("polygon", "mask"):
                    noisy_size = np.maximum(noisy[2:] - noisy[:2], 1.0)
                    outline = outline + rng.normal(0, prof.jitter_px / 2, outline.shape) / noisy_size
                outline = np.clip(outline, 0, 1)
                vis = np.where(rng.random(len(KEYPOINTS)) < prof.flip_visibility_rate, ~visible[i], visible[i])
                offset = None
                if sc.kind == "skeleton" and sc.keypoint_jitter is not None:
                    spread = np.asarray(sc.keypoint_jitter, dtype=np.float64)[:, None] * size[None, :]
                    offset = rng.normal(0, 1, (len(KEYPOINTS), 2)) * spread
                if sc.kind == "skeleton" and prof.jitter_px:
                    px = rng.normal(0, prof.jitter_px, (len(KEYPOINTS), 2))
                    offset = px if offset is None else offset + px
                out.append(_shape(sc.kind, frame, lab, noisy, outline, vis, offset))
            n_extra = rng.poisson(prof.extra_rate * len(label))
            if n_extra:
                ex_xyxy, ex_label, ex_outlines = _spurious_frame(rng, sc, prof, int(n_extra))
                for j in range(len(ex_label)):
                    lab = SKELETON_ID if sc.kind == "skeleton" else int(ex_label[j])
                    out.append(_shape(sc.kind, frame, lab, ex_xyxy[j], ex_outlines[j], visible[0]))
    return Generated(
        truth=JobAnnotations(shapes=tuple(truth)),
        replicas={name: JobAnnotations(shapes=tuple(shapes)) for name, shapes in per_annot.items()},
        labels=make_labels(),
        meta=make_meta(sc.frames, sc.image_wh),
    )


def relative_noise(profile: AnnotatorProfile, ref_px: float = RELATIVE_REF_PX) -> AnnotatorProfile:
    """``profile`` with its pixel jitter turned into jitter proportional to the object size, equal
    at a ``ref_px`` side (a second noise law, so no estimator is tuned to one)."""
    return dataclasses.replace(profile, jitter=profile.jitter + profile.jitter_px / ref_px, jitter_px=0.0)


def preset_scenario(
    preset: str,
    kind: Kind = "rectangle",
    frames: int = 40,
    seed: int = 0,
    *,
    sizes: SizeDist = "log-uniform",
    noise: NoiseLaw = "absolute",
) -> Scenario:
    """Issue 11's scenario for ``preset`` (a key of :data:`PRESETS`): sides 10-200 px (skeletons
    30-200 px: nobody places five keypoints on a 10 px person, and OKS at that scale is all
    jitter), 5-60 objects per frame, 15 % of the objects overlapping a neighbour, imbalanced
    classes. ``sizes`` and ``noise`` pick the variants of the truth's sizes and of the noise law
    that cross-check an estimator (the issue's scenario: the defaults)."""
    if preset not in PRESETS:
        raise KeyError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    team = PRESETS[preset] if noise == "absolute" else tuple(relative_noise(p) for p in PRESETS[preset])
    return Scenario(
        kind=kind,
        frames=frames,
        annotators=team,
        size_dist=sizes,
        seed=seed,
        size_px=(30.0 if kind == "skeleton" else 10.0, 200.0),
        objects_range=(5, 60),
        overlap_share=0.15,
        class_weights=IMBALANCED_CLASSES,
    )


def gt_sample(g: Generated, share: float = 0.1, seed: int = 0) -> tuple[JobAnnotations, tuple[int, ...]]:
    """A ground-truth job for ``g``: the truth on a random ``share`` of the frames (at least one).

    Returns (the GT annotations, the frame numbers it covers, ascending); every listed frame is
    fully annotated, as in a CVAT GT job."""
    n_frames = len(g.meta.frames)
    k = min(n_frames, max(1, round(share * n_frames)))
    frames = np.sort(np.random.default_rng(seed).choice(n_frames, size=k, replace=False)) + g.meta.start_frame
    keep = set(frames.tolist())
    shapes = tuple(s for s in g.truth.shapes if s.frame in keep)
    return JobAnnotations(shapes=shapes), tuple(int(f) for f in frames)


if __name__ == "__main__":
    for kind in ("rectangle", "polygon", "mask", "skeleton"):
        g = generate(Scenario(kind=kind, frames=2, objects_per_frame=3))
        print(kind, {n: len(a.shapes) for n, a in g.replicas.items()}, "truth", len(g.truth.shapes))
    for preset in PRESETS:
        g = generate(preset_scenario(preset, frames=3))
        print(preset, {n: len(a.shapes) for n, a in g.replicas.items()}, "truth", len(g.truth.shapes))

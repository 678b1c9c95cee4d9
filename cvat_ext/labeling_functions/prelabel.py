"""Pre-labels for CVAT's auto-annotation: segment proposals of one image, voted on by LFs.

CVAT sends a detector function only the image, so the candidates come from the image itself:
the regions of a hierarchical grouping of the fine superpixels
(:func:`~cvat_ext.labeling_functions.proposals.hierarchical_proposals`, colour + size + fill
similarity) that stand out from what they merge into by ``min_contrast`` CIELAB units, kept when
their box covers ``min_rel_area`` .. ``max_rel_area`` of the image. Each
region is a candidate with its box, own area (``fill`` works) and the colour statistics of its own
pixels (every colour feature works). The LFs vote; with one image there is nothing for EM to
learn, so the votes are combined by the one-coin model with every LF at ``prior_accuracy``
(:func:`~cvat_ext.labeling_functions.label_model.vote_posterior`): the score of a pre-label is that
posterior. Nested regions of one object get the same votes, so pre-labels of one label that
overlap by ``nms_iou`` are reduced to the most confident (then the most compact) one.

**Tags.** CVAT 2.73 accepts ``{"label": name, "type": "tag"}`` items from a detector function
(contracts §2.6; the label is declared with ``"type": "tag"`` in the spec and must map to a tag
label of the task). LFs with ``target: image`` vote on the whole frame (one candidate with the
frame's colour statistics); the tag they settle on, when its posterior reaches the request's
threshold, is returned as a tag item after the objects. The function's spec lists the object
label space first, then the tag label space (ids continue).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from cvat_ext.errors import ConfigError
from cvat_ext.functions.detector import DetectorFunction
from cvat_ext.functions.interface import LabelSpec
from cvat_ext.functions.request import DetectorRequest
from cvat_ext.functions.response import tag_item
from cvat_ext.labeling_functions.apply import apply_lfs
from cvat_ext.labeling_functions.candidates import Candidates
from cvat_ext.labeling_functions.functions import LabelingFunction
from cvat_ext.labeling_functions.label_model import vote_posterior
from cvat_ext.labeling_functions.pixels import PIXEL_COLUMNS, partition_moments, pixel_stats, stats_from_moments
from cvat_ext.labeling_functions.proposals import STRATEGIES, Proposals, hierarchical_proposals
from cvat_ext.models.detections import Detections
from cvat_ext.models.superpixels import SCALES, SuperpixelMap, SuperpixelScale, segment_frame

__all__ = ["LfPrelabelFunction", "LfPrelabeller", "prelabel_function_from_env", "proposal_candidates"]


def proposal_candidates(spx: SuperpixelMap, rgb: npt.NDArray[np.uint8], proposals: Proposals) -> Candidates:
    """Proposals as :class:`Candidates` (one frame, index 0) with the colour statistics of each
    proposal's own pixels: the superpixels' moments summed over its members (one sparse product)."""
    moments = partition_moments(rgb, spx.labels, len(spx))
    stats = stats_from_moments(np.asarray(proposals.membership(len(spx)) @ moments, dtype=np.float64))
    return Candidates(
        np.zeros(len(proposals), dtype=np.int64),
        proposals.xyxy,
        np.array([spx.width, spx.height], dtype=np.float64),
        shape_area=proposals.area,
        pixels=stats.reshape(len(proposals), len(PIXEL_COLUMNS)),
    )


def _nms_per_label(
    dets: Detections, fill: npt.NDArray[np.float64], iou_thr: float, max_dets: int
) -> npt.NDArray[np.intp]:
    """Indices kept: per label, the most confident first (then the one filling its box best);
    a box overlapping a kept one of the same label by IoU >= ``iou_thr`` is dropped."""
    order = np.lexsort((-fill, -dets.score))
    xyxy = dets.xyxy
    area = np.prod(xyxy[:, 2:] - xyxy[:, :2], axis=1)
    suppressed = np.zeros(len(order), dtype=bool)
    kept: list[int] = []
    for i in order.tolist():
        if suppressed[i]:
            continue
        kept.append(i)
        if len(kept) == max_dets:
            break
        lt = np.maximum(xyxy[i, :2], xyxy[:, :2])
        rb = np.minimum(xyxy[i, 2:], xyxy[:, 2:])
        inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
        iou = inter / np.maximum(area[i] + area - inter, 1e-9)
        suppressed |= (iou >= iou_thr) & (dets.class_id == dets.class_id[i])
    return np.asarray(sorted(kept), dtype=np.intp)


def _combine(lfs: Sequence[LabelingFunction], candidates: Candidates, prior_accuracy: float) -> npt.NDArray[np.float64]:
    """(N, K) one-coin posterior of the LFs' votes with every LF at ``prior_accuracy``; rows
    where every LF abstained are all zero."""
    run = apply_lfs(lfs, candidates)
    k = len(run.labels)
    voted = (run.matrix >= 0).any(axis=1)
    post = np.zeros((len(candidates), k))
    post[voted] = vote_posterior(run.matrix[voted], np.full(len(lfs), prior_accuracy), np.full(k, 1.0 / k))
    return post


@dataclass
class LfPrelabeller:
    """Callable ``rgb (H, W, 3) uint8 -> Detections``: class ids index ``lfs[0].labels``."""

    lfs: Sequence[LabelingFunction]
    # fine superpixels, one grouping strategy, contrast >= 8: chosen on the recall of the hand-made
    # boxes of tests/data/labeling_functions/objects.json (bench/labeling_functions.py)
    scale: SuperpixelScale = SCALES["fine"]
    min_contrast: float = 8.0
    min_rel_area: float = 0.001
    max_rel_area: float = 0.5
    prior_accuracy: float = 0.7
    #: pre-labels of one label overlapping by this IoU are one (the most confident is kept)
    nms_iou: float = 0.5
    max_detections: int = 100

    @property
    def labels(self) -> tuple[str, ...]:
        return self.lfs[0].labels

    def candidates(self, rgb: npt.NDArray[np.uint8]) -> Candidates:
        spx = segment_frame(rgb, self.scale)
        proposals = hierarchical_proposals(
            spx,
            strategies=STRATEGIES[:1],
            min_rel_area=self.min_rel_area,
            max_rel_area=self.max_rel_area,
            min_contrast=self.min_contrast,
        )
        return proposal_candidates(spx, rgb, proposals)

    def __call__(self, rgb: npt.NDArray[np.uint8]) -> Detections:
        candidates = self.candidates(rgb)
        post = _combine(self.lfs, candidates, self.prior_accuracy)
        voted = np.flatnonzero(post.sum(axis=1) > 0)
        dets = Detections(candidates.xyxy[voted], post[voted].max(axis=1), post[voted].argmax(axis=1))
        keep = _nms_per_label(dets, candidates.feature("fill")[voted], self.nms_iou, self.max_detections)
        return Detections(dets.xyxy[keep], dets.score[keep], dets.class_id[keep])


@dataclass
class LfPrelabelFunction:
    """The detector function: object pre-labels from :class:`LfPrelabeller` (via
    :class:`DetectorFunction`), then one tag item per tag whose posterior from the image LFs
    reaches the request's threshold (the best one; ties impossible with a posterior > 0.5)."""

    objects: DetectorFunction | None
    tag_lfs: Sequence[LabelingFunction]
    prior_accuracy: float = 0.7
    default_threshold: float = 0.5

    def __call__(self, request: DetectorRequest) -> list[dict[str, Any]]:
        items = self.objects(request) if self.objects is not None else []
        if not self.tag_lfs:
            return items
        rgb = request.image.rgb()
        height, width = rgb.shape[:2]
        whole = Candidates.whole_images([0], [width, height], pixels=pixel_stats(rgb, [[0, 0, width, height]]))
        post = _combine(self.tag_lfs, whole, self.prior_accuracy)[0]
        best = int(post.argmax())
        if post[best] > 0 and post[best] >= request.threshold_or(self.default_threshold):
            items.append(tag_item(self.tag_lfs[0].labels[best], confidence=float(post[best])))
        return items


#: CVAT_EXT_LF_PACKS: LF pack paths separated by os.pathsep; empty = the example packs
ENV_PACKS = "CVAT_EXT_LF_PACKS"
EXAMPLE_PACKS = ("vehicles.yaml", "street_python.py", "scene_tags.yaml")


def prelabel_function_from_env(
    labels: Sequence[LabelSpec], environ: Mapping[str, str] | None = None
) -> LfPrelabelFunction:
    """The detector function of ``serverless/skimage/cvat_ext/lf-prelabel``: checks that the
    declared ``labels`` are the object LFs' label space with ids in its order, then the tag LFs'
    label space (declared ``"type": "tag"``) with the ids continuing."""
    from cvat_ext.labeling_functions.apply import by_target, load_lfs

    env = os.environ if environ is None else environ
    raw = env.get(ENV_PACKS, "").strip()
    packs = (
        [p for p in raw.split(os.pathsep) if p]
        if raw
        else [str(Path(__file__).parent / "packs" / n) for n in EXAMPLE_PACKS]
    )
    groups = by_target(load_lfs(packs))
    object_lfs, tag_lfs = groups.get("object", []), groups.get("image", [])
    object_space = object_lfs[0].labels if object_lfs else ()
    tag_space = tag_lfs[0].labels if tag_lfs else ()
    declared = {spec.id: spec.name for spec in labels}
    expected = dict(enumerate((*object_space, *tag_space)))
    if declared != expected:
        raise ConfigError(
            f"lf-prelabel: function labels {declared} must be the object LF label space, then the tag LF "
            f"label space: {expected}"
        )
    not_tags = sorted(
        spec.name for spec in labels if spec.id is not None and spec.id >= len(object_space) and spec.type != "tag"
    )
    if not_tags:
        raise ConfigError(f"lf-prelabel: labels {not_tags} of the tag LFs must be declared with type tag")
    object_labels = [spec for spec in labels if spec.id is not None and spec.id < len(object_space)]
    # a pre-label is shown from the label model's posterior 0.5 up unless CVAT sends a threshold
    objects = DetectorFunction(LfPrelabeller(object_lfs), object_labels, default_threshold=0.5) if object_lfs else None
    return LfPrelabelFunction(objects, tag_lfs)

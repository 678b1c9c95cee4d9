"""Pre-labels for CVAT's auto-annotation: segment proposals of one image, voted on by LFs.

CVAT sends a detector function only the image, so the candidates come from the image itself:
the coarse superpixels (:mod:`cvat_ext.models.superpixels`) joined into regions wherever
neighbouring superpixels differ by less than ``edge_lab`` in CIELAB (connected components of the
superpixel graph), kept when their box covers ``min_rel_area`` .. ``max_rel_area`` of the image
(the background is usually one huge region). Each region is a candidate with its box, own area
(``fill`` works) and the colour statistics of its own pixels (every colour feature works). The LFs
vote; with one image there is nothing for EM to learn, so the votes are combined by the one-coin
model with every LF at ``prior_accuracy``
(:func:`~cvat_ext.labeling_functions.label_model.vote_posterior`): the score of a pre-label is that
posterior.

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
from cvat_ext.labeling_functions.pixels import partition_stats, pixel_stats
from cvat_ext.models.detections import Detections
from cvat_ext.models.superpixels import SCALES, SuperpixelMap, SuperpixelScale, segment_frame

__all__ = ["LfPrelabelFunction", "LfPrelabeller", "prelabel_function_from_env", "region_candidates"]


def region_candidates(
    spx: SuperpixelMap,
    rgb: npt.NDArray[np.uint8],
    *,
    edge_lab: float,
    min_rel_area: float,
    max_rel_area: float,
) -> Candidates:
    """Regions of similar colour as :class:`Candidates` (one frame, index 0), with the colour
    statistics of each region's own pixels (``rgb`` is the frame ``spx`` was cut from)."""
    from scipy import sparse
    from scipy.sparse import csgraph

    s = len(spx)
    a, b = spx.edges[:, 0], spx.edges[:, 1]
    close = np.linalg.norm(spx.mean_lab[a] - spx.mean_lab[b], axis=1) < edge_lab
    graph = sparse.csr_matrix((np.ones(int(close.sum()), dtype=np.int8), (a[close], b[close])), shape=(s, s))
    n_regions, region = csgraph.connected_components(graph, directed=False)
    area = np.bincount(region, weights=spx.area, minlength=n_regions)
    ltrb = np.stack(
        [
            np.full(n_regions, np.inf),
            np.full(n_regions, np.inf),
            np.full(n_regions, -np.inf),
            np.full(n_regions, -np.inf),
        ],
        axis=1,
    )
    np.minimum.at(ltrb[:, 0], region, spx.ltrb[:, 0])
    np.minimum.at(ltrb[:, 1], region, spx.ltrb[:, 1])
    np.maximum.at(ltrb[:, 2], region, spx.ltrb[:, 2] + 1)
    np.maximum.at(ltrb[:, 3], region, spx.ltrb[:, 3] + 1)
    image_area = float(spx.width * spx.height)
    rel = np.prod(ltrb[:, 2:] - ltrb[:, :2], axis=1) / image_area
    keep = (rel >= min_rel_area) & (rel <= max_rel_area)
    stats = partition_stats(rgb, region[spx.labels], n_regions)
    return Candidates(
        np.zeros(int(keep.sum()), dtype=np.int64),
        ltrb[keep],
        np.array([spx.width, spx.height], dtype=np.float64),
        shape_area=area[keep],
        pixels=stats[keep],
    )


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
    scale: SuperpixelScale = SCALES["coarse"]
    edge_lab: float = 8.0
    min_rel_area: float = 0.001
    max_rel_area: float = 0.5
    prior_accuracy: float = 0.7

    @property
    def labels(self) -> tuple[str, ...]:
        return self.lfs[0].labels

    def candidates(self, rgb: npt.NDArray[np.uint8]) -> Candidates:
        return region_candidates(
            segment_frame(rgb, self.scale),
            rgb,
            edge_lab=self.edge_lab,
            min_rel_area=self.min_rel_area,
            max_rel_area=self.max_rel_area,
        )

    def __call__(self, rgb: npt.NDArray[np.uint8]) -> Detections:
        candidates = self.candidates(rgb)
        post = _combine(self.lfs, candidates, self.prior_accuracy)
        voted = post.sum(axis=1) > 0
        return Detections(candidates.xyxy[voted], post[voted].max(axis=1), post[voted].argmax(axis=1))


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

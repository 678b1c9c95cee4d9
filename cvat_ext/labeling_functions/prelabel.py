"""Pre-labels for CVAT's auto-annotation: segment proposals of one image, voted on by LFs.

CVAT sends a detector function only the image, so the candidates come from the image itself:
the coarse superpixels (:mod:`cvat_ext.models.superpixels`) joined into regions wherever
neighbouring superpixels differ by less than ``edge_lab`` in CIELAB (connected components of the
superpixel graph), kept when their box covers ``min_rel_area`` .. ``max_rel_area`` of the image
(the background is usually one huge region). Each region is a candidate with its box, own area
(``fill`` works) and mean colour (colour features work). The LFs vote; with one image there is
nothing for EM to learn, so the votes are combined by the one-coin model with every LF at
``prior_accuracy`` (:func:`~cvat_ext.labeling_functions.label_model.vote_posterior`): the score of
a pre-label is that posterior.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from cvat_ext.errors import ConfigError
from cvat_ext.functions.detector import DetectorFunction
from cvat_ext.functions.interface import LabelSpec
from cvat_ext.labeling_functions.apply import apply_lfs
from cvat_ext.labeling_functions.candidates import Candidates
from cvat_ext.labeling_functions.functions import LabelingFunction
from cvat_ext.labeling_functions.label_model import vote_posterior
from cvat_ext.models.detections import Detections
from cvat_ext.models.superpixels import SCALES, SuperpixelMap, SuperpixelScale, segment_frame

__all__ = ["LfPrelabeller", "prelabel_function_from_env", "region_candidates"]


def region_candidates(spx: SuperpixelMap, *, edge_lab: float, min_rel_area: float, max_rel_area: float) -> Candidates:
    """Regions of similar colour as :class:`Candidates` (one frame, index 0)."""
    import cv2
    from scipy import sparse
    from scipy.sparse import csgraph

    s = len(spx)
    a, b = spx.edges[:, 0], spx.edges[:, 1]
    close = np.linalg.norm(spx.mean_lab[a] - spx.mean_lab[b], axis=1) < edge_lab
    graph = sparse.csr_matrix((np.ones(int(close.sum()), dtype=np.int8), (a[close], b[close])), shape=(s, s))
    n_regions, region = csgraph.connected_components(graph, directed=False)
    area = np.bincount(region, weights=spx.area, minlength=n_regions)
    sums = np.stack(
        [np.bincount(region, weights=spx.mean_lab[:, k] * spx.area, minlength=n_regions) for k in range(3)], axis=1
    )
    lab = sums.astype(np.float64) / np.maximum(area, 1.0)[:, None]
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
    rgb = cv2.cvtColor(lab.astype(np.float32)[None], cv2.COLOR_Lab2RGB)[0].astype(np.float64) * 255.0
    image_area = float(spx.width * spx.height)
    rel = np.prod(ltrb[:, 2:] - ltrb[:, :2], axis=1) / image_area
    keep = (rel >= min_rel_area) & (rel <= max_rel_area)
    return Candidates(
        np.zeros(int(keep.sum()), dtype=np.int64),
        ltrb[keep],
        np.array([spx.width, spx.height], dtype=np.float64),
        shape_area=area[keep],
        mean_rgb=np.clip(rgb[keep], 0, 255),
    )


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
            edge_lab=self.edge_lab,
            min_rel_area=self.min_rel_area,
            max_rel_area=self.max_rel_area,
        )

    def __call__(self, rgb: npt.NDArray[np.uint8]) -> Detections:
        candidates = self.candidates(rgb)
        run = apply_lfs(self.lfs, candidates)
        k = len(run.labels)
        voted = (run.matrix >= 0).any(axis=1)
        post = vote_posterior(run.matrix[voted], np.full(len(self.lfs), self.prior_accuracy), np.full(k, 1.0 / k))
        return Detections(candidates.xyxy[voted], post.max(axis=1), post.argmax(axis=1))


#: CVAT_EXT_LF_PACKS: LF pack paths separated by os.pathsep; empty = the example packs
ENV_PACKS = "CVAT_EXT_LF_PACKS"
EXAMPLE_PACKS = ("vehicles.yaml", "street_python.py")


def prelabel_function_from_env(
    labels: Sequence[LabelSpec], environ: Mapping[str, str] | None = None
) -> DetectorFunction:
    """The detector function of ``serverless/skimage/cvat_ext/lf-prelabel``: checks that the
    declared ``labels`` are the packs' label space with ids in its order."""
    from cvat_ext.labeling_functions.apply import load_lfs

    env = os.environ if environ is None else environ
    raw = env.get(ENV_PACKS, "").strip()
    packs = (
        [p for p in raw.split(os.pathsep) if p]
        if raw
        else [str(Path(__file__).parent / "packs" / n) for n in EXAMPLE_PACKS]
    )
    lfs = load_lfs(packs)
    space = lfs[0].labels
    declared = {spec.id: spec.name for spec in labels}
    if declared != dict(enumerate(space)):
        raise ConfigError(
            f"lf-prelabel: function labels {declared} must be the LF label space {dict(enumerate(space))}"
        )
    # a pre-label is shown from the label model's posterior 0.5 up unless CVAT sends a threshold
    return DetectorFunction(LfPrelabeller(lfs), labels, default_threshold=0.5)

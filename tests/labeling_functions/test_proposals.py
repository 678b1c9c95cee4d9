"""Region proposals of the LF pre-label detector: the hierarchy's invariants, and recall of the
hand-made boxes of real photos (tests/data/labeling_functions/objects.json) against the baseline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

pytest.importorskip("skimage")

from cvat_ext.labeling_functions.pixels import partition_stats
from cvat_ext.labeling_functions.prelabel import proposal_candidates
from cvat_ext.labeling_functions.proposals import (
    STRATEGIES,
    GroupingStrategy,
    colour_regions,
    hierarchical_proposals,
)
from cvat_ext.models.superpixels import SCALES, segment_frame
from tests.privacy.photos import box_iou

OBJECTS = Path(__file__).resolve().parents[1] / "data" / "labeling_functions" / "objects.json"


def photo(name: str) -> npt.NDArray[np.uint8]:
    from skimage import data

    rgb = np.asarray(getattr(data, name)())
    return np.ascontiguousarray(np.stack([rgb] * 3, axis=-1) if rgb.ndim == 2 else rgb[..., :3], dtype=np.uint8)


def test_every_level_of_the_hierarchy_is_a_proposal() -> None:
    spx = segment_frame(photo("coffee"), SCALES["coarse"])
    s = len(spx)
    every = hierarchical_proposals(spx, strategies=[GroupingStrategy()], min_rel_area=0, max_rel_area=1, dedupe_iou=2)
    assert len(every) == 2 * s - 1  # the superpixels and one region per merge
    root = int(np.argmax(every.area))
    assert every.area[root] == spx.width * spx.height and np.isinf(every.contrast[root])
    assert every.xyxy[root].tolist() == [0, 0, spx.width, spx.height]
    # a region's area is its members' area, its box their union
    for r in np.random.default_rng(0).choice(len(every), 20, replace=False).tolist():
        m = every.members[r]
        assert every.area[r] == spx.area[m].sum()
        assert every.xyxy[r].tolist() == [*spx.ltrb[m, :2].min(axis=0), *(spx.ltrb[m, 2:].max(axis=0) + 1)]
    # a contrast floor keeps a subset; the root has no one to differ from
    strict = hierarchical_proposals(spx, strategies=[GroupingStrategy()], min_contrast=8, dedupe_iou=2)
    assert 0 < len(strict) < len(every) and (strict.contrast >= 8).all()


def test_proposal_colours_are_those_of_their_own_pixels() -> None:
    rgb = photo("astronaut")
    spx = segment_frame(rgb, SCALES["coarse"])
    proposals = hierarchical_proposals(spx, strategies=STRATEGIES[:1], min_contrast=8)
    got = proposal_candidates(spx, rgb, proposals).pixel_table
    for r in (0, len(proposals) // 2, len(proposals) - 1):
        region = np.isin(spx.labels, proposals.members[r]).astype(np.int64)
        np.testing.assert_allclose(got[r], partition_stats(rgb, region, 2)[1], rtol=1e-9, atol=1e-9)


def recall(scale: str, method: str) -> tuple[int, int, float]:
    hits = total = n_props = 0
    images = json.loads(OBJECTS.read_text())["images"]
    for image in images:
        spx = segment_frame(photo(image["source"]), SCALES[scale])
        props = (
            colour_regions(spx)
            if method == "colour_regions"
            else hierarchical_proposals(spx, strategies=STRATEGIES[:1], min_contrast=8.0, max_rel_area=0.5)
        )
        gt = np.asarray([o["xyxy"] for o in image["objects"]], dtype=np.float64)
        hits += int((box_iou(gt, props.xyxy).max(axis=1) >= 0.5).sum())
        total += len(gt)
        n_props += len(props)
    return hits, total, n_props / len(images)


def test_hierarchical_proposals_find_more_hand_labelled_objects_than_colour_regions() -> None:
    base_hits, total, _ = recall("coarse", "colour_regions")
    hits, _, per_image = recall("fine", "hierarchy")
    # measured: 11/24 for the colour regions, 21/24 for the hierarchy (about 170 proposals a photo)
    assert hits >= 0.8 * total and hits >= base_hits + 6, (base_hits, hits, total)
    assert per_image < 300


@pytest.mark.parametrize("shape", [(1, 1), (40, 200), (4000, 1), (64, 64)])
def test_a_frame_without_proposals_gives_no_pre_labels(shape: tuple[int, int]) -> None:
    """A uniform or degenerate frame has no region standing out: no candidate, no pre-label."""
    from cvat_ext.labeling_functions.apply import load_lfs
    from cvat_ext.labeling_functions.prelabel import LfPrelabeller

    packs = Path(__file__).resolve().parents[2] / "cvat_ext" / "labeling_functions" / "packs"
    prelabel = LfPrelabeller(load_lfs([packs / "vehicles.yaml", packs / "street_python.py"]))
    rgb = np.full((*shape, 3), 90, dtype=np.uint8)
    assert len(prelabel.candidates(rgb)) == 0 and len(prelabel(rgb)) == 0

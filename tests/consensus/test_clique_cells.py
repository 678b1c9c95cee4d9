"""The corner cells of the noise fit: the clique triples' truncation (closed form against a
Monte-Carlo of the selection) and a person's cells carried from job to job in its model dict."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cvat_ext.consensus.annotator_model import PRIOR_CAP
from cvat_ext.consensus.engine import score_replicas
from cvat_ext.consensus.noise_model import (
    CarriedCells,
    CornerCells,
    clique_covariance,
    corner_iou,
    noisy_unit_boxes,
    pseudo_count_mean,
    template,
)
from cvat_ext.consensus.report import ConsensusResult
from cvat_ext.consensus.settings import ConsensusSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from consensus_generator import Generated, generate, preset_scenario

SETTINGS = ConsensusSettings()


def _clique_monte_carlo(sd: np.ndarray, draws: int = 200_000) -> np.ndarray:
    """(3,) per annotator of three (corner sd ``sd (3,)`` on the unit square): its covariance read
    on the triples whose three pairs reach IoU 0.5, over its variance."""
    rng = np.random.default_rng(5)
    noise = rng.normal(0.0, 1.0, (3, draws, 4))
    boxes = [noisy_unit_boxes(float(s), z) for s, z in zip(sd, noise, strict=True)]
    clique = np.ones(draws, dtype=bool)
    for i, j in ((0, 1), (0, 2), (1, 2)):
        clique &= corner_iou(boxes[i], boxes[j]) >= 0.5
    e = sd[:, None, None] * noise
    return np.array(
        [
            ((e[r] - e[a]) * (e[r] - e[b])).mean(axis=1)[clique].mean() / sd[r] ** 2
            for r, a, b in ((0, 1, 2), (1, 0, 2), (2, 0, 1))
        ]
    )


@pytest.mark.parametrize("sd", [(0.02, 0.06, 0.15), (0.05, 0.1, 0.2), (0.03, 0.09, 0.22)])
def test_the_clique_factor_follows_a_monte_carlo_of_the_selection(sd: tuple[float, float, float]) -> None:
    tmpl = template()
    v = np.array(sd) ** 2
    order = np.array([[0, 1, 2], [1, 0, 2], [2, 0, 1]])
    closed = clique_covariance(v[order], lambda s2: tmpl.kept_share(s2, 0.5)) / v
    mc = _clique_monte_carlo(np.array(sd))
    np.testing.assert_allclose(closed, mc, rtol=0.12)
    # the product of the two pairs' kept shares (each pair truncated alone) reads the precise
    # annotator's clique covariance as shrunk, where the a-b match has inflated it 1.7-3x
    pairs = tmpl.shrink(v[0] + v[1], 0.5) * tmpl.shrink(v[0] + v[2], 0.5)
    assert pairs < 0.5 * mc[0]


def test_carried_cells_pool_by_precision_and_round_trip() -> None:
    cells = CornerCells(
        design=np.array([[1e-3, 1.0], [1e-3, 1.0], [1e-4, 1.0]]),
        target=np.array([2e-3, 4e-3, 1e-4]),
        weight=np.array([1.0, 3.0, 2.0]),
        bins=np.array([3, 3, 7]),
        factor=np.ones(3),
    )
    carried = CarriedCells.pooled(cells)
    assert carried.precision[3] == pytest.approx(10.0) and carried.precision[7] == pytest.approx(4.0)
    assert carried.target[3] == pytest.approx((2e-3 + 9 * 4e-3) / 10)
    assert carried.precision[[0, 1, 2, 4, 5, 6]].sum() == 0.0
    back = CarriedCells.from_dict(json.loads(json.dumps(carried.as_dict())))
    assert back is not None
    np.testing.assert_allclose(back.target, carried.target, rtol=1e-5)
    # decayed as the next job's cells: the bins with evidence, their precision times the decay
    again = back.cells(decay=0.5)
    assert again.bins.tolist() == [3, 7]
    np.testing.assert_allclose(again.weight**2, [5.0, 2.0], rtol=1e-5)
    # another layout, or a malformed one: no cells (the prior pools as a dict without them)
    assert CarriedCells.from_dict({**carried.as_dict(), "layout": 99}) is None
    assert CarriedCells.from_dict({"layout": 1, "target": [1.0]}) is None


# ---------------------------------------------------------------------------------------------
# a person's cells, job to job


def _precise_alpha(result: ConsensusResult) -> float:
    model = next(a.model for a in result.annotators if a.annotator == "precise")
    return float(model["noise"]["segment"]["alpha"])


def _mask_job(seed: int) -> Generated:
    return generate(preset_scenario("precise-moderate-sloppy", "mask", 30, seed))


def test_a_chain_of_carried_cells_brings_the_precise_annotators_noise_to_its_truth() -> None:
    """Masks, precise/moderate/sloppy: the precise annotator's corner variance is ~4 px^2 (the
    fit's ``alpha``, scaled onto the mask IoU, ~4-6); one 30-frame job fits it at 0-15. Scored with
    the models its two earlier jobs stored, job 2 (fitted ~14 alone) reads it within the truth's
    range: the cells pool the jobs' corner evidence, where a prior's parameters weigh 200 pairs."""
    priors: dict[str, Any] = {}
    for seed in (0, 1, 2):
        g = _mask_job(seed)
        result = score_replicas(g.replicas, g.labels, g.meta, SETTINGS, priors=priors or None)
        priors = {a.annotator: json.loads(json.dumps(a.model)) for a in result.annotators}
    alone = score_replicas(g.replicas, g.labels, g.meta, SETTINGS)
    assert _precise_alpha(alone) > 10.0
    assert 2.0 <= _precise_alpha(result) <= 8.0
    assert "corner_cells" in priors["precise"]["noise"]["segment"]


def test_a_prior_without_cells_pools_its_parameters_as_before() -> None:
    g = _mask_job(0)
    first = score_replicas(g.replicas, g.labels, g.meta, SETTINGS)
    # the model dicts stored before the cells were carried (version 1, no ``corner_cells``)
    priors = {a.annotator: json.loads(json.dumps(a.model)) for a in first.annotators}
    for model in priors.values():
        for noise in model["noise"].values():
            noise.pop("corner_cells", None)
    g = _mask_job(1)
    alone = score_replicas(g.replicas, g.labels, g.meta, SETTINGS)
    chained = score_replicas(g.replicas, g.labels, g.meta, SETTINGS, priors=priors)
    own, prior = (
        next(a.model["noise"]["segment"] for a in r.annotators if a.annotator == "precise") for r in (alone, first)
    )
    expected = pseudo_count_mean(own["alpha"], own["pairs"], prior["alpha"], min(prior["pairs"], PRIOR_CAP))
    assert _precise_alpha(chained) == pytest.approx(expected, rel=1e-4)

"""Split pairs: two lone drawings of one object joined after the noise fit (consensus.split_pairs).

Unit tables against naive references, the offset mixture on drawn samples, and generated jobs with
a hidden truth: a planted split pair is joined and kept, a planted sloppy lone drawing is dropped,
and the merge of a precise / moderate / sloppy team finds more of the small objects."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from cvat_ext.annotations.model import JobAnnotations, Shape, ShapeType
from cvat_ext.consensus import engine, fuse, split_clusters, split_pairs
from cvat_ext.consensus.clusters import ClusterTable
from cvat_ext.consensus.matching import annotator_pairs
from cvat_ext.consensus.settings import ConsensusSettings
from cvat_ext.consensus.split_clusters import cluster_candidates, join_split_clusters
from cvat_ext.consensus.split_pairs import (
    Candidates,
    SplitOffsets,
    extra_variance,
    fit_split_offsets,
    greedy_one_to_one,
    join_split_pairs,
    lone_candidates,
)
from cvat_ext.geometry import SimilarityParams, box_iou_pairs, similarity_matrix

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from annotator_truth import params_for, truth_scores
from consensus_generator import Generated, generate, preset_scenario

SETTINGS = ConsensusSettings()


# ---------------------------------------------------------------------------------------------
# units


def _naive_greedy(a: np.ndarray, b: np.ndarray, score: np.ndarray) -> set[tuple[int, int]]:
    used: set[int] = set()
    out = set()
    for i in np.lexsort((b, a, score)).tolist():
        if int(a[i]) in used or int(b[i]) in used:
            continue
        used |= {int(a[i]), int(b[i])}
        out.add((int(a[i]), int(b[i])))
    return out


@pytest.mark.parametrize(("seed", "n_nodes", "n_edges"), [(0, 10, 30), (1, 50, 200), (2, 5, 0), (3, 200, 2000)])
def test_greedy_one_to_one_is_the_edge_by_edge_greedy(seed: int, n_nodes: int, n_edges: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, n_nodes, n_edges)
    b = (a + 1 + rng.integers(0, n_nodes - 1, n_edges)) % n_nodes
    score = rng.integers(0, 20, n_edges).astype(np.float64)  # ties too
    got_a, got_b = greedy_one_to_one(a, b, score, n_nodes)
    assert set(zip(got_a.tolist(), got_b.tolist(), strict=True)) == _naive_greedy(a, b, score)


def _table(frame_pos: list[int], annot: list[int], n_annot: int = 3) -> ClusterTable:
    members = np.full((len(frame_pos), n_annot), -1, dtype=np.int64)
    members[np.arange(len(frame_pos)), annot] = np.arange(len(frame_pos))
    n_pairs = n_annot * (n_annot - 1) // 2
    return ClusterTable(np.asarray(frame_pos, dtype=np.int64), members, np.full((len(frame_pos), n_pairs), np.nan))


def test_lone_candidates_are_every_cross_annotator_pair_of_a_frame_within_reach() -> None:
    rng = np.random.default_rng(4)
    frame_pos = sorted(rng.integers(0, 6, 40).tolist())
    annot = rng.integers(0, 3, 40).tolist()
    table = _table(frame_pos, annot)
    xy = rng.uniform(0, 300, (40, 2))
    side = rng.uniform(8, 30, (40, 1))
    extents = np.hstack([xy, xy + side])
    sizes = side[:, 0]
    var = np.array([4.0, 36.0, 225.0])
    got = lone_candidates(table, extents, sizes, lambda s: np.broadcast_to(var, (s.size, 3)))
    want = {}
    for i in range(40):
        for j in range(i + 1, 40):
            if frame_pos[i] == frame_pos[j] and annot[i] != annot[j]:
                u = float(((extents[i] - extents[j]) ** 2).sum() / (var[annot[i]] + var[annot[j]]))
                if u <= split_pairs.SEARCH_U:
                    want[i, j] = u
    assert set(zip(got.a.tolist(), got.b.tolist(), strict=True)) == set(want)
    for a, b, u in zip(got.a.tolist(), got.b.tolist(), got.u.tolist(), strict=True):
        assert u == pytest.approx(want[a, b])
    # a table without two lone clusters has no candidates
    assert lone_candidates(_table([0], [1]), extents[:1], sizes[:1], lambda s: np.ones((s.size, 3))).u.size == 0


def _mixture(rng: np.random.Generator, n_split: int, n_spurious: int, scale: float) -> Candidates:
    """Candidates of one annotator pair: split pairs with u/scale chi-square(4), neighbours even in 4-d."""
    split = scale * (rng.normal(size=(n_split, 4)) ** 2).sum(axis=1)
    spurious = split_pairs.SEARCH_U * np.sqrt(rng.uniform(size=n_spurious))  # density 2u/U^2
    u = np.concatenate([split, spurious])
    u = u[u <= split_pairs.SEARCH_U]
    z = np.zeros(u.size, dtype=np.int64)
    return Candidates(z, z, z, u, np.full(u.size, 10.0))


@pytest.mark.parametrize(
    ("seed", "n_split", "n_spurious", "scale"), [(0, 300, 300, 1.0), (1, 200, 600, 4.0), (2, 500, 100, 9.0)]
)
def test_offset_mixture_recovers_the_split_share_and_scale(
    seed: int, n_split: int, n_spurious: int, scale: float
) -> None:
    cand = _mixture(np.random.default_rng(seed), n_split, n_spurious, scale)
    fit = fit_split_offsets(cand, 2)
    assert fit.scale[0] == pytest.approx(scale, rel=0.2)
    assert fit.share[0] == pytest.approx(n_split / cand.u.size, abs=0.07)
    assert fit.pair_var[0] == pytest.approx(scale * 10.0, rel=0.2)


def test_offset_mixture_without_split_pairs_joins_nothing() -> None:
    fit = fit_split_offsets(_mixture(np.random.default_rng(5), 0, 400, 1.0), 2)
    assert np.isnan(fit.scale[0])
    assert fit.posterior(np.zeros(3, dtype=np.int64), np.array([0.5, 4.0, 50.0])).tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_share_m_step_is_the_likelihood_maximum(seed: int) -> None:
    rng = np.random.default_rng(seed)
    w = rng.uniform(size=200)
    # all non-link chances 1: the share is the mean posterior
    assert split_pairs._split_share(w, np.ones(200)) == pytest.approx(w.mean(), abs=1e-6)
    m = rng.uniform(0.01, 1.0, 200)
    pi = split_pairs._split_share(w, m)
    loglik = lambda p: float((w * np.log(p * m) + (1 - w) * np.log1p(-p * m)).sum())  # noqa: E731
    grid = np.linspace(1e-4, 0.999 / m.max(), 2000)
    assert loglik(pi) >= max(loglik(p) for p in grid) - 1e-6
    assert 0 < pi * m.max() < 1


@pytest.mark.parametrize(("seed", "n_small", "n_large"), [(0, 300, 300), (1, 200, 600), (2, 500, 200)])
def test_split_prior_tied_to_the_non_link_chance_joins_no_close_neighbours_of_large_objects(
    seed: int, n_small: int, n_large: int
) -> None:
    # candidates of one annotator pair: small objects (the pair fails to link 90 % of the time)
    # hold the split pairs, large ones (1 %) only neighbours, some of which sit close by chance
    rng = np.random.default_rng(seed)
    n_split = n_small // 2
    split = 2.0 * (rng.normal(size=(n_split, 4)) ** 2).sum(axis=1)
    # neighbours even in u (the exponent the jobs fit, 0: more of them close by than in 4-d)
    neighbours = split_pairs.SEARCH_U * rng.uniform(size=n_small - n_split + n_large)
    u = np.concatenate([split, neighbours])
    m = np.concatenate([np.full(n_small, 0.9), np.full(n_large, 0.01)])
    z = np.zeros(u.size, dtype=np.int64)
    tied = fit_split_offsets(Candidates(z, z, z, u, np.full(u.size, 10.0), m), 2)
    free = fit_split_offsets(Candidates(z, z, z, u, np.full(u.size, 10.0)), 2)
    assert tied.scale[0] == pytest.approx(2.0, rel=0.25)
    close = np.array([0.5, 2.0, 8.0])
    pair = np.zeros(3, dtype=np.int64)
    # a small object's close candidate is a split pair either way; a large one's only when untied
    assert (tied.posterior(pair, close, np.full(3, 0.9)) > 0.5).all()
    assert (tied.posterior(pair, close, np.full(3, 0.01)) < 0.5).all()
    assert (free.posterior(pair, close) > 0.5).all()
    # the split pairs found are the small objects' (the expected count: pi * sum(m) ~ n_split)
    assert tied.share[0] * m.sum() == pytest.approx(n_split, rel=0.15)


def test_non_link_chance_is_the_keypoint_templates_miss_share_at_the_pairs_summed_spread() -> None:
    from cvat_ext.consensus.keypoint_noise import KeypointFit

    # per-axis keypoint variance 4, 36, 225 px^2; flips 1 %, 5 %, 15 %
    fit = KeypointFit(
        alpha=np.array([4.0, 36.0, 225.0]),
        beta=np.zeros(3),
        pairs=np.ones(3),
        flip=np.array([0.01, 0.05, 0.15]),
        visible_share=0.9,
        n_keypoints=5,
        sigma=0.09,
    )
    chance = split_pairs.non_link_chance(fit, 0.25)
    size = np.array([30.0, 30.0, 60.0, 200.0, 30.0])
    r, s = np.array([0, 1, 1, 1, 0]), np.array([1, 2, 2, 2, 2])
    got = chance(size, r, s)
    s2 = fit.mean_square(size)
    rows = np.arange(size.size)
    flip = fit.flip[r] + fit.flip[s] - 2 * fit.flip[r] * fit.flip[s]
    want = 1.0 - fit.template.moments(s2[rows, r] + s2[rows, s], flip, 0.25)[0]
    assert got == pytest.approx(want)
    # noisier pairs and smaller objects link less: the split prior falls with the size
    assert got[1] > got[0]
    assert got[1] > got[2] > got[3]
    assert got[4] > got[0]


def test_extra_variance_is_the_three_cornered_hat_and_needs_an_odd_cycle() -> None:
    fit = np.array([5.0, 10.0, 15.0])  # pairs (0,1), (0,2), (1,2)
    extra = np.array([1.0, 30.0, 200.0])
    shown = fit + np.array([extra[0] + extra[1], extra[0] + extra[2], extra[1] + extra[2]])
    assert extra_variance(shown, fit, 3) == pytest.approx(extra)
    assert np.isnan(extra_variance(np.array([np.nan, np.nan, 40.0]), fit, 3)).all()


def test_join_keeps_the_frame_order_and_moves_the_second_part() -> None:
    # frame 0: lone clusters of annotators 0 and 1 two px apart (a split pair), one of annotator 2 far off
    table = _table([0, 0, 0, 1], [0, 1, 2, 0])
    extents = np.array([[10, 10, 20, 20], [12, 11, 22, 21], [200, 200, 210, 210], [5, 5, 15, 15]], dtype=np.float64)
    sizes = np.full(4, 10.0)
    variance = lambda s: np.broadcast_to(np.array([4.0, 36.0, 225.0]), (s.size, 3))  # noqa: E731
    cand = lone_candidates(table, extents, sizes, variance)
    offsets = SplitOffsets(
        share=np.full(3, 0.5), scale=np.ones(3), pair_var=np.full(3, 40.0), extra=np.zeros(3), spread=np.ones(3)
    )
    done = join_split_pairs(
        table,
        extents,
        sizes,
        np.zeros(4, dtype=np.int64),
        cand,
        offsets,
        variance,
        lambda spread2: 1.0 - np.sqrt(spread2),
    )
    assert done.n_joined == 1
    assert done.table.members.tolist() == [[0, 1, -1], [-1, -1, 2], [3, -1, -1]]
    assert done.table.frame_pos.tolist() == [0, 0, 1]
    assert done.extents[0].tolist() == [11.0, 10.5, 21.0, 20.5]
    assert np.isnan(done.table.pair_sim).all()  # joined without a match
    # the fused variance 4 * 36 / 40 = 3.6 px^2 at 10 px
    assert done.hit[0] == pytest.approx(1.0 - np.sqrt(3.6 / 100.0))
    assert np.isnan(done.hit[1:]).all()
    assert done.strata is not None and done.strata.tolist() == [0, 0, 0]


def test_third_members_join_a_lone_drawing_that_is_a_split_partner_of_both_members_of_a_pair() -> None:
    # pairs (0, 1) and (5, 6) joined; lone 2 splits from both 0 and 1 (joins), lone 3 from 0 only,
    # lone 4 from both 5 and 6 but one posterior under 0.5, lone 7 from both 5 and 6 (joins)
    edge_a = np.array([0, 1, 0, 4, 4, 5, 6, 0])
    edge_b = np.array([2, 2, 3, 5, 6, 7, 7, 1])
    post = np.array([0.8, 0.7, 0.9, 0.9, 0.4, 0.6, 0.6, 0.95])
    pair, lone = split_pairs.third_members(edge_a, edge_b, post, np.array([0, 5]), np.array([1, 6]), 8)
    assert sorted(zip(pair.tolist(), lone.tolist(), strict=True)) == [(0, 2), (1, 7)]
    # two lone drawings split from both members of one pair: the likelier (summed posterior) joins
    edge_a, edge_b = np.array([0, 1, 0, 1]), np.array([2, 2, 3, 3])
    post = np.array([0.6, 0.6, 0.9, 0.9])
    pair, lone = split_pairs.third_members(edge_a, edge_b, post, np.array([0]), np.array([1]), 4)
    assert (pair.tolist(), lone.tolist()) == ([0], [3])


@pytest.mark.parametrize("thirds", [False, True])
def test_a_three_drawing_split_joins_as_one_cluster_with_thirds(thirds: bool) -> None:
    # one 10 px object drawn by all three annotators, no two linked; the one-to-one join takes two
    table = _table([0, 0, 0], [0, 1, 2])
    extents = np.array([[10, 10, 20, 20], [11, 12, 21, 22], [13, 9, 23, 19]], dtype=np.float64)
    sizes = np.full(3, 10.0)
    v = np.array([4.0, 36.0, 225.0])
    variance = lambda s: np.broadcast_to(v, (s.size, 3))  # noqa: E731
    offsets = SplitOffsets(
        share=np.full(3, 0.5), scale=np.ones(3), pair_var=np.full(3, 40.0), extra=np.zeros(3), spread=np.ones(3)
    )
    cand = lone_candidates(table, extents, sizes, variance)
    hit_at = lambda spread2: 1.0 - np.sqrt(spread2)  # noqa: E731
    done = join_split_pairs(
        table, extents, sizes, np.zeros(3, dtype=np.int64), cand, offsets, variance, hit_at, thirds=thirds
    )
    if not thirds:
        assert done.n_joined == 1 and len(done.table) == 2
        return
    assert done.n_joined == 2 and len(done.table) == 1
    assert done.table.present.tolist() == [[True, True, True]]
    assert done.extents[0] == pytest.approx(extents.mean(axis=0))
    # the fusion of all three drawings: 1 / (1/4 + 1/36 + 1/225) px^2 at the members' rms size
    assert done.hit[0] == pytest.approx(1.0 - np.sqrt(1.0 / (1 / 4 + 1 / 36 + 1 / 225) / 100.0))


def test_without_extra_keeps_the_mixture_and_zeroes_the_extra_variance() -> None:
    offsets = SplitOffsets(
        share=np.full(3, 0.5), scale=np.full(3, 2.0), pair_var=np.full(3, 40.0), extra=np.array([16.6, 7.0, 19.4]),
        spread=np.ones(3),
    )
    plain = offsets.without_extra()
    assert plain.extra.tolist() == [0.0, 0.0, 0.0]
    pair, u = np.array([0, 1, 2]), np.array([1.0, 4.0, 30.0])
    assert plain.posterior(pair, u).tolist() == offsets.posterior(pair, u).tolist()


# ---------------------------------------------------------------------------------------------
# generated jobs with a hidden truth


def _box(frame: int, xyxy: list[float]) -> Shape:
    return Shape(type=ShapeType.RECTANGLE, frame=frame, label_id=1, points=np.asarray(xyxy, dtype=np.float64))


def _plant(g: Generated, frame: int, per_annotator: dict[str, list[float]]) -> Generated:
    """``g`` with one box per named annotator added on ``frame``."""
    replicas = {
        name: JobAnnotations(shapes=(*ann.shapes, _box(frame, per_annotator[name]))) if name in per_annotator else ann
        for name, ann in g.replicas.items()
    }
    return dataclasses.replace(g, replicas=replicas)


def _empty_spot(g: Generated, frame: int, reach: float = 40.0) -> tuple[float, float]:
    """Top-left corner of a ``reach`` px square of ``frame`` that no truth or replica box touches."""
    boxes = np.asarray([s.points for ann in (g.truth, *g.replicas.values()) for s in ann.shapes if s.frame == frame])
    for y in np.arange(10.0, 700.0 - reach, reach):
        for x in np.arange(10.0, 1270.0 - reach, reach):
            region = np.repeat([[x - reach, y - reach, x + 2 * reach, y + 2 * reach]], len(boxes), axis=0)
            if box_iou_pairs(boxes, region).max() == 0.0:
                return float(x), float(y)
    raise AssertionError(f"frame {frame} has no empty spot")


def _merged_near(merged: JobAnnotations, frame: int, xyxy: list[float]) -> float:
    boxes = [s.points for s in merged.shapes if s.frame == frame and s.type == ShapeType.RECTANGLE]
    if not boxes:
        return 0.0
    return float(box_iou_pairs(np.asarray(boxes), np.repeat([xyxy], len(boxes), axis=0)).max())


def test_a_planted_split_pair_is_joined_and_kept_and_a_sloppy_lone_box_dropped() -> None:
    g = generate(preset_scenario("precise-moderate-sloppy", "rectangle", frames=40, seed=0))
    # an empty spot of frame 3: a 12 px object, the precise box 1 px off, the moderate one 6 px off
    # (their IoU is under the weak link's threshold: two lone clusters)
    x, y = _empty_spot(g, 3)
    object_box = [x, y, x + 12, y + 12]
    precise_box, moderate_box = [x, y + 1, x + 12, y + 12], [x + 6, y + 5, x + 18, y + 18]
    g = _plant(g, 3, {"precise": precise_box, "moderate": moderate_box})
    assert box_iou_pairs(np.array([precise_box]), np.array([moderate_box]))[0] < SETTINGS.weak_thr
    # and a lone sloppy 9 px box on an empty spot of frame 5
    x, y = _empty_spot(g, 5)
    sloppy_box = [x, y, x + 9, y + 9]
    g = _plant(g, 5, {"sloppy": sloppy_box})

    merged = engine.score_replicas(g.replicas, g.labels, g.meta, SETTINGS).merged
    # kept, and placed by the precise box (inverse-variance fusion)
    assert _merged_near(merged, 3, object_box) > 0.6
    assert _merged_near(merged, 3, precise_box) > _merged_near(merged, 3, moderate_box)
    assert _merged_near(merged, 5, sloppy_box) == 0.0


@pytest.mark.parametrize(("kind", "seed"), [("rectangle", 1), ("polygon", 3)])
def test_split_pairs_find_the_small_objects_of_a_precise_annotator(
    kind: str, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    g = generate(preset_scenario("precise-moderate-sloppy", kind, frames=30, seed=seed))  # type: ignore[arg-type]
    params = params_for(SETTINGS, g.meta)
    small = np.array(
        [np.sqrt(np.prod(np.ptp(np.asarray(s.points).reshape(-1, 2), axis=0))) < 16 for s in g.truth.shapes]
    )
    if kind != "rectangle":
        small = np.array([s.mask is None and s.points.size > 0 for s in g.truth.shapes]) & small
    joined = truth_scores(engine.score_replicas(g.replicas, g.labels, g.meta, SETTINGS).merged, g.truth, params=params)
    monkeypatch.setattr(split_pairs, "MIN_CANDIDATES", 10**9)  # no annotator pair fitted: nothing joins
    alone = truth_scores(engine.score_replicas(g.replicas, g.labels, g.meta, SETTINGS).merged, g.truth, params=params)
    found_small = lambda t: int(np.isfinite(t.truth_iou[small]).sum())  # noqa: E731
    # the keep's size-aware existence reads most unjoined lone precise boxes as real too (small
    # objects found, rectangles seed 1: 134 joined, 130 alone; 108 alone under the per-size-group
    # capture-recapture keep; polygons seed 3: 106 / 77); the joins still find more and raise F1
    assert found_small(joined) > found_small(alone), (found_small(joined), found_small(alone))
    assert joined.f1 > alone.f1
    # found more, at a small cost in precision (polygons, seed 3, with the truncation-corrected noise
    # fit: 0.950 -> 0.894, recall 0.750 -> 0.829, F1 0.838 -> 0.860)
    assert joined.precision >= alone.precision - 0.06


@pytest.mark.parametrize(("preset", "seed"), [("precise-moderate-sloppy", 1), ("five-two-sloppy", 2)])
def test_split_pairs_of_skeletons_are_joined_and_raise_merged_f1(
    preset: str, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # keypoint families: the lone skeletons' bounding boxes under the fitted keypoint noise, the
    # split prior tied to the keypoint model's chance of a non-link at the size
    g = generate(preset_scenario(preset, "skeleton", frames=30, seed=seed))
    params = params_for(SETTINGS, g.meta)
    joined = truth_scores(engine.score_replicas(g.replicas, g.labels, g.meta, SETTINGS).merged, g.truth, params=params)
    monkeypatch.setattr(split_pairs, "MIN_CANDIDATES", 10**9)  # no annotator pair fitted: nothing joins
    alone = truth_scores(engine.score_replicas(g.replicas, g.labels, g.meta, SETTINGS).merged, g.truth, params=params)
    assert joined.recall > alone.recall, (joined.recall, alone.recall)
    if preset == "precise-moderate-sloppy":
        assert joined.f1 > alone.f1 + 0.01, (joined.f1, alone.f1)
    else:
        # five annotators: a real object is rarely lone in all; the join's recall gain is paid in
        # precision (bench, 8 seeds: merged F1 minus the best annotator's -0.016 either way)
        assert joined.f1 >= alone.f1 - 0.01, (joined.f1, alone.f1)


# ---------------------------------------------------------------------------------------------
# split clusters (consensus.split_clusters): two clusters of two or more members, one object


def _group_table(frame_pos: list[int], groups: list[list[int]], n_annot: int = 5) -> ClusterTable:
    members = np.full((len(frame_pos), n_annot), -1, dtype=np.int64)
    for k, group in enumerate(groups):
        members[k, group] = 10 * k + np.asarray(group)
    sim = np.full((len(frame_pos), n_annot * (n_annot - 1) // 2), np.nan)
    for k, group in enumerate(groups):
        for p, (r, s) in enumerate(annotator_pairs(n_annot)):
            if r in group and s in group:
                sim[k, p] = 0.8
    return ClusterTable(np.asarray(frame_pos, dtype=np.int64), members, sim)


def test_cluster_candidates_are_disjoint_clusters_of_two_or_more_with_the_likeliest_cross_link() -> None:
    rng = np.random.default_rng(7)
    n = 60
    frame_pos = sorted(rng.integers(0, 5, n).tolist())
    groups = [sorted(rng.choice(5, int(rng.integers(1, 4)), replace=False).tolist()) for _ in range(n)]
    table = _group_table(frame_pos, groups)
    xy = rng.uniform(0, 200, (n, 2))
    side = rng.uniform(10, 60, (n, 1))
    extents, sizes = np.hstack([xy, xy + side]), side[:, 0]
    v = np.array([4.0, 36.0, 36.0, 225.0, 225.0])
    variance = lambda s: np.broadcast_to(v, (s.size, 5))  # noqa: E731
    pair_chance = rng.uniform(0.01, 1.0, (5, 5))
    non_link = lambda size, r, s: pair_chance[r, s] * np.ones(size.size)  # noqa: E731
    cand = cluster_candidates(table, extents, sizes, variance, non_link)
    want = {}
    for i in range(n):
        for j in range(i + 1, n):
            a, b = set(groups[i]), set(groups[j])
            if frame_pos[i] != frame_pos[j] or a & b or len(a) < 2 or len(b) < 2:
                continue
            var = sum(v[r] for r in a) / len(a) ** 2 + sum(v[r] for r in b) / len(b) ** 2
            u = float(((extents[i] - extents[j]) ** 2).sum() / var)
            if u <= split_pairs.SEARCH_U:
                want[i, j] = (u, min(pair_chance[min(r, s), max(r, s)] for r in a for s in b))
    got = {
        (int(a), int(b)): (float(u), float(m))
        for a, b, u, m in zip(cand.a, cand.b, cand.u, cand.non_link, strict=True)  # type: ignore[arg-type]
    }
    assert got.keys() == want.keys() and want
    for key, (u, m) in want.items():
        assert got[key] == pytest.approx((u, m))


def test_cluster_candidates_pair_a_lone_drawing_with_a_cluster_of_every_other_annotator() -> None:
    # three annotators, frame 0: lone 0 beside cluster {1, 2}, lone 1, cluster {0, 1}; frame 1: lone 2
    # beside cluster {0, 1}
    table = _group_table([0, 0, 0, 0, 1, 1], [[0], [1, 2], [1], [0, 1], [2], [0, 1]], n_annot=3)
    extents = np.array(
        [[10, 10, 40, 40], [12, 11, 42, 41], [11, 12, 41, 42], [9, 10, 39, 40], [10, 10, 40, 40], [11, 10, 41, 40]],
        dtype=np.float64,
    )
    sizes = np.full(6, 30.0)
    variance = lambda s: np.broadcast_to(np.array([4.0, 36.0, 225.0]), (s.size, 3))  # noqa: E731
    non_link = lambda size, r, s: np.full(size.size, 0.1 * (r + 1) + 0.01 * s)  # noqa: E731
    cand = cluster_candidates(table, extents, sizes, variance, non_link)
    got = sorted(zip(cand.a.tolist(), cand.b.tolist(), cand.pair.tolist(), strict=True))
    # lone + lone (0, 2) is the split pairs' business; {1, 2} + {0, 1} and lone 1 + {0, 1} share an annotator
    assert got == [(0, 1, split_clusters.LONE_POOL), (4, 5, split_clusters.LONE_POOL)]
    # the smallest cross pair's non-link chance: lone 0 with 1 and 2 -> pair (0, 1)
    assert cand.non_link is not None and cand.non_link[0] == pytest.approx(0.11)
    # extent families (no non-link chance): two clusters of two or more only, none with three annotators
    assert cluster_candidates(table, extents, sizes, variance, None).u.size == 0


def test_a_split_cluster_is_joined_with_its_members_and_links_and_a_likely_link_is_not() -> None:
    # frame 0: {0, 1} and {2, 3, 4} 2 px apart at 20 px (the likeliest cross link fails half the
    # time: a split), and the same two groups on frame 1 at 120 px (they would have linked)
    table = _group_table([0, 0, 1, 1], [[0, 1], [2, 3, 4], [0, 1], [2, 3, 4]])
    extents = np.array([[0, 0, 20, 20], [2, 0, 22, 20], [0, 0, 120, 120], [2, 0, 122, 120]], dtype=np.float64)
    sizes = np.array([20.0, 20.0, 120.0, 120.0])
    variance = lambda s: np.broadcast_to(np.array([4.0, 36.0, 36.0, 225.0, 225.0]), (s.size, 5))  # noqa: E731
    non_link = lambda size, r, s: np.where(size < 50, 0.5, 1e-3)  # noqa: E731
    cand = cluster_candidates(table, extents, sizes, variance, non_link)
    assert cand.a.tolist() == [0, 2] and cand.b.tolist() == [1, 3]
    offsets = SplitOffsets(
        share=np.array([0.9, np.nan, np.nan]),
        scale=np.array([1.0, np.nan, np.nan]),
        pair_var=np.full(3, np.nan),
        extra=np.full(5, np.nan),
        spread=np.array([0.0, np.nan, np.nan]),
    )
    hit = np.array([np.nan, 0.7, 0.4, np.nan])
    done = join_split_clusters(table, extents, sizes, np.zeros(4, dtype=np.int64), hit, cand, offsets)
    assert done.n_joined == 1
    assert done.table.members.tolist() == [[0, 1, 12, 13, 14], [20, 21, -1, -1, -1], [-1, -1, 32, 33, 34]]
    # both parts' links, none across
    assert np.isfinite(done.table.pair_sim[0]).sum() == 1 + 3
    assert done.extents[0].tolist() == pytest.approx([1.2, 0.0, 21.2, 20.0])  # member-weighted
    # a joined cluster's keep reads P(real) alone; the others keep their hit
    assert np.isnan(done.hit[0]) and done.hit[1] == 0.4 and np.isnan(done.hit[2])


def _duplicates(merged: JobAnnotations, truth: JobAnnotations, params: SimilarityParams) -> int:
    """Merged objects that match no truth object while their likeliest truth object (OKS >= 0.05)
    is matched by another merged object: one object merged twice."""
    out = 0
    for frame in {s.frame for s in merged.shapes}:
        p = [s for s in merged.shapes if s.frame == frame]
        t = [s for s in truth.shapes if s.frame == frame]
        if not t:
            continue
        sim = similarity_matrix(p, t, params)
        rows, cols = linear_sum_assignment(np.where(sim >= SETTINGS.iou_thr, sim, 0.0), maximize=True)
        ok = sim[rows, cols] >= SETTINGS.iou_thr
        matched_p, matched_t = set(rows[ok].tolist()), set(cols[ok].tolist())
        for i in set(range(len(p))) - matched_p:
            j = int(np.argmax(sim[i]))
            out += int(sim[i, j] >= 0.05 and j in matched_t)
    return out


@pytest.mark.parametrize("seed", [1, 5])
def test_split_clusters_of_five_annotators_skeletons_are_joined_and_raise_merged_precision(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the two sloppy annotators' drawings of an object link to each other (and maybe a moderate
    # one's) but not to the precise one's cluster: one object, two clusters, both kept
    g = generate(preset_scenario("five-two-sloppy", "skeleton", frames=30, seed=seed))
    params = params_for(SETTINGS, g.meta)
    merged = engine.score_replicas(g.replicas, g.labels, g.meta, SETTINGS).merged
    joined = truth_scores(merged, g.truth, params=params)
    monkeypatch.setattr(engine, "_join_split_clusters", lambda stored, *_: (stored, {}))
    merged_alone = engine.score_replicas(g.replicas, g.labels, g.meta, SETTINGS).merged
    alone = truth_scores(merged_alone, g.truth, params=params)
    assert _duplicates(merged, g.truth, params) < 0.6 * _duplicates(merged_alone, g.truth, params)
    assert joined.precision > alone.precision + 0.005, (joined.precision, alone.precision)
    assert joined.f1 > alone.f1 + 0.005, (joined.f1, alone.f1)


def _skeleton(like: Shape, frame: int, keypoints: np.ndarray) -> Shape:
    """A skeleton with ``like``'s labels and ``keypoints (K, 2)`` px on ``frame``."""
    elements = tuple(
        dataclasses.replace(e, frame=frame, points=xy[None, :].copy())
        for e, xy in zip(like.elements, keypoints, strict=True)
    )
    return dataclasses.replace(like, frame=frame, elements=elements)


def _blank_and_plant(g: Generated, frame: int, drawn: dict[str, list[np.ndarray]]) -> Generated:
    """``g`` with ``frame`` emptied in the truth and every replica, then the skeletons ``drawn[name]``
    (keypoints (K, 2) each) added for each named annotator."""
    like = g.truth.shapes[0]

    def redo(ann: JobAnnotations, name: str | None) -> JobAnnotations:
        kept = tuple(s for s in ann.shapes if s.frame != frame)
        return JobAnnotations(shapes=(*kept, *(_skeleton(like, frame, kp) for kp in drawn.get(name or "", []))))

    return dataclasses.replace(
        g, truth=redo(g.truth, None), replicas={name: redo(ann, name) for name, ann in g.replicas.items()}
    )


def test_a_planted_split_cluster_is_joined_and_two_close_distinct_objects_are_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    g = generate(preset_scenario("five-two-sloppy", "skeleton", frames=30, seed=2))
    params = params_for(SETTINGS, g.meta)
    unit = np.array([[0.5, 0.0], [0.0, 0.4], [1.0, 0.4], [0.2, 1.0], [0.8, 1.0]])
    # a 24 px object: {precise, moderate1} on it, {moderate2, sloppy1, sloppy2} 8 px off (no link)
    small = 100.0 + 24.0 * unit
    small_off = small + np.array([8.0, 0.0])
    # two distinct 120 px objects 40 px apart, one drawn by each group
    large = np.array([600.0, 200.0]) + 120.0 * unit
    large_other = large + np.array([40.0, 0.0])
    first, second = ("precise", "moderate1"), ("moderate2", "sloppy1", "sloppy2")
    drawn = {n: [small, large] for n in first} | {n: [small_off, large_other] for n in second}
    g = _blank_and_plant(g, 3, drawn)
    like = g.truth.shapes[0]
    oks = similarity_matrix(
        [_skeleton(like, 3, small), _skeleton(like, 3, large)],
        [_skeleton(like, 3, small_off), _skeleton(like, 3, large_other)],
        params,
    )
    assert SETTINGS.weak_thr is not None and oks[0, 0] < SETTINGS.weak_thr and oks[1, 1] < SETTINGS.weak_thr

    joined: list[split_clusters.Joined] = []
    real = engine.join_split_clusters

    def spy(*args: object, **kwargs: object) -> split_clusters.Joined:
        done = real(*args, **kwargs)  # type: ignore[arg-type]
        joined.append(done)
        return done

    monkeypatch.setattr(engine, "join_split_clusters", spy)
    engine.score_replicas(g.replicas, g.labels, g.meta, SETTINGS)
    on_frame = [(d.table.present[k], d.extents[k]) for d in joined for k in np.flatnonzero(d.table.frame_pos == 3)]
    whole = [extent for present, extent in on_frame if present.all()]
    # the small object's two clusters are one, the large objects' stay two
    assert len(whole) == 1 and np.abs(whole[0][:2] - small.min(axis=0)).max() < 8.0, whole
    assert sum(present.sum() == 2 for present, _ in on_frame) == 1
    assert sum(present.sum() == 3 for present, _ in on_frame) == 1


@pytest.mark.parametrize("seed", [1, 7])
def test_precise_moderate_sloppy_skeletons_merge_at_least_as_well_as_the_precise_annotator(seed: int) -> None:
    # the three-drawing splits joined, the lone drawings beside the others' cluster joined, the joined
    # hit from the keypoint fit: before, the precise annotator's small skeletons were left lone
    # beside the noisier two's pair or cluster and dropped (merged minus precise F1 -0.006 / -0.008)
    g = generate(preset_scenario("precise-moderate-sloppy", "skeleton", frames=40, seed=seed))
    params = params_for(SETTINGS, g.meta)
    merged = truth_scores(engine.score_replicas(g.replicas, g.labels, g.meta, SETTINGS).merged, g.truth, params=params)
    precise = truth_scores(g.replicas["precise"], g.truth, params=params)
    assert merged.f1 >= precise.f1, (merged.f1, precise.f1)


def test_unlinked_beside_linked_marks_a_joined_drawing_beside_a_linked_cluster_only() -> None:
    nan = np.nan
    # pairs (0, 1), (0, 2), (1, 2): cluster 0 links 0-1 with 2 joined beside them; cluster 1 a
    # joined split group (no links); cluster 2 a chain 0-1-2; cluster 3 a lone drawing
    pair_sim = np.array([[0.8, nan, nan], [nan, nan, nan], [0.8, nan, 0.6], [nan, nan, nan]])
    got = fuse.unlinked_beside_linked(pair_sim, 3)
    assert got.tolist() == [[False, False, True], [False] * 3, [False] * 3, [False] * 3]


def test_the_fusion_reads_which_families_have_a_lone_pool_scale_from_the_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # ``points`` fit the lone pool too (keypoint families): their fusion weighs a lone drawing joined
    # beside the others at its scale, as skeletons', read off AnnotatorModel.unlinked_scale (not
    # the family's name)
    from consensus_generator import PRESETS
    from point_fusion import generate_job

    scaled: list[tuple[str, bool]] = []
    unlinked_weights = fuse.ChunkMerger._unlinked_weights

    def spy(self: fuse.ChunkMerger, family: str, weight: np.ndarray, pair_sim: np.ndarray) -> np.ndarray:
        out = unlinked_weights(self, family, weight, pair_sim)
        scaled.append((family, bool((out != weight).any())))
        return out

    monkeypatch.setattr(fuse.ChunkMerger, "_unlinked_weights", spy)
    g = generate_job("points", PRESETS["precise-moderate-sloppy"], 1)
    engine.score_replicas(g.replicas, g.labels, g.meta, SETTINGS)
    assert ("points", True) in scaled

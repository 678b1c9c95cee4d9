"""Candidates, the decorator, YAML heuristics, applying packs (failing LFs skipped), analysis, label model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cvat_ext.errors import AnnotationFormatError, ConfigError
from cvat_ext.labeling_functions import ABSTAIN, Candidates, labeling_function, vote
from cvat_ext.labeling_functions.analysis import analyse, format_table
from cvat_ext.labeling_functions.apply import apply_lfs, load_lfs
from cvat_ext.labeling_functions.heuristics import load_heuristics
from cvat_ext.labeling_functions.label_model import fit_label_model, majority_vote

PACKS = Path(__file__).resolve().parents[2] / "cvat_ext" / "labeling_functions" / "packs"
LABELS = ["vehicle", "person", "sign"]


def table() -> Candidates:
    """Five hand-made candidates on a 1000x500 frame."""
    return Candidates(
        frame=[0, 0, 1, 1, 2],
        xyxy=[[0, 300, 200, 400], [500, 100, 530, 200], [900, 10, 920, 30], [0, 0, 10, 10], [100, 100, 300, 300]],
        image_wh=[1000, 500],
        shape_area=[20000, 1800, 314, 100, 20000],
        det_label=[1, 2, 3, -1, 0],
        det_names=("bus", "car", "person", "sign"),
        det_score=[0.9, 0.8, np.nan, 0.2, 0.6],
    )


def test_features_are_vectorised_columns() -> None:
    c = table()
    np.testing.assert_allclose(c.feature("area"), [20000, 3000, 400, 100, 40000])
    np.testing.assert_allclose(c.feature("aspect"), [2.0, 0.3, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(c.feature("fill"), [1.0, 0.6, 0.785, 1.0, 0.5])
    np.testing.assert_allclose(c.feature("cy"), [0.7, 0.3, 0.04, 0.01, 0.4])
    assert np.isnan(c.feature("brightness")).all()
    assert c.det_is("car", "bus").tolist() == [True, False, False, False, True]
    with pytest.raises(KeyError, match="unknown feature 'colour'"):
        c.feature("colour")
    whole = Candidates.whole_images([0, 1], [640, 480])
    np.testing.assert_allclose(whole.feature("rel_area"), [1.0, 1.0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"xyxy": [[0, 0, 1]]}, r"expected xyxy shape \(N, 4\)"),
        ({"xyxy": 5.0}, r"expected xyxy shape \(N, 4\), got \(\)"),
        ({"xyxy": [0, 0, 1, 1]}, r"expected xyxy shape \(N, 4\), got \(4,\)"),
        ({"image_wh": [[1, 2, 3]]}, "image_wh shape"),
        ({"det_label": [5]}, "has no name"),
        ({"mean_rgb": [[1, 2]]}, r"mean_rgb shape \(1, 3\)"),
        ({"det_score": [0.1, 0.2]}, r"det_score shape \(1,\)"),
    ],
)
def test_candidates_validate_their_columns(kwargs: dict[str, object], message: str) -> None:
    base: dict[str, object] = {"frame": [0], "xyxy": [[0, 0, 1, 1]], "image_wh": [10, 10]}
    with pytest.raises(AnnotationFormatError, match=message):
        Candidates(**(base | kwargs))  # type: ignore[arg-type]


def test_the_vehicle_pack_labels_a_large_rectangle_vehicle() -> None:
    lfs = {lf.name: lf for lf in load_heuristics(PACKS / "vehicles.yaml")}
    votes = np.asarray(lfs["rectangular_and_large_is_vehicle"](table()))
    # only the first: rectangular (fill 1), large (20000 > 5000), aspect 2; the last fills 0.5
    assert votes.tolist() == [0, ABSTAIN, ABSTAIN, ABSTAIN, ABSTAIN]
    # candidate 1 is a "person" at 0.8; candidate 2's "sign" has no score (NaN fails the comparison)
    assert np.asarray(lfs["detector_says_person"](table())).tolist() == [ABSTAIN, 1, ABSTAIN, ABSTAIN, ABSTAIN]
    assert np.asarray(lfs["detector_says_car"](table())).tolist() == [0, ABSTAIN, ABSTAIN, ABSTAIN, 0]


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("labels: [a]\nfunctions: [{name: x, when: {size: {gt: 1}}, vote: a}]", "unknown feature 'size'"),
        ("labels: [a]\nfunctions: [{name: x, when: {area: {}}, vote: a}]", "needs at least one of"),
        ("labels: [a]\nfunctions: [{name: x, when: {area: {gt: 1}}, vote: b}]", "vote 'b' is not one of"),
        ("labels: [a]\nfunctions: [{name: x, when: {area: {gt: 1}}, vote: a, weight: 2}]", "functions.0.weight"),
        ("labels: [a]\nfunctions: [{name: x, when: {det_label: {gt: 1}}, vote: a}]", "det_label takes in"),
        ("labels: [a]\nfunctions: [{name: x, when: {area: {in: [car]}}, vote: a}]", "apply to det_label only"),
        ("labels: [a, a]\nfunctions: [{name: x, when: {area: {gt: 1}}, vote: a}]", "labels must be unique"),
        (
            "labels: [a]\nfunctions: [{name: x, when: {area: {gt: 1}}, vote: a},\n"
            "  {name: x, when: {area: {gt: 1}}, vote: a}]",
            "function names must be unique",
        ),
        ("labels: [a\n", "cannot read heuristics"),
        ("labels: [a]\nfunctions: [{name: x, when: {hue_fraction: {ge: 0.5}}, vote: a}]", "needs hue: \\[lo, hi\\]"),
        ("labels: [a]\nfunctions: [{name: x, when: {hsv_s: {hue: [0, 30], ge: 1}}, vote: a}]", "hue_fraction only"),
        ("labels: [a]\ntarget: tags\nfunctions: [{name: x, when: {area: {gt: 1}}, vote: a}]", "target"),
    ],
)
def test_bad_heuristics_name_file_and_key(tmp_path: Path, yaml_text: str, message: str) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=message) as err:
        load_heuristics(path)
    assert str(path) in str(err.value)


def test_an_lf_that_raises_is_reported_and_skipped(tmp_path: Path) -> None:
    @labeling_function(labels=LABELS)
    def wide(c: Candidates) -> np.ndarray:
        return vote(c, c.feature("aspect") > 1.5, "vehicle")

    @labeling_function(labels=LABELS)
    def broken(c: Candidates) -> np.ndarray:
        raise ZeroDivisionError("oops")

    @labeling_function(labels=LABELS)
    def wrong_shape(c: Candidates) -> np.ndarray:
        return np.zeros(3, dtype=np.int64)

    @labeling_function(labels=LABELS)
    def out_of_range(c: Candidates) -> np.ndarray:
        return np.full(len(c), 7)

    @labeling_function(labels=LABELS)
    def floats(c: Candidates) -> np.ndarray:
        return np.zeros(len(c))

    run = apply_lfs([broken, wide, wrong_shape, out_of_range, floats], table())
    assert [f.name for f in run.failures] == ["broken", "wrong_shape", "out_of_range", "floats"]
    assert "ZeroDivisionError: oops" in run.failures[0].reason
    assert "shape (3,)" in run.failures[1].reason and "outside -1..2" in run.failures[2].reason
    assert run.matrix[:, 1].tolist() == [0, -1, -1, -1, -1]
    assert (run.matrix[:, [0, 2, 3, 4]] == -1).all()


def test_packs_load_and_check_their_label_space(tmp_path: Path) -> None:
    lfs = load_lfs([PACKS / "vehicles.yaml", PACKS / "street_python.py"])
    assert len(lfs) == 11 and {lf.source for lf in lfs} == {"yaml:vehicles.yaml", "python:street_python.py"}
    other = tmp_path / "other.yaml"
    other.write_text("labels: [cat]\nfunctions: [{name: c, when: {area: {gt: 1}}, vote: cat}]\n")
    with pytest.raises(ConfigError, match="label space"):
        apply_lfs(load_lfs([PACKS / "vehicles.yaml", other]), table())
    with pytest.raises(ConfigError, match="duplicate names"):
        load_lfs([PACKS / "vehicles.yaml", PACKS / "vehicles.yaml"])
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('no')\n")
    with pytest.raises(ConfigError, match=r"broken\.py: import failed"):
        load_lfs([broken])
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    with pytest.raises(ConfigError, match="no @labeling_function"):
        load_lfs([empty])


def test_analysis_table_on_a_known_matrix() -> None:
    matrix = np.array([[0, 0, -1], [0, 1, -1], [-1, 1, 1], [-1, -1, -1]])
    gold = np.array([0, 1, 1, -1])
    stats = analyse(matrix, ["a", "b", "c"], LABELS, gold)
    assert [round(s.coverage, 2) for s in stats] == [0.5, 0.75, 0.25]
    assert [round(s.overlap, 2) for s in stats] == [0.5, 0.75, 0.25]
    assert [round(s.conflict, 2) for s in stats] == [0.25, 0.25, 0.0]
    assert [s.accuracy for s in stats] == [0.5, 1.0, 1.0] and [s.votes_gold for s in stats] == [2, 3, 1]
    assert stats[1].labels == ("vehicle", "person")
    text = format_table(stats)
    assert text.splitlines()[2].startswith("a ") and "0.500" in text
    assert np.isnan(analyse(matrix, ["a", "b", "c"], LABELS)[0].accuracy)


def generated_votes(n: int, seed: int, n_lfs: int = 12) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Votes of LFs with known accuracies (0.55..0.95) and coverages over 3 imbalanced labels."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    accuracy = rng.uniform(0.55, 0.95, n_lfs)
    votes = np.full((n, n_lfs), -1, dtype=np.int64)
    for j in range(n_lfs):
        on = rng.random(n) < rng.uniform(0.1, 0.6)
        right = rng.random(n) < accuracy[j]
        votes[on, j] = np.where(right, truth, (truth + rng.integers(1, 3, n)) % 3)[on]
    return votes, truth, accuracy


@pytest.mark.parametrize("seed", range(4))
def test_label_model_beats_majority_vote_and_recovers_lf_accuracy(seed: int) -> None:
    votes, truth, accuracy = generated_votes(8000, seed)
    covered = (votes >= 0).any(axis=1)
    model = fit_label_model(votes, 3)
    lm = (model.label[covered] == truth[covered]).mean()
    mv = (majority_vote(votes, 3, seed=seed)[covered] == truth[covered]).mean()
    assert lm > mv + 0.005, (lm, mv)
    np.testing.assert_allclose(model.lf_accuracy, accuracy, atol=0.05)
    assert (model.label[~covered] == -1).all()
    np.testing.assert_allclose(model.proba.sum(axis=1), 1.0)


def test_label_model_edge_cases() -> None:
    none = fit_label_model(np.full((4, 2), -1), 3)
    assert (none.label == -1).all() and np.isnan(none.lf_accuracy).all()
    # single-polarity LFs (each only ever votes one label) keep their labels
    one = fit_label_model(np.array([[2, -1, -1], [2, 2, -1], [-1, -1, -1], [-1, -1, 0], [-1, -1, 0]]), 3)
    assert one.label.tolist() == [2, 2, -1, 0, 0] and one.confidence[1] > one.confidence[0] > 0.5
    assert majority_vote(np.array([[0, 1, 1], [-1, -1, -1]]), 3).tolist() == [1, -1]

"""Every consensus engine setting is reachable from the sidecar's settings (``consensus.engine``:
the one :class:`ConsensusSettings`), from YAML and from the environment, and reaches the engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from cvat_ext.annotations.model import JobAnnotations
from cvat_ext.consensus.settings import ConsensusSettings
from cvat_ext.errors import ConfigError
from cvat_ext.sidecar import engines
from cvat_ext.sidecar.config import SidecarSettings, load_settings
from cvat_ext.sidecar.interface import ReplicaInput
from tests.consensus.helpers import CAR, box, labels, meta

CVAT = {"url": "http://cvat:8080", "access_token": "tok-abc"}

#: a value other than the default for every engine field (a new field must be added here)
NON_DEFAULT: dict[str, Any] = {
    "iou_thr": 0.3,
    "quorum": 2,
    "method": "staple",
    "match_across_labels": False,
    "estimate_reliability": False,
    "weights": {"job11": 2.0, "job12": 0.5},
    "rejoin_share": 0.25,
    "low_overlap_thr": 0.6,
    "oks_sigma": 0.05,
    "keypoint_sigmas": {"pose": [0.1, 0.2, 0.3]},
    "line_thickness": 0.02,
    "mask_vote_thr": 0.4,
    "chunk_frames": 64,
    "dawid_skene_iters": 5,
}


def _env_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def test_the_table_covers_every_engine_field() -> None:
    assert set(NON_DEFAULT) == set(ConsensusSettings.model_fields)
    defaults = ConsensusSettings()
    assert all(getattr(defaults, k) != v for k, v in NON_DEFAULT.items())


def test_defaults_are_the_engine_defaults() -> None:
    cfg = load_settings(None, overrides={"cvat": CVAT})
    assert cfg.consensus.engine == ConsensusSettings()
    assert engines.ConsensusEngineRunner(cfg.consensus.engine).settings == ConsensusSettings()


@pytest.mark.parametrize(("name", "value"), sorted(NON_DEFAULT.items()))
def test_each_field_from_the_environment(monkeypatch: pytest.MonkeyPatch, name: str, value: Any) -> None:
    monkeypatch.setenv(f"CVAT_EXT_CONSENSUS__ENGINE__{name.upper()}", _env_text(value))
    cfg = load_settings(None, overrides={"cvat": CVAT})
    got = getattr(cfg.consensus.engine, name)
    assert got == value or (isinstance(got, tuple) and list(got) == value)
    runner = engines.consensus_runner(cfg)
    assert isinstance(runner, engines.ConsensusEngineRunner) and runner.settings == cfg.consensus.engine


def test_keypoint_sigmas_word_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CVAT_EXT_CONSENSUS__ENGINE__KEYPOINT_SIGMAS", '"estimate"')
    assert load_settings(None, overrides={"cvat": CVAT}).consensus.engine.keypoint_sigmas == "estimate"


def test_all_fields_from_yaml_and_back(tmp_path: Path) -> None:
    path = tmp_path / "sidecar.yaml"
    path.write_text(yaml.safe_dump({"cvat": CVAT, "consensus": {"min_agreement": 0.8, "engine": NON_DEFAULT}}))
    cfg = load_settings(path)
    assert cfg.consensus.engine == ConsensusSettings(**NON_DEFAULT)
    assert cfg.consensus.min_agreement == 0.8
    # round trip: what check-config prints (JSON) loads back to the same settings
    dumped = json.loads(cfg.model_dump_json())["consensus"]
    again = tmp_path / "again.yaml"
    again.write_text(yaml.safe_dump({"cvat": CVAT, "consensus": dumped}))
    assert load_settings(again).consensus == cfg.consensus


def test_environment_beats_the_yaml_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "sidecar.yaml"
    path.write_text(yaml.safe_dump({"cvat": CVAT, "consensus": {"engine": {"quorum": 3, "method": "nearest"}}}))
    monkeypatch.setenv("CVAT_EXT_CONSENSUS__ENGINE__QUORUM", "2")
    engine = load_settings(path).consensus.engine
    assert (engine.quorum, engine.method) == (2, "nearest")


@pytest.mark.parametrize(
    ("consensus", "expected"),
    [
        ({"iou_thr": 0.4}, "consensus: Value error, iou_thr: engine settings live under consensus.engine"),
        ({"quorum": 2, "method": "wbf"}, "method, quorum: engine settings live under consensus.engine"),
        ({"engine": {"method": "median"}}, "consensus.engine.method"),
        ({"engine": {"quorum": 0}}, "consensus.engine.quorum"),
        ({"engine": {"quorom": 2}}, "consensus.engine.quorom: Extra inputs are not permitted"),
    ],
)
def test_bad_engine_settings_are_named(consensus: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError, match="invalid sidecar settings") as err:
        load_settings(None, overrides={"cvat": CVAT, "consensus": consensus})
    assert expected in str(err.value)


def _replicas() -> list[ReplicaInput]:
    """Three replicas: two cars everyone drew, one car only the first annotator drew."""
    shared = [box(0, CAR, (10, 10, 60, 60)), box(0, CAR, (200, 200, 260, 250))]
    lone = box(0, CAR, (400, 100, 450, 160))
    return [
        ReplicaInput(11, 1, JobAnnotations(shapes=(*shared, lone))),
        ReplicaInput(12, 2, JobAnnotations(shapes=tuple(shared))),
        ReplicaInput(13, 3, JobAnnotations(shapes=tuple(shared))),
    ]


@pytest.mark.parametrize(("quorum", "merged"), [(1, 3), (2, 2), (3, 2)])
def test_quorum_set_in_the_sidecar_reaches_the_merge(quorum: int, merged: int) -> None:
    cfg: SidecarSettings = load_settings(None, overrides={"cvat": CVAT, "consensus": {"engine": {"quorum": quorum}}})
    runner = engines.consensus_runner(cfg)
    assert runner is not None
    outcome = runner.score(10, _replicas(), labels(), meta(1))
    merged_ann = outcome.merged_annotations()
    assert merged_ann is not None and len(merged_ann.shapes) == merged

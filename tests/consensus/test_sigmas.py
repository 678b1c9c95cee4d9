"""Per-keypoint OKS sigmas in the consensus engine: default, given, estimated from replicas."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cvat_ext.consensus.engine import score_replicas
from cvat_ext.consensus.settings import ConsensusSettings
from cvat_ext.errors import ConfigError

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from consensus_generator import KEYPOINTS, MODERATE, Generated, Scenario, generate

#: keypoint noise, not in keypoint order, so that a recovered ordering is not a coincidence
KP_JITTER = (0.06, 0.01, 0.10, 0.03, 0.045)
CALM = tuple(dataclasses.replace(MODERATE, name=f"a{i}", jitter=0.004, flip_visibility_rate=0.0) for i in range(3))


def _skeletons(**kw: Any) -> Generated:
    return generate(Scenario(kind="skeleton", frames=30, objects_per_frame=10, seed=3, **kw))  # type: ignore[arg-type]


def test_estimated_sigmas_recover_the_keypoint_noise_ordering() -> None:
    g = _skeletons(annotators=CALM, keypoint_jitter=KP_JITTER)
    result = score_replicas(g.replicas, g.labels, g.meta, ConsensusSettings(keypoint_sigmas="estimate"))
    sigmas = np.array(result.keypoint_sigmas["pose"])
    assert sigmas.shape == (len(KEYPOINTS),)
    np.testing.assert_array_equal(np.argsort(sigmas), np.argsort(KP_JITTER))
    # the report carries them
    assert result.to_json()["keypoint_sigmas"]["pose"] == pytest.approx(sigmas.tolist(), abs=1e-6)


def test_estimate_is_a_no_op_without_skeletons() -> None:
    g = generate(Scenario(kind="rectangle", frames=20, objects_per_frame=10, seed=5))
    a = score_replicas(g.replicas, g.labels, g.meta, ConsensusSettings())
    b = score_replicas(g.replicas, g.labels, g.meta, ConsensusSettings(keypoint_sigmas="estimate"))
    assert a.to_json() == b.to_json()
    assert a.keypoint_sigmas == b.keypoint_sigmas == {}


def test_default_equals_explicit_default_sigmas() -> None:
    g = _skeletons()
    a = score_replicas(g.replicas, g.labels, g.meta, ConsensusSettings())
    b = score_replicas(g.replicas, g.labels, g.meta, ConsensusSettings(keypoint_sigmas={"pose": [0.09] * 5}))
    report_a, report_b = a.to_json(), b.to_json()  # NaN-free (None) and with every finding
    assert report_a.pop("keypoint_sigmas") == {}
    assert report_b.pop("keypoint_sigmas") == {"pose": [0.09] * 5}
    assert report_a == report_b
    assert b.keypoint_sigmas == {"pose": (0.09,) * 5}


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"pose": [0.1, 0.1]}, "skeleton 'pose' has 5 keypoints"),
        ({"car": [0.1]}, "'car' is not a skeleton label"),
    ],
)
def test_given_sigmas_are_checked_against_the_labels(table: dict[str, list[float]], message: str) -> None:
    g = _skeletons()
    with pytest.raises(ConfigError, match=message):
        score_replicas(g.replicas, g.labels, g.meta, ConsensusSettings(keypoint_sigmas=table))


def test_sigma_setting_rejects_non_positive_values() -> None:
    with pytest.raises(ConfigError, match="keypoint_sigmas"):
        ConsensusSettings.parse({"keypoint_sigmas": {"pose": [0.1, -0.2]}})
    with pytest.raises(ConfigError, match="keypoint_sigmas"):
        ConsensusSettings.parse({"keypoint_sigmas": "guess"})

"""The LF pre-label detector through nuclio_sdk.test.Platform (real nuclio Events) on a drawn street scene."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("nuclio_sdk")
pytest.importorskip("skimage")

import nuclio_sdk
import nuclio_sdk.test

from cvat_ext.errors import ConfigError
from cvat_ext.functions.dev.lint import lint_paths
from cvat_ext.functions.interface import LabelSpec
from cvat_ext.labeling_functions.prelabel import prelabel_function_from_env
from tests.functions.images import b64
from tests.functions.loading import SERVERLESS, function_module
from tests.privacy.photos import box_iou

RELPATH = "skimage/cvat_ext/lf-prelabel"


def street(seed: int) -> tuple[np.ndarray, dict[str, list[int]]]:
    """A 640x480 scene on a grey-green gradient: a wide low car, a tall person, a small high sign
    (uniform colours with mild noise); returns the image and each object's xyxy."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:480, 0:640]
    img = np.stack([90 + x // 16, 120 + y // 12, 90 + 0 * x], axis=-1).astype(np.int16)
    dx, dy = rng.integers(-20, 20, size=2)
    objects = {
        "vehicle": [60 + dx, 300 + dy, 300 + dx, 400 + dy],
        "person": [420 + dx, 180 + dy, 460 + dx, 330 + dy],
        "sign": [540 + dx, 60 + dy, 570 + dx, 90 + dy],
    }
    colours = {"vehicle": (200, 30, 30), "person": (30, 30, 160), "sign": (250, 250, 40)}
    for name, (x0, y0, x1, y1) in objects.items():
        img[y0:y1, x0:x1] = colours[name]
    img += rng.integers(-4, 5, size=img.shape, dtype=np.int16)
    return np.clip(img, 0, 255).astype(np.uint8), {k: [int(v) for v in b] for k, b in objects.items()}


def call(module: Any, body: dict[str, Any]) -> tuple[int, Any]:
    event = nuclio_sdk.Event(body=body, content_type="application/json", method="POST", path="/")
    response = nuclio_sdk.test.Platform().call_handler(module.handler, event)
    return response.status_code, json.loads(response.body)


def test_function_yaml_lints_clean() -> None:
    assert lint_paths([SERVERLESS / RELPATH / "nuclio" / "function.yaml"]) == []


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auto_annotation_labels_the_drawn_objects(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CVAT_EXT_LF_PACKS", raising=False)
    image, objects = street(seed)
    status, items = call(function_module(RELPATH), {"image": b64(image), "threshold": 0.5})
    assert status == 200, items
    found: dict[str, list[list[float]]] = {}
    assert not [item for item in items if item["type"] == "tag"]  # a green-grey scene: no scene tag fits
    for item in items:
        assert item["type"] == "rectangle" and 0.5 <= float(item["confidence"]) <= 1.0
        found.setdefault(item["label"], []).append(item["points"])
    for name, xyxy in objects.items():
        boxes = np.asarray(found.get(name, []), dtype=float).reshape(-1, 4)
        # a pre-label of the object's label covers it (region proposals may spill a little)
        assert len(boxes) and box_iou(np.asarray([xyxy], dtype=float), boxes).max() >= 0.5, (name, found)


def test_labels_must_be_the_pack_label_space(tmp_path: Path) -> None:
    wrong = [LabelSpec(name="car", id=0), LabelSpec(name="person", id=1), LabelSpec(name="sign", id=2)]
    with pytest.raises(ConfigError, match="label space"):
        prelabel_function_from_env(wrong, {})
    pack = tmp_path / "p.yaml"
    pack.write_text("labels: [car, person, sign]\nfunctions: [{name: big, when: {area: {gt: 10}}, vote: car}]\n")
    function = prelabel_function_from_env(wrong, {"CVAT_EXT_LF_PACKS": str(pack)})
    assert function.objects is not None and not function.tag_lfs
    assert [spec.name for spec in function.objects.labels] == ["car", "person", "sign"]
    # tag LFs' labels follow the object labels and are declared as tags
    tags = tmp_path / "t.yaml"
    tags.write_text(
        "labels: [day, night]\ntarget: image\nfunctions: [{name: lit, when: {lab_l: {ge: 50}}, vote: day}]\n"
    )
    env = {"CVAT_EXT_LF_PACKS": f"{pack}:{tags}"}
    with pytest.raises(ConfigError, match=r"\['day', 'night'\] of the tag LFs must be declared with type tag"):
        prelabel_function_from_env([*wrong, LabelSpec(name="day", id=3), LabelSpec(name="night", id=4)], env)
    declared = [*wrong, LabelSpec(name="day", type="tag", id=3), LabelSpec(name="night", type="tag", id=4)]
    assert [lf.name for lf in prelabel_function_from_env(declared, env).tag_lfs] == ["lit"]


@pytest.mark.parametrize(
    ("photo", "tag"),
    [("rocket", "blue_sky"), ("hubble_deep_field", "dark"), ("camera", "greyscale"), ("coffee", None)],
)
def test_auto_annotation_tags_real_photos(photo: str, tag: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The example scene pack's tag comes back as a CVAT tag item (contracts §2.6), after any boxes."""
    from skimage import data

    monkeypatch.delenv("CVAT_EXT_LF_PACKS", raising=False)
    rgb = np.asarray(getattr(data, photo)())
    rgb = np.stack([rgb] * 3, axis=-1) if rgb.ndim == 2 else rgb[..., :3]
    status, items = call(function_module(RELPATH), {"image": b64(np.ascontiguousarray(rgb)), "threshold": 0.5})
    assert status == 200, items
    tags = [item for item in items if item["type"] == "tag"]
    assert [t["label"] for t in tags] == ([] if tag is None else [tag])
    assert all(set(t) == {"label", "type", "confidence"} for t in tags)
    assert items[len(items) - len(tags) :] == tags

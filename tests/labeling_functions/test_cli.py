"""``cvat-ext lf`` against the CVAT stand-in: candidates from a task's shapes, accuracy against its
GT job, predictions file, write-back, a failing LF reported and skipped."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cvat_ext import cli
from cvat_ext.cvat.client import CvatClient
from tests.conftest import OrgWorld
from tests.cvat_standin import CvatStandIn
from tests.sidecar.scenario import _rect

PACKS = Path(__file__).resolve().parents[2] / "cvat_ext" / "labeling_functions" / "packs"

PACK = """\
labels: [car, person, sign]
functions:
  - name: wide_is_car
    when: {aspect: {ge: 1.3}, area: {gt: 3000}}
    vote: car
  - name: tall_is_person
    when: {aspect: {le: 0.6}}
    vote: person
  - name: small_square_is_sign
    when: {aspect: {between: [0.8, 1.25]}, area: {le: 2000}}
    vote: sign
  - name: large_is_car
    when: {area: {gt: 8000}}
    vote: car
"""

BROKEN = """\
from cvat_ext.labeling_functions import labeling_function


@labeling_function(labels=["car", "person", "sign"])
def needs_pixels(c):
    raise RuntimeError("no pixels here")
"""

#: (frame, xyxy, what it really is); the annotation job gets them all labelled "sign"
OBJECTS = [
    (1, (10, 10, 210, 110), "car"),
    (1, (300, 50, 340, 200), "person"),
    (1, (500, 20, 530, 50), "sign"),
    (7, (50, 300, 250, 400), "car"),
    (7, (400, 100, 430, 220), "person"),
    (3, (100, 100, 130, 130), "sign"),  # not a GT frame
]


def seed(standin: CvatStandIn, world: OrgWorld) -> None:
    ids = world.label_ids
    job = world.parent_job_ids[0]
    standin.set_annotations(job, {"shapes": [_rect(f, ids["sign"], xyxy) for f, xyxy, _ in OBJECTS]})
    gt = [_rect(f, ids[kind], xyxy) for f, xyxy, kind in OBJECTS if f in world.gt_frames]
    standin.set_annotations(world.gt_job_id, {"shapes": gt})


def test_lf_apply_labels_a_task(
    cvat_standin: CvatStandIn,
    cvat_org_world: OrgWorld,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seed(cvat_standin, cvat_org_world)
    pack, broken = tmp_path / "pack.yaml", tmp_path / "broken.py"
    pack.write_text(PACK)
    broken.write_text(BROKEN)
    out = tmp_path / "pred.jsonl"
    conn = ["--url", cvat_standin.url, "--token", cvat_org_world.bot_token, "--org", cvat_org_world.org_slug]
    code = cli.main(
        [
            "lf",
            "apply",
            "--task",
            str(cvat_org_world.task_id),
            "--lfs",
            str(pack),
            "--lfs",
            str(broken),
            "-o",
            str(out),
            "--write",
            "--min-confidence",
            "0.5",
            *conn,
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "labeling function needs_pixels failed and was skipped: RuntimeError: no pixels here" in captured.err
    table = {line.split()[0]: line.split() for line in captured.out.splitlines() if line.split()}
    # wide_is_car votes on the two cars, both on GT frames and right: accuracy 1.000 on 2
    assert table["wide_is_car"][-2:] == ["1.000", "2"]
    assert "6 candidates, 6 labelled by the label model" in captured.out
    assert "label model accuracy on 5 GT-matched candidates: 1.000" in captured.out
    predictions = [json.loads(line) for line in out.read_text().splitlines()]
    # candidates come frame by frame (each frame's pixels are read once), in annotation order within a frame
    assert [p["label"] for p in predictions] == [kind for _, _, kind in sorted(OBJECTS, key=lambda o: o[0])]
    assert {p["kind"] for p in predictions} == {"shape"}
    assert "4 shapes relabelled in CVAT" in captured.out
    with CvatClient(cvat_standin.url, access_token=cvat_org_world.bot_token, org=cvat_org_world.org_slug) as client:
        names = {label.id: label.name for label in client.get_labels(task_id=cvat_org_world.task_id)}
        shapes = client.get_annotations(cvat_org_world.parent_job_ids[0]).shapes
    by_box: dict[Any, str] = {tuple(s.points.tolist()): names[s.label_id] for s in shapes}
    assert [by_box[tuple(float(v) for v in xyxy)] for _, xyxy, _ in OBJECTS] == [kind for _, _, kind in OBJECTS]


def test_lf_check_lists_and_refuses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pack = tmp_path / "pack.yaml"
    pack.write_text(PACK)
    assert cli.main(["lf", "check", str(pack)]) == 0
    assert "4 labeling functions" in capsys.readouterr().out
    pack.write_text(PACK.replace("vote: sign", "vote: tree"))
    assert cli.main(["lf", "check", str(pack)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "vote 'tree' is not one of labels" in err


# --- colour features from the frames CVAT serves, and tag LFs ---------------------------------

#: real photos (scikit-image) uploaded as a task, frame order = file name order
PHOTOS = ("rocket", "hubble_deep_field", "camera", "coins", "astronaut", "coffee")
TAGS = {"rocket": "blue_sky", "hubble_deep_field": "dark", "camera": "greyscale", "coins": "greyscale"}
#: objects drawn by hand on the astronaut photo (frame 4): what they are, their shape
ASTRONAUT = 4
OBJECT_LABELS = ("suit", "helmet", "flag")
COLOUR_PACK = """\
labels: [suit, helmet, flag]
functions:
  - name: red_orange_is_suit
    when: {hue_fraction: {hue: [345, 45], ge: 0.9}, frac_grey: {le: 0.05}}
    vote: suit
  - name: dark_and_round_is_helmet
    when: {frac_dark: {ge: 0.5}, fill: {between: [0.6, 0.9]}}
    vote: helmet
  - name: red_and_pale_stripes_is_flag
    when: {frac_red: {ge: 0.3}, frac_grey: {ge: 0.25}}
    vote: flag
"""


def _circle(cx: float, cy: float, r: float, k: int = 24) -> list[float]:
    t = np.linspace(0, 2 * np.pi, k, endpoint=False)
    return [round(float(v), 2) for xy in zip(cx + r * np.cos(t), cy + r * np.sin(t), strict=True) for v in xy]


def photo_task(standin: CvatStandIn, world: OrgWorld) -> tuple[int, dict[str, int]]:
    """A project with object and tag labels, and a task made of PHOTOS through the real upload path."""
    from PIL import Image
    from skimage import data

    labels = [{"name": n, "type": "any"} for n in OBJECT_LABELS]
    labels += [{"name": n, "type": "tag"} for n in ("blue_sky", "dark", "greyscale")]
    project = standin.add_project("photos", org=world.org_slug, labels=labels, owner="admin")
    files = []
    for k, name in enumerate(PHOTOS):
        rgb = np.asarray(getattr(data, name)())
        rgb = np.stack([rgb] * 3, axis=-1) if rgb.ndim == 2 else rgb[..., :3]
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="PNG")
        files.append((f"{k}_{name}.png", buf.getvalue()))
    with CvatClient(standin.url, access_token=world.bot_token, org=world.org_slug) as client:
        task = client.create_task_from_images("photos", project_id=project, images=files)
        ids = {label.name: label.id for label in client.get_labels(task_id=task.id)}
    return task.id, ids


def test_lf_apply_colour_features_and_tags_from_real_frames(
    cvat_standin: CvatStandIn,
    cvat_org_world: OrgWorld,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    task_id, ids = photo_task(cvat_standin, cvat_org_world)
    job = cvat_standin.jobs(task_id=task_id, type="annotation")[0]["id"]
    suit = _rect(ASTRONAUT, ids["flag"], (50, 330, 130, 470))
    flag = _rect(ASTRONAUT, ids["flag"], (0, 150, 60, 300))
    helmet = dict(_rect(ASTRONAUT, ids["flag"], (0, 0, 1, 1)), type="polygon", points=_circle(390, 430, 80))
    # the camera frame is already tagged greyscale: the tag is not added twice
    tag = {"frame": 2, "label_id": ids["greyscale"], "source": "manual", "group": 0, "attributes": []}
    cvat_standin.set_annotations(job, {"shapes": [suit, helmet, flag], "tags": [tag]})
    gt = cvat_standin.add_gt_job(task_id, [0, 1, 4])
    gt_tags = [{"frame": 0, "label_id": ids["blue_sky"]}, {"frame": 1, "label_id": ids["dark"]}]
    gt_helmet = dict(helmet, label_id=ids["helmet"])
    cvat_standin.set_annotations(gt, {"shapes": [gt_helmet], "tags": [dict(tag, **t) for t in gt_tags]})
    colour, scenes = tmp_path / "colour.yaml", PACKS / "scene_tags.yaml"
    colour.write_text(COLOUR_PACK)
    out = tmp_path / "pred.jsonl"
    conn = ["--url", cvat_standin.url, "--token", cvat_org_world.bot_token, "--org", cvat_org_world.org_slug]
    argv = ["lf", "apply", "--task", str(task_id), "--lfs", str(colour), "--lfs", str(scenes), "-o", str(out), *conn]

    # without pixels every colour LF abstains: nothing is labelled, nothing is downloaded
    assert cli.main([*argv, "--no-pixels"]) == 0, capsys.readouterr().err
    captured = capsys.readouterr()
    assert "3 candidates, 0 labelled by the label model" in captured.out
    assert "6 images, 0 tagged by the label model" in captured.out

    assert cli.main([*argv, "--write", "--min-confidence", "0.5"]) == 0
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    shapes = [line for line in lines if line["kind"] == "shape"]
    tags = {line["frame"]: line["label"] for line in lines if line["kind"] == "tag"}
    assert [s["label"] for s in shapes] == ["suit", "helmet", "flag"]
    assert tags == {k: TAGS.get(name) for k, name in enumerate(PHOTOS)}
    rows = {line.split()[0]: line.split() for line in captured.out.splitlines() if line.split()}
    # the analysis covers both kinds: the tag LFs checked against the GT job's tags
    assert rows["mostly_blue_is_blue_sky"][-2:] == ["1.000", "1"]
    assert rows["mostly_dark_pixels_is_dark"][-2:] == ["1.000", "1"]
    assert rows["dark_and_round_is_helmet"][-2:] == ["1.000", "1"]
    assert "label model accuracy on 2 GT-matched images: 1.000" in captured.out
    assert "2 shapes relabelled in CVAT" in captured.out
    assert "3 tags added in CVAT" in captured.out
    with CvatClient(cvat_standin.url, access_token=cvat_org_world.bot_token, org=cvat_org_world.org_slug) as client:
        ann = client.get_annotations(job)
    names = {v: k for k, v in ids.items()}
    assert sorted((t.frame, names[t.label_id]) for t in ann.tags) == sorted(
        (k, TAGS[name]) for k, name in enumerate(PHOTOS) if name in TAGS
    )
    assert sorted(names[s.label_id] for s in ann.shapes) == ["flag", "helmet", "suit"]

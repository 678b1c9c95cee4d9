"""``cvat-ext lf`` against the CVAT stand-in: candidates from a task's shapes, accuracy against its
GT job, predictions file, write-back, a failing LF reported and skipped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cvat_ext import cli
from cvat_ext.cvat.client import CvatClient
from tests.conftest import OrgWorld
from tests.cvat_standin import CvatStandIn
from tests.sidecar.scenario import _rect

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
    assert [p["label"] for p in predictions] == [kind for _, _, kind in OBJECTS]
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

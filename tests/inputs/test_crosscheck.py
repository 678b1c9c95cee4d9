"""The vectorised cross-checks against a naive reference (a plain loop over the JSON objects) on
random files: sizes, densities of bad objects, frame steps, ground-truth metas and seeds vary."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cvat_ext.annotations.cvat_json import parse_labels
from cvat_ext.annotations.model import FrameInfo, JobMeta, LabelSet
from cvat_ext.errors import InputMismatchError
from cvat_ext.inputs.columns import ids_from_file
from cvat_ext.inputs.crosscheck import check_annotation_file, frames_inside, pair_keys

CAR, PERSON, POSE, KEYPOINTS = 1, 2, 10, (11, 12, 13)
SPECS = {CAR: (7,), PERSON: (8, 9), POSE: ()}
UNKNOWN_LABEL, UNKNOWN_SPEC = 99, 42


def labels() -> LabelSet:
    def attr(spec: int) -> dict[str, Any]:
        return {"id": spec, "name": f"a{spec}", "input_type": "text", "mutable": False, "default_value": "",
                "values": []}

    return parse_labels([
        {"id": CAR, "name": "car", "attributes": [attr(s) for s in SPECS[CAR]]},
        {"id": PERSON, "name": "person", "attributes": [attr(s) for s in SPECS[PERSON]]},
        {"id": POSE, "name": "pose", "type": "skeleton", "attributes": [],
         "sublabels": [{"id": k, "name": f"kp{k}", "type": "points", "attributes": []} for k in KEYPOINTS]},
    ])


class Maker:
    """Random CVAT objects; each field is wrong with probability ``bad``."""

    def __init__(self, rng: random.Random, meta: JobMeta, bad: float) -> None:
        self.rng, self.meta, self.bad = rng, meta, bad
        if meta.included_frames is not None:
            self.frames = list(meta.included_frames)
        else:
            self.frames = list(range(meta.start_frame, meta.stop_frame + 1, meta.step))

    def oops(self) -> bool:
        return self.rng.random() < self.bad

    def frame(self) -> int:
        if self.oops():
            return self.rng.choice([self.meta.stop_frame + self.rng.randint(1, 50), self.meta.start_frame - 1,
                                    self.frames[0] + 1 if self.meta.step > 1 else self.meta.stop_frame + 1])
        return self.rng.choice(self.frames)

    def label(self, choices: tuple[int, ...] = (CAR, PERSON)) -> int:
        return UNKNOWN_LABEL if self.oops() else self.rng.choice(choices)

    def attributes(self, label: int) -> list[dict[str, Any]]:
        specs = list(SPECS.get(label, ()))
        out = [{"spec_id": s, "value": "x"} for s in specs if self.rng.random() < 0.7]
        if self.oops():
            out.append({"spec_id": self.rng.choice([UNKNOWN_SPEC, 7, 8, 9]), "value": "x"})
        return out

    def shape(self) -> dict[str, Any]:
        frame = self.frame()
        if self.rng.random() < 0.2:
            elements = [{"type": "points", "frame": frame, "points": [1.0, 2.0],
                         "label_id": CAR if self.oops() else k, "attributes": []} for k in KEYPOINTS]
            return {"type": "skeleton", "frame": frame, "label_id": POSE, "points": [], "attributes": [],
                    "elements": elements}
        label = self.label()
        return {"type": "rectangle", "frame": frame, "label_id": label, "points": [0.0, 0.0, 5.0, 5.0],
                "attributes": self.attributes(label)}

    def track(self) -> dict[str, Any]:
        label = self.label()
        keyframes = [{"type": "rectangle", "frame": self.frame(), "points": [0.0, 0.0, 5.0, 5.0],
                      "attributes": self.attributes(label)} for _ in range(self.rng.randint(0, 3))]
        keyframes.sort(key=lambda k: k["frame"])
        return {"frame": keyframes[0]["frame"] if keyframes else self.frames[0], "label_id": label,
                "shapes": keyframes, "attributes": self.attributes(label)}

    def tag(self) -> dict[str, Any]:
        label = self.label()
        return {"frame": self.frame(), "label_id": label, "attributes": self.attributes(label)}

    def job(self, n: int) -> dict[str, Any]:
        return {"version": 0, "tags": [self.tag() for _ in range(n // 10)],
                "shapes": [self.shape() for _ in range(n)], "tracks": [self.track() for _ in range(n // 5)]}


def naive_rows(data: dict[str, Any]) -> Iterator[tuple[str, str, int, int, int, list[int], list[str]]]:
    """(row locator, frame locator, frame, label, parent label, spec ids, attribute locators) per row,
    in the order the checks look at rows: tags, shapes (then their keypoints), tracks' keyframes."""
    for i, t in enumerate(data["tags"]):
        yield (f"tags[{i}]", f"tags[{i}]", t["frame"], t["label_id"], -1, [a["spec_id"] for a in t["attributes"]],
               [f"tags[{i}].attributes[{p}]" for p in range(len(t["attributes"]))])
    for i, s in enumerate(data["shapes"]):
        at = f"shapes[{i}]"
        yield (at, at, s["frame"], s["label_id"], -1, [a["spec_id"] for a in s["attributes"]],
               [f"{at}.attributes[{p}]" for p in range(len(s["attributes"]))])
        for j, e in enumerate(s.get("elements", [])):
            yield f"{at}.elements[{j}]", f"{at}.elements[{j}]", s["frame"], e["label_id"], s["label_id"], [], []
    for i, tr in enumerate(data["tracks"]):
        at = f"tracks[{i}]"
        own = [a["spec_id"] for a in tr["attributes"]]
        own_at = [f"{at}.attributes[{p}]" for p in range(len(own))]
        if not tr["shapes"]:
            yield at, at, tr["frame"], tr["label_id"], -1, own, own_at
        for k, kf in enumerate(tr["shapes"]):
            specs = ([*own] if k == 0 else []) + [a["spec_id"] for a in kf["attributes"]]
            where = (own_at if k == 0 else []) + [f"{at}.shapes[{k}].attributes[{p}]"
                                                    for p in range(len(kf["attributes"]))]
            yield at, f"{at}.shapes[{k}]", kf["frame"], tr["label_id"], -1, specs, where


def naive_first_problem(data: dict[str, Any], meta: JobMeta, label_set: LabelSet) -> str | None:
    """The locator and phrase the first failing check must name, or None for a clean file."""
    rows = list(naive_rows(data))
    valid = set(meta.included_frames) if meta.included_frames is not None else set(
        range(meta.start_frame, meta.stop_frame + 1, meta.step))
    for _, frame_at, frame, *_ in rows:
        if frame not in valid:
            return f"{frame_at} is on frame {frame}, outside"
    for at, _, frame, label, *_ in rows:
        if label not in label_set.by_id:
            return f"{at} (frame {frame}) has label id {label}, which"
    for at, _, frame, label, parent, *_ in rows:
        if parent >= 0 and label not in {s.id for s in label_set.by_id[parent].sublabels}:
            return f"{at} (frame {frame}) has label id {label}, not a keypoint"
    all_specs = {s.id for lb in label_set.by_id.values() for s in lb.attributes}
    for _, _, frame, _, _, specs, where in rows:
        for spec, attr_at in zip(specs, where, strict=True):
            if spec not in all_specs:
                return f"{attr_at} (frame {frame}) has attribute id {spec}, which"
    for _, _, frame, label, _, specs, where in rows:
        for spec, attr_at in zip(specs, where, strict=True):
            if spec not in {s.id for s in label_set.by_id[label].attributes}:
                return f"{attr_at} (frame {frame}) has attribute id {spec} of label"
    return None


def make_meta(rng: random.Random, kind: str) -> JobMeta:
    start = rng.choice([0, 10, 500])
    stop = start + rng.choice([0, 9, 99])
    frames = (FrameInfo(64, 48),) * (stop - start + 1)
    if kind == "step":
        return JobMeta(start, stop, frames, frame_filter="step=3")
    if kind == "gt":
        included = tuple(sorted(rng.sample(range(start, stop + 1), k=min(5, stop - start + 1))))
        return JobMeta(start, stop, frames, included_frames=included)
    return JobMeta(start, stop, frames)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("n", [0, 1, 40, 600])
@pytest.mark.parametrize("bad", [0.0, 0.002, 0.05, 0.5])
@pytest.mark.parametrize("meta_kind", ["range", "step", "gt"])
def test_matches_the_naive_reference(tmp_path: Path, seed: int, n: int, bad: float, meta_kind: str) -> None:
    rng = random.Random(f"{seed}-{n}-{bad}-{meta_kind}")  # str seeds are stable across runs
    meta = make_meta(rng, meta_kind)
    data = Maker(rng, meta, bad).job(n)
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    label_set = labels()
    expected = naive_first_problem(data, meta, label_set)
    if expected is None:
        ids = check_annotation_file(path, meta=meta, labels=label_set)
        assert len(ids) == len(list(naive_rows(data)))
        return
    with pytest.raises(InputMismatchError) as err:
        check_annotation_file(path, meta=meta, meta_path="meta.json", labels=label_set, labels_path="labels.json")
    assert f"{path}: {expected}" in str(err.value)


def test_columns_name_every_row(tmp_path: Path) -> None:
    rng = random.Random(7)
    meta = make_meta(rng, "range")
    data = Maker(rng, meta, 0.0).job(200)
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    ids = ids_from_file(path)
    rows = list(naive_rows(data))
    assert [ids.locate(r) for r in range(len(ids))] == [r[0] for r in rows]
    assert [ids.locate(r, keyframe=True) for r in range(len(ids))] == [r[1] for r in rows]
    assert ids.frame_idx.tolist() == [r[2] for r in rows]
    assert ids.label_id.tolist() == [r[3] for r in rows]
    assert ids.attr_spec_id.tolist() == [s for r in rows for s in r[5]]
    assert [ids.locate_attribute(a) for a in range(ids.attr_row.shape[0])] == [w for r in rows for w in r[6]]


def test_frames_inside_and_pair_keys() -> None:
    meta = JobMeta(10, 20, (FrameInfo(1, 1),) * 11, frame_filter="step=5")
    assert frames_inside(np.array([9, 10, 11, 15, 20, 25]), meta).tolist() == [False, True, False, True, True, False]
    assert frames_inside(np.array([], dtype=np.int64), meta).shape == (0,)
    keys = pair_keys([1, 1, 2, 2**31 - 1], [2, 3, 1, 2**31 - 1])
    assert len(set(keys.tolist())) == 4


def test_meta_from_another_job_is_said_so(tmp_path: Path) -> None:
    rng = random.Random(3)
    big = JobMeta(0, 499, (FrameInfo(64, 48),) * 500)
    data = Maker(rng, big, 0.0).job(300)
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    small = JobMeta(0, 99, (FrameInfo(64, 48),) * 100)
    with pytest.raises(InputMismatchError, match=r"outside the job's frames 0\.\.99 \(100 frames\) of meta\.json; "
                       r"\d+ of \d+ objects are outside, the annotations span frames \d+\.\.\d+: is the meta from "
                       r"another job\?"):
        check_annotation_file(path, meta=small, meta_path="meta.json")


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("bad", [0.0, 0.01, 0.2])
@pytest.mark.parametrize("plain", [True, False])
def test_columns_consistent_never_hides_a_problem(tmp_path: Path, seed: int, bad: float, plain: bool) -> None:
    """The fast path of ``qa consensus``: columns called consistent must hold no problem the file
    check names; plain files (no tracks, no skeletons) that are clean are called consistent."""
    from cvat_ext.annotations.columnar_json import read_annotations_file
    from cvat_ext.inputs.crosscheck import columns_consistent

    rng = random.Random(f"consistent-{seed}-{bad}-{plain}")
    meta = make_meta(rng, rng.choice(["range", "step", "gt"]))
    maker = Maker(rng, meta, bad)
    data = maker.job(120)
    if plain:
        data["tracks"] = []
        data["shapes"] = [s for s in data["shapes"] if s["type"] != "skeleton"]
    for track in data["tracks"]:  # the annotations reader refuses two keyframes on one frame
        track["shapes"] = list({k["frame"]: k for k in track["shapes"]}.values())
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    label_set = labels()
    consistent = columns_consistent(read_annotations_file(path, last_frame=meta.stop_frame), meta=meta,
                                    labels=label_set)
    problem = naive_first_problem(data, meta, label_set)
    if consistent:
        assert problem is None
    if plain and problem is None:
        assert consistent

"""The columnar reader gives FrameStore's shapes, tags and frames, and FrameStore's errors."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cvat_ext.annotations import columnar_json, json_scan
from cvat_ext.annotations.columnar_json import ReplicaColumns, read_annotations_bytes, read_annotations_file
from cvat_ext.annotations.cvat_json import dump_shape, dump_tag
from cvat_ext.annotations.frame_store import FrameStore
from cvat_ext.annotations.table import ShapeTable
from cvat_ext.errors import AnnotationFormatError
from tests.annotations import recordings
from tests.annotations.test_cvat_json_errors import SHAPE_CASES
from tests.annotations.test_frame_store import GOOD_SHAPE, random_body


def _store_view(path: Path, last_frame: int) -> tuple[list[Any], list[Any], list[int]]:
    with FrameStore(path) as store:
        frames = list(store.iter_frames(last_frame))
    shapes = [dump_shape(s) for f in frames for s in f.shapes]
    tags = [dump_tag(t) for f in frames for t in f.tags]
    return shapes, tags, [f.frame for f in frames]


def _columns_view(cols: ReplicaColumns) -> tuple[list[Any], list[Any], list[int]]:
    shapes = [dump_shape(s) for s in cols.shapes.shapes()]
    tags = [dump_tag(t) for frame in sorted(cols.tags) for t in cols.tags[frame]]
    return shapes, tags, cols.frames.tolist()


def _fast_only(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` without tracks and skeletons (every row from the columns, none from the per-object parser)."""
    return {**body, "tracks": [], "shapes": [s for s in body["shapes"] if s["type"] != "skeleton"]}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), fast=st.booleans())
def test_same_as_frame_store(tmp_path: Path, seed: int, fast: bool) -> None:
    body, stop_frame = random_body(seed)
    if fast:
        body = _fast_only(body)
    path = tmp_path / "a.json"
    path.write_text(json.dumps(body))
    assert _columns_view(read_annotations_file(path, last_frame=stop_frame)) == _store_view(path, stop_frame)


def test_plain_bodies_take_the_fast_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any) -> ReplicaColumns:
        raise AssertionError("slow path taken")

    monkeypatch.setattr(columnar_json, "_slow", refuse)
    kinds = set()
    for seed in range(20):
        body = _fast_only(random_body(seed)[0])
        kinds |= {s["type"] for s in body["shapes"]}
        cols = read_annotations_bytes(json.dumps(body).encode(), where="a")
        assert len(cols.shapes) == len(body["shapes"])
    assert kinds >= {"rectangle", "polygon", "mask", "points", "cuboid", "ellipse", "polyline"}


def test_tracks_and_skeletons_take_the_fast_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tracks (keyframes, interpolation, outside frames) and skeletons go into the same table as
    the shapes, FrameStore's rows in FrameStore's order, without the slow path."""
    monkeypatch.setattr(columnar_json, "_slow", _no_slow)
    seen = {"tracks": 0, "skeletons": 0}
    bodies = [random_body(seed) for seed in range(40)]
    bodies += [(body, 19) for _, side, _, body in recordings.annotation_bodies() if side == "response"]
    for i, (body, stop_frame) in enumerate(bodies):
        seen["tracks"] += bool(body["tracks"])
        seen["skeletons"] += any(s["type"] == "skeleton" for s in body["shapes"])
        path = tmp_path / f"{i}.json"
        path.write_text(json.dumps(body))
        cols = read_annotations_file(path, last_frame=stop_frame)
        assert _columns_view(cols) == _store_view(path, stop_frame)
        assert cols.from_tracks == bool(body["tracks"])
    assert seen["tracks"] >= 10 and seen["skeletons"] >= 5


def _no_slow(*args: Any) -> ReplicaColumns:
    raise AssertionError("slow path taken")


def test_recorded_cvat_bodies(tmp_path: Path) -> None:
    seen = 0
    for name, side, index, body in recordings.annotation_bodies():
        path = tmp_path / f"{name}.{side}.{index}.json"
        path.write_text(json.dumps(body))
        for last_frame in (3, 19):
            got = _columns_view(read_annotations_file(path, last_frame=last_frame))
            assert got == _store_view(path, last_frame), (name, side, index)
        seen += 1
    assert seen >= 10


def _same_error(path: Path) -> str:
    with pytest.raises(AnnotationFormatError) as store_error:
        FrameStore(path)
    with pytest.raises(AnnotationFormatError) as columns_error:
        read_annotations_file(path)
    assert str(columns_error.value) == str(store_error.value)
    return str(columns_error.value)


@pytest.mark.parametrize(("data", "message"), SHAPE_CASES, ids=[m[:50] for _, m in SHAPE_CASES])
def test_bad_shape_same_error_as_today(tmp_path: Path, data: Any, message: str) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"shapes": [GOOD_SHAPE, GOOD_SHAPE, data]}))
    got = _same_error(path)
    # the message names the file and the object index (bad JSON, e.g. NaN, is a JSON error)
    assert got.startswith(f"{path}: shapes[2]") or f"{path}: invalid JSON" in got


_GOOD = json.dumps(GOOD_SHAPE)
BAD_FILES = [
    '{"shapes": [',
    "",
    '{"shapes": []} []',
    "[]",
    '{"shapes": 5}',
    '{"version": "x"}',
    '{"intervals": [1]}',
    '{"shapes": [], "shapes": []}',
    # a repeated key around a shapes array (the keys are looked for outside the last one)
    '{"shapes": [' + _GOOD + '], "version": 1, "shapes": [' + _GOOD + "]}",
    '{"version": 1, "shapes": [' + _GOOD + '], "version": 2}',
    '{"tags": [], "shapes": [' + _GOOD + '],\n "tags" : []}',
    json.dumps({"shapes": [GOOD_SHAPE, 3]}),
    json.dumps({"tags": [{"frame": "x", "label_id": 1}]}),
    json.dumps({"shapes": [{**GOOD_SHAPE, "frame": 2**70}]}),
    json.dumps({"tracks": [{"frame": 0, "label_id": 1, "shapes": [{**GOOD_SHAPE, "points": [1]}]}]}),
]


def test_top_level_key_names_inside_shapes_are_not_top_level_keys(tmp_path: Path) -> None:
    """A shape carrying fields named like the top-level keys (ignored, as unknown fields are) is
    read as FrameStore reads it, on the fast path."""
    odd = {**GOOD_SHAPE, "shapes": [], "tracks": [1], "version": 3}
    body = {"version": 1, "tags": [], "shapes": [GOOD_SHAPE, odd], "tracks": []}
    path = tmp_path / "a.json"
    path.write_text(json.dumps(body))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(columnar_json, "_slow", lambda *a: pytest.fail("slow path taken"))
        got = read_annotations_file(path)
    assert _columns_view(got) == _store_view(path, 0)


@pytest.mark.parametrize("text", BAD_FILES)
def test_bad_file_same_error_as_today(tmp_path: Path, text: str) -> None:
    path = tmp_path / "a.json"
    path.write_text(text)
    assert _same_error(path).startswith(f"{path}:")


_TRACK = {"frame": 0, "label_id": 1, "shapes": [{**GOOD_SHAPE, "frame": 0}], "attributes": []}
REPEATED_KEYS = [
    # a body's text, then: "twice" (a top-level key repeated: FrameStore's error), "fast" (the
    # names only nested in tracks: the fast path), "same" (nested in an unknown key's value: a
    # false alarm may take the slow path, the result is FrameStore's either way)
    ('{"shapes": [%s], "tags": [], "shapes": [%s]}', "twice"),
    ('{"version": 1, "shapes": [%s, %s], "version": 2}', "twice"),
    ('{"tracks": [], "shapes": [%s, %s], "tracks" : []}', "twice"),
    ('{"shapes": [%s], "intervals": [], "tags": [], "intervals": [], "x": [%s]}', "twice"),
    ('{"shapes": [%s, %s], "tracks": [TRACK, TRACK], "version": 3}', "fast"),
    ('{"shapes": [%s], "tracks": [TRACK, TRACK], "x": {"shapes": [%s]}}', "same"),
    ('{"x": {"version": 1, "tags": []}, "shapes": [%s, %s], "tracks": [TRACK]}', "same"),
]


@pytest.mark.parametrize(("template", "expect"), REPEATED_KEYS)
@pytest.mark.parametrize("split", [False, True])
def test_repeated_top_level_keys_are_found_nested_ones_are_not_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, template: str, expect: str, split: bool
) -> None:
    """A key given twice at the top level takes the slow path (FrameStore's error), whole or
    split, as bytes or as a file; the same names inside tracks do not count."""
    if split:
        monkeypatch.setattr(columnar_json, "SPLIT_BYTES", 0)
    shape = json.dumps(GOOD_SHAPE)
    text = (template % (shape, shape)).replace("TRACK", json.dumps(_TRACK))
    path = tmp_path / "a.json"
    path.write_text(text)
    if expect == "twice":
        assert "twice" in _same_error(path)
        with pytest.raises(AnnotationFormatError, match=r"^job 7: .*twice"):
            read_annotations_bytes(text.encode(), where="job 7")
        return
    if expect == "fast":
        monkeypatch.setattr(columnar_json, "_slow", _no_slow)
    by_bytes = read_annotations_bytes(text.encode(), where="a", last_frame=3)
    for cols in (read_annotations_file(path, last_frame=3), by_bytes):
        assert _columns_view(cols) == _store_view(path, 3)


@pytest.mark.parametrize("masks_only", [False, True])
@pytest.mark.parametrize("seed", range(12))
def test_one_bad_mask_among_many_is_named(tmp_path: Path, seed: int, masks_only: bool) -> None:
    """A vectorised check fails; the slow path names the first bad object, as today (in a body of
    mixed shapes, and in one of masks only, whose checks skip the gather)."""
    rng = np.random.default_rng(seed)
    body = _fast_only(random_body(seed)[0])
    if masks_only:
        body["shapes"] = [s for s in body["shapes"] if s["type"] == "mask"]
    masks = [s for s in body["shapes"] if s["type"] == "mask"]
    if not masks:
        body["shapes"].append({**GOOD_SHAPE, "type": "mask", "points": [1, 3, 0, 0, 1, 1]})
        masks = body["shapes"][-1:]
    # a valid mask whose box starts left of and above the frame: never the one named
    body["shapes"].insert(0, {**GOOD_SHAPE, "type": "mask", "points": [1, 3, 2, 2, -2, -1, 1, 0]})
    bad = masks[int(rng.integers(len(masks)))]
    how = int(rng.integers(5)) if len(bad["points"]) >= 6 else int(rng.integers(3))
    if how == 0:
        bad["points"][0] += 1  # the runs no longer sum to the box area
    elif how == 1:
        bad["points"][-2] = bad["points"][-4] - 1  # right < left
    elif how == 2:
        bad["points"] = bad["points"][-4:]
    elif how == 3:  # a negative run, the sum kept
        bad["points"][1] += bad["points"][0] + 1
        bad["points"][0] = -1
    else:  # fractional runs, the sum kept
        bad["points"][0] += 0.5
        bad["points"][1] -= 0.5
    path = tmp_path / "a.json"
    path.write_text(json.dumps(body))
    assert re.match(rf"{re.escape(str(path))}: shapes\[{body['shapes'].index(bad)}\]", _same_error(path))


def test_body_errors_name_the_body_not_a_temporary_file() -> None:
    with pytest.raises(AnnotationFormatError, match=r"^job 812: shapes\[0\] frame 0: rectangle has 2 numbers"):
        read_annotations_bytes(json.dumps({"shapes": [{**GOOD_SHAPE, "points": [0, 0]}]}).encode(), where="job 812")


def test_table_extents_take_and_concat_match_the_shapes() -> None:
    body = _fast_only(random_body(7)[0])
    body["shapes"] += _fast_only(random_body(8)[0])["shapes"]
    table = read_annotations_bytes(json.dumps(body).encode(), where="a").shapes
    shapes = list(table.shapes())
    assert len(shapes) > 20
    assert np.array_equal(table.xyxy(), np.array([s.xyxy for s in shapes]).reshape(-1, 4))
    rows = np.random.default_rng(0).permutation(len(table))[: len(table) // 2]
    part = table.take(rows)
    assert [dump_shape(s) for s in part.shapes()] == [dump_shape(shapes[i]) for i in rows.tolist()]
    both = ShapeTable.concat([part, ShapeTable.from_shapes(shapes)])
    assert [dump_shape(s) for s in both.shapes()] == [dump_shape(s) for s in (*part.shapes(), *shapes)]
    assert len(ShapeTable.empty()) == 0
    # shapes assembled from the table are what the checked constructor builds: read-only arrays
    rebuilt = [dataclasses.replace(s) for s in shapes]  # replace() runs __post_init__
    for got, checked in zip(shapes, rebuilt, strict=True):
        assert not got.points.flags.writeable and got.points.shape == checked.points.shape
        assert got.mask == checked.mask and (got.mask is None or got.mask.counts.dtype == np.int64)


# ----------------------------------------------------------------------------------------------
# large bodies: shapes found by the byte scan and decoded a block at a time


@pytest.fixture
def split_small(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every body takes the split path, in blocks of at most 3 shapes, scanned 7 bytes at a time."""
    monkeypatch.setattr(columnar_json, "SPLIT_BYTES", 0)
    monkeypatch.setattr(columnar_json, "BLOCK_ITEMS", 3)
    monkeypatch.setattr(columnar_json, "BLOCK_BYTES", 300)  # some blocks end by size, some by count
    monkeypatch.setattr(json_scan, "WINDOW", 7)


def _tricky_strings(body: dict[str, Any], seed: int) -> dict[str, Any]:
    """Attribute values and sources full of what the scan must not take for structure."""
    rng = np.random.default_rng(seed)
    nasty = ['{"shapes": [', "]}", '\\"', "\\\\", "\\\\\\", 'a"b', "[{", "é}"]
    for s in body["shapes"]:
        if rng.random() < 0.5:
            s["attributes"] = [{"spec_id": 1, "value": "".join(rng.choice(nasty, 3))}]
        if rng.random() < 0.2:
            s["source"] = str(rng.choice(nasty))
    return body


@pytest.mark.usefixtures("split_small")
@pytest.mark.parametrize("seed", range(16))
@pytest.mark.parametrize("ascii_only", [True, False])
def test_split_path_same_as_frame_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int, ascii_only: bool
) -> None:
    body, stop_frame = random_body(seed)
    body = _tricky_strings(body, seed)  # tracks and skeletons too
    path = tmp_path / "a.json"
    path.write_text(json.dumps(body, ensure_ascii=ascii_only, indent=seed % 3 or None))
    blocks: list[int] = []
    split = columnar_json._shape_blocks

    def spy(*args: Any) -> Any:
        for table in split(*args):
            blocks.append(len(table))
            yield table

    monkeypatch.setattr(columnar_json, "_shape_blocks", spy)
    monkeypatch.setattr(columnar_json, "_slow", lambda *a: pytest.fail("slow path taken"))
    got = read_annotations_file(path, last_frame=stop_frame)
    monkeypatch.undo()
    assert sum(blocks) == len(body["shapes"]) and all(n <= 3 for n in blocks)
    assert _columns_view(got) == _store_view(path, stop_frame)


@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_integer_points_decoded_as_ints_until_a_block_has_another_number(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, split: bool, seed: int
) -> None:
    """Masks and boxes written as integers, then (from a random shape on) boxes with fractional,
    ``2.0``-style and huge integer coordinates: the integer blocks are read as ints, the rest by
    the general decoder, and the columns are the per-object reader's."""
    if split:
        monkeypatch.setattr(columnar_json, "SPLIT_BYTES", 0)
        monkeypatch.setattr(columnar_json, "BLOCK_ITEMS", 3)
    rng = np.random.default_rng(seed)
    mask = {**GOOD_SHAPE, "type": "mask", "points": [1, 3, 2, 2, 0, 0, 1, 3]}
    shapes: list[dict[str, Any]] = [
        {**(mask if i % 2 else GOOD_SHAPE), "frame": i, "points": list((mask if i % 2 else GOOD_SHAPE)["points"])}
        for i in range(int(rng.integers(4, 12)))
    ]
    others = [[0.5, 1, 2, 3.25], [2.0, 2, 3.0, 4], [2**60 + 1, 0, 2**62, 1], [1, 2, 3, 4]]
    shapes += [{**GOOD_SHAPE, "frame": 20 + k, "points": others[k % 4]} for k in range(int(rng.integers(1, 8)))]
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"shapes": shapes}))
    kinds: list[bool] = []
    plain = columnar_json._plain_table

    def spy(items: Any, *args: Any) -> Any:
        kinds.append(bool(items) and isinstance(items[0], columnar_json._IntShape))
        return plain(items, *args)

    monkeypatch.setattr(columnar_json, "_plain_table", spy)
    monkeypatch.setattr(columnar_json, "_slow", lambda *a: pytest.fail("slow path taken"))
    got = read_annotations_file(path)
    monkeypatch.undo()
    assert _columns_view(got) == _store_view(path, 10**6)
    assert kinds[0] is split and kinds[-1] is False  # a whole body with a fraction: the general decoder
    assert kinds == sorted(kinds, reverse=True)  # once the general decoder, always


@pytest.mark.usefixtures("split_small")
@pytest.mark.parametrize(
    "text",
    [
        json.dumps({"shapes": [GOOD_SHAPE, 3, GOOD_SHAPE]}),
        json.dumps({"shapes": [3]}),
        json.dumps({"shapes": [GOOD_SHAPE, GOOD_SHAPE, GOOD_SHAPE, "x"]}),
        json.dumps({"shapes": [GOOD_SHAPE] * 4}).replace("}, {", "} {", 1),
        json.dumps({"shapes": [GOOD_SHAPE] * 4}).replace("}, {", "},, {", 1),
        json.dumps({"shapes": [GOOD_SHAPE] * 4})[:-3],
        json.dumps({"shapes": [GOOD_SHAPE] * 4, "tags": [], "shapes ": []}).replace('"shapes "', '"shapes"'),
        json.dumps({"shapes": [GOOD_SHAPE, {**GOOD_SHAPE, "points": [0, 0]}, GOOD_SHAPE, GOOD_SHAPE]}),
        json.dumps({"shapes": [GOOD_SHAPE] * 4}) + "]",
    ],
)
def test_split_path_bad_files_same_error_as_today(tmp_path: Path, text: str) -> None:
    path = tmp_path / "a.json"
    path.write_text(text)
    assert _same_error(path).startswith(f"{path}:")


def test_scan_finds_the_items() -> None:
    body = {"version": 1, "tags": [{"x": "[shapes]"}], "shapes": [{"a": '"}]'}, [1, {"b": 2}], {}]}
    text = json.dumps(body).encode()
    for window in (1, 3, 1000):
        found = json_scan.array_items(text, b"shapes", window=window)
        assert found is not None
        assert [json.loads(text[a:b]) for a, b in zip(found.start.tolist(), found.stop.tolist(), strict=True)] == (
            body["shapes"]
        )
        assert text[found.open : found.close + 1] == json.dumps(body["shapes"]).encode()
    assert json_scan.array_items(b'{"tags": []}', b"shapes") is None
    assert json_scan.array_items(b'{"shapes": [1, 2]}', b"shapes") is None
    empty = json_scan.array_items(b'{"shapes": [ ]}', b"shapes")
    assert empty is not None and empty.start.size == 0


@pytest.mark.parametrize("seed", range(10))
def test_decoded_bodies_same_as_their_text(seed: int) -> None:
    body, stop_frame = random_body(seed)
    if seed % 2:
        body = _fast_only(body)
    got = columnar_json.read_annotations_body(body, where="job 3", last_frame=stop_frame)
    want = read_annotations_bytes(json.dumps(body).encode(), where="job 3", last_frame=stop_frame)
    assert _columns_view(got) == _columns_view(want)


@pytest.mark.parametrize(("data", "message"), SHAPE_CASES[:40], ids=[m[:50] for _, m in SHAPE_CASES[:40]])
def test_decoded_bad_body_names_the_job(data: Any, message: str) -> None:
    body = {"shapes": [GOOD_SHAPE, data]}
    with pytest.raises(AnnotationFormatError) as info:
        columnar_json.read_annotations_body(body, where="job 812")
    assert str(info.value).startswith("job 812: ")


@pytest.mark.parametrize("split", [False, True])
def test_integer_coordinates_kept_small(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, split: bool) -> None:
    """Mask RLEs and integer boxes take a quarter or half the memory; the shapes are the same."""
    if split:
        monkeypatch.setattr(columnar_json, "SPLIT_BYTES", 0)
        monkeypatch.setattr(columnar_json, "BLOCK_ITEMS", 2)
    body = _fast_only(random_body(5)[0])
    masks = [s for s in body["shapes"] if s["type"] == "mask"]
    assert masks
    small = {"shapes": [*masks, {**GOOD_SHAPE, "points": [1, 2, 30, 40]}]}
    negative = {"shapes": [*masks, {**GOOD_SHAPE, "points": [-1, 2, 30, 70000]}]}
    fractional = {"shapes": [*masks, {**GOOD_SHAPE, "points": [1, 2, 30.1, 40]}]}
    for data, dtype in ((small, np.uint16), (negative, np.float32), (fractional, np.float64)):
        path = tmp_path / "a.json"
        path.write_text(json.dumps(data))
        cols = read_annotations_file(path)
        assert cols.shapes.coords.dtype == dtype
        assert all(s.points.dtype == np.float64 for s in cols.shapes.shapes())
        assert _columns_view(cols) == _store_view(path, 0)


def test_integer_columns_narrowed_only_when_they_fit() -> None:
    small = read_annotations_bytes(json.dumps({"shapes": [GOOD_SHAPE]}).encode(), where="a").shapes
    assert (small.frame.dtype, small.z_order.dtype, small.type_code.dtype) == (np.int32, np.int32, np.int8)
    big = read_annotations_bytes(json.dumps({"shapes": [{**GOOD_SHAPE, "z_order": 2**40}]}).encode(), where="a")
    assert big.shapes.z_order.dtype == np.int64 and int(big.shapes.z_order[0]) == 2**40
    assert big.shapes.shape(0).z_order == 2**40 and big.shapes.frame.dtype == np.int32


def test_dense_bodies_are_split_sparse_ones_decoded_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """Between WHOLE_BYTES and SPLIT_BYTES the commas decide: a mask RLE of short numbers would
    take about 8 bytes of structs per byte of JSON decoded whole, boxes about 2."""
    box = json.dumps({**GOOD_SHAPE, "type": "rectangle", "points": [10.123456789, 20.5, 30.25, 40.0]})
    mask = json.dumps({**GOOD_SHAPE, "type": "mask", "points": [1, 2, 3, 4] * 100 + [0, 0, 9, 9]})
    bodies = {kind: f'{{"version": 0, "shapes": [{", ".join([item] * 3000)}]}}'.encode()
              for kind, item in (("box", box), ("mask", mask))}  # fmt: skip
    monkeypatch.setattr(columnar_json, "WHOLE_BYTES", 1000)
    monkeypatch.setattr(columnar_json, "_SAMPLE_BYTES", 20_000)
    size = len(bodies["mask"])
    monkeypatch.setattr(columnar_json, "WHOLE_STRUCT_BYTES", 4 * size)  # between the two estimates
    assert columnar_json._decode_whole(bodies["box"]) and not columnar_json._decode_whole(bodies["mask"])
    monkeypatch.setattr(columnar_json, "SPLIT_BYTES", 100)  # from SPLIT_BYTES on, always split
    assert not columnar_json._decode_whole(bodies["box"])
    monkeypatch.setattr(columnar_json, "WHOLE_BYTES", 10**9)
    assert columnar_json._decode_whole(b"{}")


@pytest.mark.parametrize("seed", range(6))
def test_span_is_take_of_the_range(seed: int) -> None:
    """``ShapeTable.span(lo, hi)`` (views) holds what ``take(arange(lo, hi))`` copies: every
    column, the coordinates, attributes and skeleton elements renumbered."""
    rng = np.random.default_rng(seed)
    table = read_annotations_bytes(json.dumps(random_body(seed)[0]).encode(), where="a").shapes
    m = len(table)
    for lo, hi in [(0, m), (0, 0), (m, m), *(sorted(rng.integers(0, m + 1, 2).tolist()) for _ in range(5))]:
        got, want = table.span(lo, hi), table.take(np.arange(lo, hi))
        for f in dataclasses.fields(ShapeTable):
            a, b = getattr(got, f.name), getattr(want, f.name)
            assert np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b, f.name
        assert [dump_shape(s) for s in got.shapes()] == [dump_shape(s) for s in want.shapes()]


def test_decoded_shape_types_are_cvats() -> None:
    """The literal the fast path (and the rule schema) decodes ``type`` into lists every ShapeType,
    and nothing else."""
    from typing import get_args

    from cvat_ext.annotations.model import ShapeType, ShapeTypeName

    assert set(get_args(ShapeTypeName)) == {t.value for t in ShapeType}


# ----------------------------------------------------------------------------------------------
# the options other readers need (cvat-ext al rank's predictions)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("path_taken", ["fast", "slow", "body"])
def test_tracks_skip_keeps_the_frames_own_shapes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int,
                                                 path_taken: str) -> None:
    """``tracks="skip"``: the same table as a body without its tracks, on every path; the default
    still expands them."""
    body, stop_frame = random_body(seed)
    if path_taken == "slow":
        monkeypatch.setattr(columnar_json, "_fast", _refuse_fast)
    without = {**body, "tracks": []}
    path, bare = tmp_path / "a.json", tmp_path / "bare.json"
    path.write_text(json.dumps(body))
    bare.write_text(json.dumps(without))
    if path_taken == "body":
        cols = columnar_json.read_annotations_body(body, where="job 5", last_frame=stop_frame, tracks="skip")
    else:
        cols = read_annotations_file(path, last_frame=stop_frame, tracks="skip")
    assert _columns_view(cols) == _store_view(bare, stop_frame)
    assert not cols.from_tracks
    expanded = read_annotations_file(path, last_frame=stop_frame)
    assert _columns_view(expanded) == _store_view(path, stop_frame)


def _refuse_fast(*args: Any, **kwargs: Any) -> ReplicaColumns:
    raise columnar_json._NotFast


def test_tracks_skip_still_checks_the_tracks(tmp_path: Path) -> None:
    body, _ = random_body(3)
    body["tracks"] = [{"frame": 0, "label_id": 1, "shapes": "none"}]
    path = tmp_path / "a.json"
    path.write_text(json.dumps(body))
    with pytest.raises(AnnotationFormatError, match=r"a\.json: tracks\[0\]"):
        read_annotations_file(path, tracks="skip")


@pytest.mark.parametrize("path_taken", ["fast", "slow", "bytes", "body"])
@pytest.mark.parametrize(("scores", "message"), [
    ([0.5, 1.0, 0.0], None),
    ([0.5, 1.5, -1.0], r"^x\.json: shapes\[1\]: score 1\.5 is not a number in \[0, 1\]$"),
    ([0.5, 0.2, -1.0], r"^x\.json: shapes\[2\]: score -1\.0 is not a number in \[0, 1\]$"),
])
def test_score_range_names_the_first_shape_outside_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      path_taken: str, scores: list[float],
                                                      message: str | None) -> None:
    # file order differs from frame order: the index named is the file's
    shapes = [{**GOOD_SHAPE, "frame": 9 - i, "score": s} for i, s in enumerate(scores)]
    body = {"version": 0, "tags": [], "shapes": shapes, "tracks": []}
    path = tmp_path / "x.json"
    path.write_text(json.dumps(body))
    if path_taken == "slow":
        monkeypatch.setattr(columnar_json, "_fast", _refuse_fast)
    monkeypatch.chdir(tmp_path)

    def read() -> ReplicaColumns:
        if path_taken == "bytes":
            return read_annotations_bytes(path.read_bytes(), where="x.json", score_range=(0.0, 1.0))
        if path_taken == "body":
            return columnar_json.read_annotations_body(body, where="x.json", score_range=(0.0, 1.0))
        return read_annotations_file(Path("x.json"), score_range=(0.0, 1.0))

    # without the option any finite score is read, as before
    assert sorted(read_annotations_file(path).shapes.score.tolist()) == sorted(scores)
    if message is None:
        assert sorted(read().shapes.score.tolist()) == sorted(scores)
        return
    with pytest.raises(AnnotationFormatError, match=message):
        read()


_BAD_BODY = {"version": 0, "tags": [], "tracks": [], "shapes": [GOOD_SHAPE, {**GOOD_SHAPE, "points": [1, 2, 3]}]}


@pytest.mark.parametrize(
    ("text", "named"), [(json.dumps(_BAD_BODY), "shapes[1]"), (json.dumps(_BAD_BODY)[:-40], "JSON")]
)
def test_a_bad_body_from_a_pipe_gets_the_error_a_file_gets(tmp_path: Path, text: str, named: str) -> None:
    """``--annotations a=<(curl ...)``: the pipe is read once; when the body is bad, the slow path
    reads those bytes (not the drained pipe) and names the bad object, as it does for a file."""
    path = tmp_path / "a.json"
    path.write_text(text)
    fifo = tmp_path / "a.fifo"
    os.mkfifo(fifo)

    def serve() -> None:
        with fifo.open("w") as fh:  # one reader, once
            fh.write(text)

    errors: list[AnnotationFormatError] = []

    def read() -> None:
        try:
            read_annotations_file(fifo)
        except AnnotationFormatError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=f, daemon=True) for f in (serve, read)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    if threads[1].is_alive():  # it opened the pipe again and waits for a writer: let it go
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("the reader opened the drained pipe a second time")
    expected = _same_error(path).replace(str(path), str(fifo), 1)
    assert named in expected and [str(e) for e in errors] == [expected]

"""Consensus on replicas streamed from disk (FrameStore) gives what the in-memory path gives."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cvat_ext.annotations.cvat_json import dump_job_annotations, dump_labels, load_json_file, parse_job_annotations
from cvat_ext.annotations.frame_store import FrameStore
from cvat_ext.annotations.model import JobAnnotations, JobMeta, LabelSet, ShapeType, Tag, Track, TrackShape
from cvat_ext.cli import main
from cvat_ext.consensus.batch import ChunkInput
from cvat_ext.consensus.engine import iter_chunks, score_replicas, score_streams
from cvat_ext.consensus.report import ConsensusResult, write_csv_tables, write_merged_json, write_report_json
from cvat_ext.consensus.settings import ConsensusSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from consensus_generator import Kind, Scenario, generate


def _job(kind: Kind, frames: int = 24) -> tuple[dict[str, JobAnnotations], LabelSet, JobMeta]:
    """Generated replicas; the first also gets a rectangle track and tags, the second a tag."""
    g = generate(Scenario(kind=kind, frames=frames, objects_per_frame=5, seed=3))
    names = list(g.replicas)
    track = Track(
        frame=2,
        label_id=1,
        id=77,
        shapes=(
            TrackShape(ShapeType.RECTANGLE, 2, np.array([10.0, 10.0, 60.0, 40.0])),
            TrackShape(ShapeType.RECTANGLE, 9, np.array([30.0, 12.0, 80.0, 42.0]), outside=True),
            TrackShape(ShapeType.RECTANGLE, 15, np.array([30.0, 12.0, 80.0, 42.0])),
        ),
    )
    first = g.replicas[names[0]]
    replicas = dict(g.replicas)
    replicas[names[0]] = dataclasses.replace(
        first, tracks=(track,), tags=(Tag(frame=1, label_id=1), Tag(frame=frames + 2, label_id=2))
    )
    replicas[names[1]] = dataclasses.replace(g.replicas[names[1]], tags=(Tag(frame=1, label_id=2),))
    return replicas, g.labels, g.meta


def _write_job(tmp_path: Path, replicas: dict[str, JobAnnotations], labels: LabelSet, meta: JobMeta) -> list[str]:
    args = []
    for name, ann in replicas.items():
        body = dump_job_annotations(ann)
        np.random.default_rng(0).shuffle(body["shapes"])  # files need not be in frame order
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(body))
        args += ["--annotations", f"{name}={path}"]
    (tmp_path / "labels.json").write_text(json.dumps(dump_labels(labels)))
    frames = [{"width": f.width, "height": f.height, "name": f.name} for f in meta.frames]
    meta_body = {"start_frame": meta.start_frame, "stop_frame": meta.stop_frame, "frames": frames}
    (tmp_path / "meta.json").write_text(json.dumps(meta_body))
    return [*args, "--labels", str(tmp_path / "labels.json"), "--meta", str(tmp_path / "meta.json")]


def _outputs(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    ("kind", "extra"),
    [("rectangle", []), ("mask", ["--quorum", "2"]), ("skeleton", ["--keypoint-sigmas", "estimate"])],
)
def test_cli_outputs_are_byte_identical_to_the_in_memory_path(
    tmp_path: Path, kind: Kind, extra: list[str]
) -> None:
    replicas, labels, meta = _job(kind)
    # the CLI refuses objects beyond the meta's frames (cvat_ext.inputs): leave the tag past the end out
    replicas = {
        name: dataclasses.replace(ann, tags=tuple(t for t in ann.tags if t.frame <= meta.stop_frame))
        for name, ann in replicas.items()
    }
    inputs = _write_job(tmp_path, replicas, labels, meta)

    def run(out: Path) -> dict[str, bytes]:
        outs = ["--report-out", str(out / "report.json"), "--csv-dir", str(out / "tables")]
        outs += ["--merged-out", str(out / "merged.json")]
        argv = ["qa", "consensus", *inputs, *outs, "--chunk-frames", "5", "--no-progress", *extra]
        assert main(argv) == 0
        return _outputs(out)

    streamed = run(tmp_path / "new")

    def whole_then_write(out: Path) -> dict[str, bytes]:
        """The CLI before the columnar reader and FrameStore: every file parsed whole."""
        paths = {v.partition("=")[0]: v.partition("=")[2] for v in inputs[1:-4:2]}
        anns = {name: parse_job_annotations(load_json_file(p), where=p) for name, p in paths.items()}
        argv_settings = ["--quorum", "2"] if "--quorum" in extra else []
        settings = ConsensusSettings.parse(
            {
                "chunk_frames": 5,
                "quorum": 2 if argv_settings else None,
                "keypoint_sigmas": "estimate" if "estimate" in extra else "default",
            },
            where="test",
        )
        result = score_replicas(anns, labels, meta, settings)
        write_report_json(result, out / "report.json")
        write_csv_tables(result, out / "tables")
        write_merged_json(result, out / "merged.json")
        return _outputs(out)

    whole = whole_then_write(tmp_path / "old")
    assert sorted(streamed) == ["merged.json", "report.json", *(f"tables/{t}.csv" for t in TABLES)]
    assert streamed == whole
    merged = json.loads(streamed["merged.json"])
    assert merged["shapes"] and json.loads(streamed["report.json"])["summary"]["frames"] == len(meta.frames)


TABLES = ("annotators", "findings", "frames", "labels", "pairs", "summary")


def _plain(result: ConsensusResult) -> Any:
    return (
        result.summary,
        result.annotators,
        result.pairs,
        sorted((f.frame, f.code, f.message) for f in result.findings),
        dump_job_annotations(result.merged),
    )


@pytest.mark.parametrize("cache_objects", [0, 40, None, 10**9])
def test_score_streams_equals_score_replicas(tmp_path: Path, cache_objects: int | None) -> None:
    replicas, labels, meta = _job("polygon", frames=12)
    settings = ConsensusSettings(chunk_frames=4)
    inputs = _write_job(tmp_path, replicas, labels, meta)
    paths = {value.partition("=")[0]: value.partition("=")[2] for value in inputs[1:-4:2]}
    # the files' shape order (shuffled) decides the order of float sums: compare with the files parsed whole
    parsed = {name: parse_job_annotations(load_json_file(path)) for name, path in paths.items()}
    expected = score_replicas(parsed, labels, meta, settings)
    passes: list[str] = []
    stores = {name: FrameStore(path) for name, path in paths.items()}
    try:
        got = score_streams(
            stores, labels, meta, settings, cache_objects=cache_objects, progress=lambda s, _n: passes.append(s)
        )
    finally:
        for store in stores.values():
            store.close()
    assert _plain(got) == _plain(expected)
    assert passes.count("match") == passes.count("merge") == 4  # 13 frames (one tag-only) in chunks of 4


def test_iter_chunks_takes_frame_sources_or_whole_replicas(tmp_path: Path) -> None:
    replicas, labels, meta = _job("rectangle", frames=6)
    anns = list(replicas.values())
    whole = list(iter_chunks(anns, meta, 4))
    inputs = _write_job(tmp_path, replicas, labels, meta)
    with FrameStore(inputs[3].partition("=")[2]) as store:  # the second replica, from disk
        mixed = list(iter_chunks([anns[0], lambda: store.iter_frames(meta.stop_frame, window=2), anns[2]], meta, 4))
    assert [c.frames for c in mixed] == [c.frames for c in whole]

    def points(chunk: ChunkInput) -> list[Any]:
        # (the file's shapes are shuffled within a frame)
        rows = chunk.per_frame
        return [[None if f is None else sorted(s.points.tolist() for s in f.shapes) for f in row] for row in rows]

    assert [points(c) for c in mixed] == [points(c) for c in whole]

"""Benchmark: peak memory of ``cvat-ext qa consensus`` on a long job.

Writes a generated job (``bench/consensus_generator.py``, rectangles, 3 annotators) to JSON files
slice by slice, so the generator never holds the job, then runs the CLI in a subprocess with the
agreement report, the CSV tables and the merged JSON, and prints the child's peak RSS, its CPU
seconds and the input size. ``--in-memory`` also runs the path the CLI took before
:class:`~cvat_ext.annotations.frame_store.FrameStore` (each file parsed whole, then
``score_replicas``), side by side in the same run.

    python3 bench/consensus_cli_memory.py                         # 10,000 frames x 20 boxes
    python3 bench/consensus_cli_memory.py --frames 1000 --in-memory
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TextIO

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))

from consensus_generator import Scenario, generate, write_labels_and_meta
from results_io import BenchResults

from cvat_ext.annotations.cvat_json import dump_shape

#: frames generated at once (each slice its own seed)
SLICE_FRAMES = 250

#: the CLI's path before FrameStore, for comparison: every replica file parsed whole
IN_MEMORY = """
import sys
from pathlib import Path
from cvat_ext.annotations.cvat_json import load_json_file, parse_job_annotations, parse_job_meta, parse_labels
from cvat_ext.consensus.engine import score_replicas
from cvat_ext.consensus.report import write_csv_tables, write_merged_json, write_report_json
labels_path, meta_path, out, *replicas = sys.argv[1:]
labels = parse_labels(load_json_file(labels_path))
meta = parse_job_meta(load_json_file(meta_path))
anns = {n: parse_job_annotations(load_json_file(p)) for n, _, p in (r.partition("=") for r in replicas)}
result = score_replicas(anns, labels, meta)
write_report_json(result, Path(out) / "report.json")
write_csv_tables(result, Path(out) / "tables")
write_merged_json(result, Path(out) / "merged.json")
"""


def write_job(folder: Path, frames: int, objects: int) -> list[Path]:
    """Replica files ``<annotator>.json``, ``labels.json`` and ``meta.json``; returns the replicas."""
    files: dict[str, TextIO] = {}
    first: dict[str, bool] = {}
    try:
        for start in range(0, frames, SLICE_FRAMES):
            n = min(SLICE_FRAMES, frames - start)
            g = generate(Scenario(kind="rectangle", frames=n, objects_per_frame=objects, seed=start))
            for name, ann in g.replicas.items():
                if name not in files:
                    files[name] = (folder / f"{name}.json").open("w")
                    files[name].write('{"version": 0, "tags": [], "shapes": [')
                    first[name] = True
                fh = files[name]
                for shape in ann.shapes:
                    body = dump_shape(shape)
                    body["frame"] += start
                    fh.write(("" if first[name] else ", ") + json.dumps(body))
                    first[name] = False
        for fh in files.values():
            fh.write('], "tracks": []}')
    finally:
        for fh in files.values():
            fh.close()
    write_labels_and_meta(folder, frames)
    return [folder / f"{name}.json" for name in files]


def run_measured(argv: list[str]) -> tuple[float, float]:
    """Run ``argv``; the child's peak RSS (GB) and CPU seconds (user + system)."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, cwd=Path(__file__).resolve().parents[1])
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[:4]} failed with exit code {proc.returncode}")
    # Linux reports ru_maxrss in KiB
    return usage.ru_maxrss * 1024 / 1e9, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--objects", type=int, default=20, help="truth objects per frame")
    parser.add_argument("--in-memory", action="store_true", help="also run the whole-file parse path")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="cvat-ext-cli-memory-") as tmp:
        folder = Path(tmp)
        replicas = write_job(folder, args.frames, args.objects)
        size = sum(p.stat().st_size for p in replicas)
        print(f"{args.frames} frames, {len(replicas)} replicas, {size / 1e6:.0f} MB of annotations JSON")
        results = BenchResults(__file__, note=f"{args.frames:,} frames x {args.objects} boxes, {len(replicas)} "
                               f"replicas, {size / 1e6:.0f} MB of JSON; report, CSV tables and merged JSON written")
        pairs = [f"{p.stem}={p}" for p in replicas]
        labels, meta = str(folder / "labels.json"), str(folder / "meta.json")

        out = folder / "streamed"
        cmd = [sys.executable, "-m", "cvat_ext", "qa", "consensus", "--labels", labels, "--meta", meta]
        cmd += [a for pair in pairs for a in ("--annotations", pair)]
        cmd += ["--report-out", str(out / "report.json"), "--csv-dir", str(out / "tables")]
        cmd += ["--merged-out", str(out / "merged.json"), "--no-progress"]
        rss, cpu = run_measured(cmd)
        print(f"  qa consensus (FrameStore):   peak RSS {rss:.2f} GB, CPU {cpu:.1f} s")
        results.add("qa consensus (FrameStore): peak RSS", rss, "GB")
        results.add("qa consensus (FrameStore): CPU", cpu, "s")

        if args.in_memory:
            out = folder / "whole"
            out.mkdir()
            rss, cpu = run_measured([sys.executable, "-c", IN_MEMORY, labels, meta, str(out), *pairs])
            print(f"  whole-file parse (before):   peak RSS {rss:.2f} GB, CPU {cpu:.1f} s")
            same = all(
                (folder / "streamed" / rel).read_bytes() == (out / rel).read_bytes()
                for rel in ("report.json", "merged.json", "tables/findings.csv", "tables/summary.csv")
            )
            print(f"  outputs byte-identical: {same}")
            results.add("whole-file parse: peak RSS", rss, "GB")
            results.add("whole-file parse: CPU", cpu, "s")
            results.add("outputs byte-identical (1 = yes)", int(same), "", "1", same)
        results.write()


if __name__ == "__main__":
    main()

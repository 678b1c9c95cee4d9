"""Benchmark: ``cvat-ext qa consensus`` end to end, process start to all outputs written.

Generates a job with ``bench/consensus_generator.py`` (3 annotators: precise / moderate / sloppy,
20 truth objects a frame) for boxes, masks and polygons, writes each replica as a CVAT annotations
JSON file (``GET /api/jobs/{id}/annotations``), then runs, pinned to one core (``taskset -c 0``),
side by side in the same run:

* ``cli``: ``python -m cvat_ext qa consensus`` with the agreement report, the CSV tables and the
  merged CVAT JSON;
* ``today``: the path the CLI took before the columnar reader (each file spilled to a
  :class:`~cvat_ext.annotations.frame_store.FrameStore`, ``score_streams``, the per-finding writers);
* ``before`` (with ``--before DIR``): the same CLI command from another source tree, e.g. the
  previous version of the columnar path (``git archive main cvat_ext | tar -x -C DIR``).

The measured ``cvat_ext`` trees are byte-compiled first (``__pycache__`` beside the sources, as
``pip install`` does for an installed package): where the environment sets
``PYTHONDONTWRITEBYTECODE`` (this development machine does), every run would otherwise compile
some 60 modules from source, about 0.1 s of start-up no user pays.

It prints frames/s and peak RSS of both, whether their outputs are byte-identical, the time from
process start to the first byte read (the labels file is a FIFO; the bench times the moment the
child opens it), and a boxes run at ``--big-frames`` for the memory target. Figures also go to
``bench/results/consensus_e2e.json``. Generated files are kept in ``--cache-dir`` for reruns.

    python3 bench/consensus_e2e.py                          # 10,000 frames, boxes/masks/polygons, 100,000 boxes
    python3 bench/consensus_e2e.py --frames 2000 --big-frames 0 --kinds rectangle
    python3 bench/consensus_e2e.py --kinds rectangle --big-frames 0 --before /tmp/main-src
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
sys.path.insert(0, str(ROOT / "bench"))

from results_io import BenchResults  # noqa: E402

#: frames generated at once (each slice its own seed)
SLICE_FRAMES = 250
#: frames/s targets of issue 12 per kind, and the peak RSS targets (GB) per job size
TARGET_FPS = {"rectangle": 3000.0, "mask": 600.0, "polygon": 600.0}
TARGET_RSS_GB = {10_000: 1.0, 100_000: 1.5}
OUTPUTS = ("report.json", "merged.json", "tables/findings.csv", "tables/summary.csv", "tables/frames.csv")

#: today's path (before the columnar reader), kept runnable for the side-by-side figures
TODAY = """
import sys
from contextlib import ExitStack
from pathlib import Path
from cvat_ext.annotations.cvat_json import load_json_file, parse_job_meta, parse_labels
from cvat_ext.annotations.frame_store import FrameStore
from cvat_ext.consensus.engine import score_streams
from cvat_ext.consensus.report import write_csv_tables, write_merged_json, write_report_json
from cvat_ext.consensus.settings import ConsensusSettings
labels_path, meta_path, out, *replicas = sys.argv[1:]
labels = parse_labels(load_json_file(labels_path), where=labels_path)
meta = parse_job_meta(load_json_file(meta_path), where=meta_path)
with ExitStack() as stack:
    stores = {n: stack.enter_context(FrameStore(p)) for n, _, p in (r.partition("=") for r in replicas)}
    result = score_streams(stores, labels, meta, ConsensusSettings())
write_report_json(result, Path(out) / "report.json")
write_csv_tables(result, Path(out) / "tables")
write_merged_json(result, Path(out) / "merged.json")
"""


NAMES = ("precise", "moderate", "sloppy")
#: frames generated for real; longer jobs repeat them with shifted frame numbers (the generator
#: takes ~0.5 s of CPU per 250 frames: 100,000 frames would take minutes before any measuring)
TILE_FRAMES = 10_000


def write_job(folder: Path, kind: str, frames: int, objects: int) -> list[Path]:
    """Replica files ``<annotator>.json``, ``labels.json`` and ``meta.json`` (kept when present)."""
    from consensus_generator import Scenario, generate, write_labels_and_meta

    from cvat_ext.annotations.cvat_json import dump_shape

    done = folder / "done"
    if done.exists():
        return [folder / f"{n}.json" for n in NAMES]
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    if frames > TILE_FRAMES and frames % TILE_FRAMES == 0:
        tile = write_job(folder.parent / f"{kind}-{TILE_FRAMES}-{objects}", kind, TILE_FRAMES, objects)
        for src in tile:
            _tile(src, folder / src.name, frames // TILE_FRAMES)
        write_labels_and_meta(folder, frames)
        done.touch()
        return [folder / f"{n}.json" for n in NAMES]
    files: dict[str, TextIO] = {}
    try:
        for start in range(0, frames, SLICE_FRAMES):
            n = min(SLICE_FRAMES, frames - start)
            g = generate(Scenario(kind=kind, frames=n, objects_per_frame=objects, seed=start))  # type: ignore[arg-type]
            for name, ann in g.replicas.items():
                if name not in files:
                    files[name] = (folder / f"{name}.json").open("w")
                    files[name].write('{"version": 0, "tags": [], "shapes": [')
                fh = files[name]
                for i, shape in enumerate(ann.shapes):
                    body = dump_shape(shape)
                    body["frame"] += start
                    fh.write(("" if start == 0 and i == 0 else ", ") + json.dumps(body))
        for fh in files.values():
            fh.write('], "tracks": []}')
    finally:
        for fh in files.values():
            fh.close()
    write_labels_and_meta(folder, frames)
    done.touch()
    return [folder / f"{n}.json" for n in NAMES]


def _tile(src: Path, dst: Path, times: int) -> None:
    """``dst``: the shapes of ``src`` ``times`` over, each copy shifted by the tile's frame count."""
    shapes = json.loads(src.read_text())["shapes"]
    with dst.open("w") as fh:
        fh.write('{"version": 0, "tags": [], "shapes": [')
        for t in range(times):
            for i, shape in enumerate(shapes):
                shape["frame"] += TILE_FRAMES if t else 0
                fh.write(("" if t == 0 and i == 0 else ", ") + json.dumps(shape))
        fh.write('], "tracks": []}')


def bytecode_env(trees: list[Path]) -> dict[str, str]:
    """The environment the measured runs get, ``cvat_ext`` of each tree byte-compiled (untimed;
    see the module docstring)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    for tree in trees:
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "cvat_ext")], env=env, check=True)
    return env


def run_measured(
    argv: list[str], labels_text: str, fifo: Path | None, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> tuple[float, float, float, float]:
    """Run ``argv`` on core 0 with ``fifo`` serving the labels: wall seconds, CPU seconds (user +
    system: what the run costs when other work shares the core), seconds to the first byte read
    (the child opening the FIFO; NaN without one), peak RSS (GB)."""
    opened: list[float] = []
    server = None
    if fifo is not None:
        if fifo.exists():
            fifo.unlink()
        os.mkfifo(fifo)

        def serve() -> None:
            with fifo.open("w") as fh:  # blocks until the child opens the FIFO to read
                opened.append(time.perf_counter())
                fh.write(labels_text)

        server = threading.Thread(target=serve, daemon=True)
        server.start()
    # the previous run's outputs (deleted or still being written back to disk) are flushed first:
    # otherwise the kernel does that work during this run, on a timing that varies from run to run
    os.sync()
    t0 = time.perf_counter()
    proc = subprocess.Popen(["taskset", "-c", "0", *argv], stdout=subprocess.DEVNULL, cwd=cwd, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if server is not None:
        server.join(timeout=5)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv[:6]} failed with exit code {os.waitstatus_to_exitcode(status)}")
    first_byte = opened[0] - t0 if opened else float("nan")
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, first_byte, usage.ru_maxrss * 1024 / 1e9  # Linux reports ru_maxrss in KiB


Measured = tuple[float, float, float, float]


def run_both(
    folder: Path, replicas: list[Path], *, today: bool, before: Path | None = None, env: dict[str, str] | None = None
) -> dict[str, Measured]:
    pairs = [f"{p.stem}={p}" for p in replicas]
    labels_text = (folder / "labels.json").read_text()
    fifo = folder / "labels.fifo"
    meta = str(folder / "meta.json")
    out: dict[str, Measured] = {}
    cli_out = folder / "out-cli"
    shutil.rmtree(cli_out, ignore_errors=True)

    def cli(out_dir: Path, labels: Path = fifo) -> list[str]:
        cmd = [sys.executable, "-m", "cvat_ext", "qa", "consensus", "--labels", str(labels), "--meta", meta]
        cmd += [a for pair in pairs for a in ("--annotations", pair)]
        cmd += ["--report-out", str(out_dir / "report.json"), "--csv-dir", str(out_dir / "tables")]
        return [*cmd, "--merged-out", str(out_dir / "merged.json"), "--no-progress"]

    out["cli"] = run_measured(cli(cli_out), labels_text, fifo, env=env)
    if before is not None:  # python -m puts the working folder first on sys.path: run from there
        shutil.rmtree(folder / "out-before", ignore_errors=True)
        # the labels as a plain file: an older CLI may open them twice (its kind sniff drained a FIFO)
        argv = cli(folder / "out-before", folder / "labels.json")
        out["before"] = run_measured(argv, labels_text, None, cwd=before, env=env)
    if today:
        today_out = folder / "out-today"
        shutil.rmtree(today_out, ignore_errors=True)
        today_out.mkdir()
        argv = [sys.executable, "-c", TODAY, str(fifo), meta, str(today_out), *pairs]
        out["today"] = run_measured(argv, labels_text, fifo, env=env)
    return out


def identical(folder: Path, other: str = "out-today") -> bool:
    return all((folder / "out-cli" / rel).read_bytes() == (folder / other / rel).read_bytes() for rel in OUTPUTS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--big-frames", type=int, default=100_000, help="boxes job for the RSS target (0: skip)")
    parser.add_argument("--objects", type=int, default=20, help="truth objects per frame")
    parser.add_argument("--kinds", default="rectangle,mask,polygon")
    parser.add_argument("--no-today", action="store_true", help="skip today's path (no ratios, no byte check)")
    parser.add_argument(
        "--today-frames", type=int, default=10_000, help="run today's path only on jobs of at most this many frames"
    )
    parser.add_argument("--side-frames", type=int, default=0, help="also run each kind at this size (side by side)")
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/cvat-ext-e2e"))
    parser.add_argument(
        "--before", type=Path, help="also run the CLI of the source tree in this folder (holding cvat_ext/)"
    )
    args = parser.parse_args()

    figures: list[dict[str, Any]] = []

    def figure(name: str, value: float, unit: str, target: str | None = None, met: bool | None = None) -> None:
        figures.append({"name": name, "value": round(value, 4), "unit": unit, "target": target, "met": met})

    jobs = [(kind, args.frames) for kind in args.kinds.split(",")]
    if args.side_frames:
        jobs = [(kind, args.side_frames) for kind in args.kinds.split(",")] + jobs
    if args.big_frames:
        jobs.append(("rectangle", args.big_frames))
    env = bytecode_env([ROOT] + ([args.before] if args.before is not None else []))
    for kind, frames in jobs:
        folder = args.cache_dir / f"{kind}-{frames}-{args.objects}"
        replicas = write_job(folder, kind, frames, args.objects)
        size = sum(p.stat().st_size for p in replicas)
        # today's path at 100,000 frames takes ~10 min: only the CLI runs there
        today = not args.no_today and frames <= args.today_frames
        runs = run_both(folder, replicas, today=today, before=args.before, env=env)
        print(f"{kind}, {frames} frames x 3 replicas, {size / 1e6:.0f} MB of JSON (one core)")
        for path, (wall, cpu, first, rss) in runs.items():
            speed = f"{frames / wall:7.0f} frames/s wall ({wall:6.1f} s)"
            speed += f", {frames / cpu:7.0f} frames/s CPU ({cpu:6.1f} s)"
            print(f"  {path:>5}: {speed}, first byte {first:.2f} s, RSS {rss:.2f} GB")
        wall, cpu, first, rss = runs["cli"]
        tag = f"{kind} {frames} frames"
        fps_target = TARGET_FPS.get(kind) if frames == 10_000 else None  # the targets are set at 10,000 frames
        for clock, seconds in (("wall", wall), ("CPU", cpu)):
            figure(
                f"{tag}: cli frames/s ({clock})",
                frames / seconds,
                "frames/s",
                None if fps_target is None else f">= {fps_target:.0f}",
                None if fps_target is None else frames / seconds >= fps_target,
            )
        rss_target = TARGET_RSS_GB.get(frames)
        figure(
            f"{tag}: cli peak RSS",
            rss,
            "GB",
            None if rss_target is None else f"<= {rss_target}",
            None if rss_target is None else rss <= rss_target,
        )
        figure(f"{tag}: cli time to first byte read", first, "s", "< 0.3", first < 0.3)
        if "before" in runs:
            b_wall, b_cpu, _, b_rss = runs["before"]
            same = identical(folder, "out-before")
            print(f"  speed-up over before {b_wall / wall:.1f}x wall, {b_cpu / cpu:.1f}x CPU; byte-identical: {same}")
            figure(f"{tag}: before frames/s (wall)", frames / b_wall, "frames/s")
            figure(f"{tag}: before frames/s (CPU)", frames / b_cpu, "frames/s")
            figure(f"{tag}: before peak RSS", b_rss, "GB")
            figure(f"{tag}: speed-up over before (CPU)", b_cpu / cpu, "x")
            figure(f"{tag}: outputs byte-identical to before", float(same), "bool", "1", same)
        if "today" in runs:
            t_wall, t_cpu, t_first, t_rss = runs["today"]
            same = identical(folder)
            print(f"  speed-up {t_wall / wall:.1f}x wall, {t_cpu / cpu:.1f}x CPU; outputs byte-identical: {same}")
            figure(f"{tag}: today frames/s (wall)", frames / t_wall, "frames/s")
            figure(f"{tag}: today frames/s (CPU)", frames / t_cpu, "frames/s")
            figure(f"{tag}: today peak RSS", t_rss, "GB")
            figure(f"{tag}: today time to first byte read", t_first, "s")
            figure(f"{tag}: speed-up over today (wall)", t_wall / wall, "x")
            figure(f"{tag}: speed-up over today (CPU)", t_cpu / cpu, "x")
            figure(f"{tag}: outputs byte-identical to today", float(same), "bool", "1", same)

    # figures of jobs not run this time (e.g. a separate --big-frames run) are kept
    out = ROOT / "bench" / "results" / "consensus_e2e.json"
    out.parent.mkdir(exist_ok=True)
    kept = json.loads(out.read_text())["figures"] if out.exists() else []
    fresh = {f["name"] for f in figures}
    results = BenchResults(__file__, note="figures of jobs not run by this command are kept from earlier runs")
    results.add_all([f for f in kept if f["name"] not in fresh] + figures)
    results.write()


if __name__ == "__main__":
    main()

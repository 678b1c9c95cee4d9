"""One blurring run: every source image -> detect -> merge regions -> redact -> clean atomic write.

The run's JSON report (:class:`BlurReport`, written by :func:`write_report`)::

    {"run_id": "<uuid>", "started_at": "<ISO UTC>", "finished_at": ..., "status": "ok" | "failed",
     "error": null | "<message>", "src": "<path>", "dst": "<path>", "detector": "<name>",
     "parameters": {"margin": 0.25, "method": "gaussian", "strength": 0.15, "min_score": 0.5, ...},
     "files": [{"src": "<rel path>", "dst": "<rel path>", "width": W, "height": H,
                "regions": [{"kind": "face", "xyxy": [x0, y0, x1, y1], "score": 0.97}],
                "redacted_ltrb": [[l, t, r, b], ...], "metadata_removed": ["exif", "gps"]}],
     "totals": {"files": N, "regions": R, "faces": F, "plates": P}}

A failed run (a non-image, an unwritable destination) still writes its report with the files done
so far and the error; those outputs stay, complete (atomic writes), and SRC is never written.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from cvat_ext.errors import ConfigError, CvatExtError
from cvat_ext.privacy.detectors import KINDS, PiiDetector
from cvat_ext.privacy.files import Source, read_image, write_clean
from cvat_ext.privacy.redact import Method, merge_regions, redact

__all__ = ["BlurParams", "BlurReport", "FileResult", "blur_files", "write_report"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BlurParams:
    """``margin`` grows each box by this fraction of its size; ``min_score`` drops weaker regions;
    ``method``/``strength`` see :mod:`cvat_ext.privacy.redact`; ``jpeg_quality`` of JPEG outputs;
    ``overwrite`` allows replacing existing files in DST."""

    margin: float = 0.25
    min_score: float = 0.5
    method: Method = "gaussian"
    strength: float = 0.15
    jpeg_quality: int = 95
    overwrite: bool = False


@dataclass
class FileResult:
    src: str
    dst: str
    width: int
    height: int
    regions: list[dict[str, Any]]
    redacted_ltrb: list[list[int]]
    metadata_removed: list[str]


@dataclass
class BlurReport:
    run_id: str
    started_at: str
    src: str
    dst: str
    detector: str
    parameters: dict[str, Any]
    files: list[FileResult] = field(default_factory=list)
    finished_at: str | None = None
    status: str = "running"
    error: str | None = None

    @property
    def totals(self) -> dict[str, int]:
        kinds = [r["kind"] for f in self.files for r in f.regions]
        return {
            "files": len(self.files),
            "regions": len(kinds),
            "faces": kinds.count("face"),
            "plates": kinds.count("plate"),
        }

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["totals"] = self.totals
        return out


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def blur_files(
    sources: Sequence[Source],
    dst: Path,
    detector: PiiDetector,
    params: BlurParams,
    *,
    src_label: str,
    on_file: Callable[[FileResult], None] | None = None,
    workers: int = 1,
) -> BlurReport:
    """Redact every source into ``dst`` (same relative paths). Never raises for a bad file: the
    report comes back ``failed`` with the error naming the file.

    ``workers`` > 1 spreads the files over that many processes (the detector is sent to each
    once). One process stops at the first bad file; several finish the files already handed out,
    and the report lists every file written, in source order.
    """
    if workers < 1:
        raise ConfigError(f"privacy: workers must be >= 1, got {workers}")
    report = BlurReport(str(uuid.uuid4()), _now_iso(), src_label, str(dst), detector.name, asdict(params))
    results = (
        _run_serial(sources, dst, detector, params)
        if workers == 1
        else _run_parallel(sources, dst, detector, params, workers)
    )
    for result in results:
        if isinstance(result, CvatExtError):
            report.status, report.error = "failed", str(result)
            if workers == 1:
                break
            continue
        report.files.append(result)
        if on_file is not None:
            on_file(result)
    if report.status == "running":
        report.status = "ok"
    report.finished_at = _now_iso()
    return report


def _run_serial(
    sources: Sequence[Source], dst: Path, detector: PiiDetector, params: BlurParams
) -> Iterator[FileResult | CvatExtError]:
    for source in sources:
        try:
            yield _blur_one(source, dst, detector, params)
        except CvatExtError as exc:
            yield exc
            return


_WORKER_DETECTOR: list[PiiDetector] = []


def _init_worker(detector: PiiDetector) -> None:
    import cv2

    # one OpenCV thread per worker: the workers are the parallelism (threads x processes oversubscribe)
    cv2.setNumThreads(1)
    _WORKER_DETECTOR[:] = [detector]


def _blur_in_worker(source: Source, dst: Path, params: BlurParams) -> FileResult | CvatExtError:
    try:
        return _blur_one(source, dst, _WORKER_DETECTOR[0], params)
    except CvatExtError as exc:
        return exc


def _run_parallel(
    sources: Sequence[Source], dst: Path, detector: PiiDetector, params: BlurParams, workers: int
) -> Iterator[FileResult | CvatExtError]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: a child forked from a process whose OpenCV thread pool is running can deadlock
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(detector,)) as pool:
        futures = [pool.submit(_blur_in_worker, source, dst, params) for source in sources]
        first_error: CvatExtError | None = None
        for future in futures:
            result = future.result()
            if isinstance(result, CvatExtError):
                first_error = first_error or result
            else:
                yield result
        if first_error is not None:
            yield first_error


def _blur_one(source: Source, dst: Path, detector: PiiDetector, params: BlurParams) -> FileResult:
    target = dst / source.rel
    if target.resolve() == source.path.resolve():
        raise ConfigError(f"{source.path}: destination is the source itself")
    if target.exists() and not params.overwrite:
        raise ConfigError(f"{target}: exists (pass --overwrite to replace it)")
    rgb, metadata = read_image(source)
    t0 = time.perf_counter()
    found = detector(rgb)
    keep = found.score >= params.min_score
    xyxy, score, class_id = found.xyxy[keep], found.score[keep], found.class_id[keep]
    regions_ltrb = merge_regions(xyxy, rgb.shape[:2], margin=params.margin)
    clean = redact(rgb, regions_ltrb, method=params.method, strength=params.strength)
    write_clean(clean, target, jpeg_quality=params.jpeg_quality)
    logger.info("%s: %d regions in %.3f s", source.rel, len(score), time.perf_counter() - t0)
    regions = [
        {"kind": KINDS[int(c)], "xyxy": np.round(b, 1).tolist(), "score": round(float(s), 4)}
        for b, s, c in zip(xyxy, score, class_id)
    ]
    return FileResult(
        source.rel.as_posix(),
        source.rel.as_posix(),
        int(rgb.shape[1]),
        int(rgb.shape[0]),
        regions,
        regions_ltrb.tolist(),
        metadata,
    )


def write_report(report: BlurReport, path: Path) -> None:
    """The report as JSON at ``path`` (folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.as_dict(), indent=2) + "\n", encoding="utf-8")

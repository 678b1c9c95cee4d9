"""``cvat-ext privacy``: blur faces and licence plates before annotation, create the CVAT task from
the blurred copies, scan a task for what is still visible.

Connection settings for ``create-task`` and ``scan`` are those of ``cvat-ext cvat`` (options or
``CVAT_EXT_CVAT__*``). Every blurring run writes its JSON report (``--report``, default
``DST/.cvat-ext/privacy-<run id>.json``) and, with ``--state-url`` (or ``CVAT_EXT_STATE__URL``),
one entry in the sidecar's audit log (action ``privacy.blur``), exported by ``cvat-ext audit export``.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from cvat_ext.cli.cvat import Connection, connection_options
from cvat_ext.errors import ConfigError

REPORT_DIR = ".cvat-ext"


class FindingsFound(click.ClickException):
    """Exit code 1 with a one-line summary: the scan found visible faces or plates."""

    exit_code = 1


def _detector_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--cascades",
            default="frontal,profile,plate",
            show_default=True,
            help="OpenCV cascades to run (comma-separated: frontal, profile, plate); 'none' for none.",
        ),
        click.option(
            "--detector-url",
            multiple=True,
            help="A deployed detector function to call too (its direct URL), e.g. http://nuclio:32768.",
        ),
        click.option(
            "--detector-labels",
            default="face=face",
            show_default=True,
            help="For --detector-url: model label=face|plate pairs, comma-separated (e.g. face=face,plate=plate).",
        ),
        click.option("--min-score", type=float, default=0.5, show_default=True, help="Ignore weaker regions."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _build_detector(cascades: str, urls: tuple[str, ...], labels: str) -> Any:
    from cvat_ext.privacy.detectors import CascadeDetector, HttpDetector, PiiDetector, union_detector

    detectors: list[PiiDetector] = []
    names = [c.strip() for c in cascades.split(",") if c.strip() and c.strip() != "none"]
    if names:
        detectors.append(CascadeDetector(cascades=names))
    if urls:
        pairs = [p.split("=", 1) for p in labels.split(",") if p.strip()]
        if any(len(p) != 2 for p in pairs):
            raise ConfigError(f"--detector-labels: expected label=face|plate pairs, got {labels!r}")
        mapping = {k.strip(): v.strip() for k, v in pairs}
        detectors += [HttpDetector(url, mapping) for url in urls]
    return union_detector(detectors)


def _audit(state_url: str | None, report: Any, report_path: Path, task_id: int | None = None) -> None:
    if not state_url:
        return
    from cvat_ext.sidecar.state import open_store

    store = open_store(state_url)
    try:
        totals = report.totals
        store.append_audit(
            key=f"privacy:{report.run_id}",
            replica="cli",
            action="privacy.blur",
            reason=f"{totals['files']} files, {totals['faces']} faces, {totals['plates']} plates blurred "
            f"({report.status})",
            task_id=task_id,
            after={
                "run_id": report.run_id,
                "report": str(report_path.resolve()),
                "status": report.status,
                "error": report.error,
                "src": report.src,
                "dst": report.dst,
                "detector": report.detector,
                "parameters": report.parameters,
                "totals": totals,
            },
        )
    finally:
        store.close()


@click.group("privacy")
def group() -> None:
    """Blur faces and licence plates before annotation; scan tasks for visible ones."""


def _blur_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--margin", type=float, default=0.25, show_default=True, help="Grow each region by this fraction."
        ),
        click.option("--method", type=click.Choice(["gaussian", "pixelate"]), default="gaussian", show_default=True),
        click.option(
            "--strength",
            type=float,
            default=0.15,
            show_default=True,
            help="Blur sigma / block size, as a fraction of the region's shorter side.",
        ),
        click.option("--jpeg-quality", type=int, default=95, show_default=True),
        click.option("--workers", type=int, default=1, show_default=True, help="Processes to blur with."),
        click.option(
            "--report",
            "report_path",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Where to write the run's JSON report (default DST/.cvat-ext/privacy-<run id>.json).",
        ),
        click.option(
            "--state-url",
            envvar="CVAT_EXT_STATE__URL",
            help="Sidecar state store: the run is recorded in its audit log [env CVAT_EXT_STATE__URL].",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return _detector_options(fn)


def _run_blur(src: Path, dst: Path, opts: dict[str, Any], overwrite: bool) -> tuple[Any, Path]:
    from cvat_ext.privacy.files import check_destination, list_sources
    from cvat_ext.privacy.run import BlurParams, blur_files, write_report

    check_destination(src, dst)
    sources = list_sources(src)
    if not sources:
        raise ConfigError(f"{src}: no images found")
    detector = _build_detector(opts["cascades"], opts["detector_url"], opts["detector_labels"])
    params = BlurParams(
        margin=opts["margin"],
        min_score=opts["min_score"],
        method=opts["method"],
        strength=opts["strength"],
        jpeg_quality=opts["jpeg_quality"],
        overwrite=overwrite,
    )
    report = blur_files(sources, dst, detector, params, src_label=str(src), workers=opts["workers"])
    report_path = opts["report_path"] or dst / REPORT_DIR / f"privacy-{report.run_id}.json"
    write_report(report, report_path)
    return report, report_path


@group.command("blur")
@click.argument("src", type=click.Path(exists=True, path_type=Path))
@click.argument("dst", type=click.Path(file_okay=False, path_type=Path))
@_blur_options
@click.option("--overwrite", is_flag=True, help="Replace files that already exist in DST.")
def blur_cmd(src: Path, dst: Path, overwrite: bool, **opts: Any) -> None:
    """Copy the images of SRC (a folder, a .txt list or a CVAT manifest .jsonl) into DST with faces and
    plates blurred and all metadata removed. SRC is never written."""
    report, report_path = _run_blur(src, dst, opts, overwrite)
    _audit(opts["state_url"], report, report_path)
    totals = report.totals
    click.echo(
        f"{totals['files']} files -> {dst}: {totals['faces']} faces, {totals['plates']} plates blurred; "
        f"report {report_path}"
    )
    if report.error is not None:
        raise ConfigError(f"{report.error} (stopped; {totals['files']} files done, report {report_path})")


@group.command("create-task")
@click.argument("src", type=click.Path(exists=True, path_type=Path))
@click.option("--name", required=True, help="Task name.")
@click.option("--project", "project_id", type=int, required=True, help="Project id (the task takes its labels).")
@click.option("--segment-size", type=int, help="Frames per job.")
@click.option("--image-quality", type=int, default=95, show_default=True, help="CVAT's image_quality.")
@click.option(
    "--keep",
    "keep_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the blurred copies here (default: a temporary folder, removed after the upload).",
)
@_blur_options
@connection_options
def create_task_cmd(
    src: Path,
    name: str,
    project_id: int,
    segment_size: int | None,
    image_quality: int,
    keep_dir: Path | None,
    conn: Connection,
    **opts: Any,
) -> None:
    """Blur the images of SRC, then create a CVAT task from the blurred copies only.

    Nothing is uploaded unless every image was blurred and written: originals never reach CVAT."""
    with tempfile.TemporaryDirectory(prefix="cvat-ext-privacy-") as tmp:
        work = keep_dir or Path(tmp) / "blurred"
        report, report_path = _run_blur(src, work, opts, overwrite=False)
        if report.error is not None:
            _audit(opts["state_url"], report, report_path)
            raise ConfigError(f"{report.error} (nothing uploaded; report {report_path})")
        # CVAT keeps only the base name of each uploaded file: two equal names would collide there
        names = [Path(f.dst).name for f in report.files]
        clash = sorted({n for n in names if names.count(n) > 1})
        if clash:
            raise ConfigError(
                f"{src}: files in different folders share the names {clash[:5]}; CVAT keeps base names only"
            )
        # exactly the files this run wrote, in source order, read back from the work folder
        files = [(f.dst, (work / f.dst).read_bytes()) for f in report.files]
        with conn.client() as client:
            task = client.create_task_from_images(
                name, project_id=project_id, images=files, image_quality=image_quality, segment_size=segment_size
            )
        if keep_dir is None:  # the report outlives the temporary folder
            final_report = Path.cwd() / f"privacy-{report.run_id}.json" if opts["report_path"] is None else report_path
            if final_report != report_path:
                final_report.write_text(report_path.read_text(encoding="utf-8"), encoding="utf-8")
            report_path = final_report
        _audit(opts["state_url"], report, report_path, task_id=task.id)
    totals = report.totals
    click.echo(
        f"task {task.id} '{task.name}' created with {task.size} blurred frames "
        f"({totals['faces']} faces, {totals['plates']} plates); report {report_path}"
    )


@group.command("scan")
@click.option("--task", "task_id", type=int, required=True, help="CVAT task id.")
@_detector_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object per finding on stdout.")
@connection_options
def scan_cmd(
    task_id: int,
    cascades: str,
    detector_url: tuple[str, ...],
    detector_labels: str,
    min_score: float,
    as_json: bool,
    conn: Connection,
) -> None:
    """Report the frames of task N where faces or plates are still visible (exit code 1 if any)."""
    from cvat_ext.privacy.scan import scan_task

    detector = _build_detector(cascades, detector_url, detector_labels)
    findings = 0
    scanned = 0

    def count(_: int) -> None:
        nonlocal scanned
        scanned += 1

    with conn.client() as client:
        for finding in scan_task(client, task_id, detector, min_score=min_score, on_frame=count):
            findings += 1
            if as_json:
                click.echo(json.dumps(finding.as_dict()))
            else:
                kinds = ", ".join(f"{k} at {list(b)} ({s:.2f})" for k, b, s in finding.regions)
                click.echo(f"task {task_id} job {finding.job_id} frame {finding.frame}: {kinds}")
    click.echo(f"{scanned} frames scanned, {findings} with visible faces or plates", err=True)
    if findings:
        raise FindingsFound(f"task {task_id}: {findings} of {scanned} frames show faces or plates")

"""``cvat-ext privacy`` end to end: blur a folder, create a CVAT task (stand-in) from the blurred copies
only, scan tasks; reports and the audit log."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cvat_ext import cli
from cvat_ext.cvat.client import CvatClient
from cvat_ext.privacy.detectors import CascadeDetector
from cvat_ext.sidecar.state import open_store
from tests.conftest import OrgWorld
from tests.cvat_standin import CvatStandIn
from tests.privacy.photos import DATA, load_photo
from tests.privacy.test_files import jpeg_with_metadata


def digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A folder as ops receive it: faces, a GPS-tagged phone photo in a subfolder, a photo without people."""
    src = tmp_path / "src"
    (src / "phone").mkdir(parents=True)
    shutil.copy(DATA / "grace_hopper.jpg", src / "hopper.jpg")
    (src / "phone" / "astronaut.jpg").write_bytes(jpeg_with_metadata(load_photo("skimage:astronaut")))
    Image.fromarray(load_photo("skimage:coffee")).save(src / "coffee.png")
    return src


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_blur_folder(photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = digest(photos)
    dst = tmp_path / "dst"
    state = f"sqlite:///{tmp_path}/state.db"
    code, out, err = run(["privacy", "blur", str(photos), str(dst), "--state-url", state], capsys)
    assert code == 0, err
    assert digest(photos) == before  # SRC untouched
    outputs = sorted(
        p.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file() and ".cvat-ext" not in p.parts
    )
    assert outputs == ["coffee.png", "hopper.jpg", "phone/astronaut.jpg"]
    detector = CascadeDetector()
    for rel in outputs:
        with Image.open(dst / rel) as img:
            assert len(img.getexif()) == 0 and "icc_profile" not in img.info and "comment" not in img.info
            assert len(detector(np.asarray(img.convert("RGB")))) == 0, rel  # nothing left to find
    (report_path,) = (dst / ".cvat-ext").glob("privacy-*.json")
    report = json.loads(report_path.read_text())
    by_file = {f["src"]: f for f in report["files"]}
    faces = {rel: len(f["regions"]) for rel, f in by_file.items()}
    assert faces["hopper.jpg"] >= 1 and faces["phone/astronaut.jpg"] >= 1 and faces["coffee.png"] == 0
    assert report["status"] == "ok"
    assert report["totals"] == {"files": 3, "regions": sum(faces.values()), "faces": sum(faces.values()), "plates": 0}
    assert {"exif", "gps", "icc", "comment"} <= set(by_file["phone/astronaut.jpg"]["metadata_removed"])
    assert by_file["coffee.png"]["regions"] == []
    assert report["parameters"]["margin"] == 0.25 and report["detector"].startswith("opencv-haar")
    assert f"report {report_path}" in out
    store = open_store(state)
    try:
        (entry,) = [a for a in store.iter_audit() if a.action == "privacy.blur"]
    finally:
        store.close()
    assert entry.after["run_id"] == report["run_id"] and entry.after["totals"] == report["totals"]
    # a second run into the same DST refuses to overwrite
    code, _, err = run(["privacy", "blur", str(photos), str(dst)], capsys)
    assert code == 2 and err.count("\n") == 1 and "exists (pass --overwrite" in err


def test_blur_stops_at_a_non_image_keeps_what_is_done(
    photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (photos / "zz_broken.jpg").write_bytes(b"this is not a jpeg")
    dst = tmp_path / "dst"
    code, _, err = run(["privacy", "blur", str(photos), str(dst), "--method", "pixelate"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "zz_broken.jpg: not a readable image" in err
    (report_path,) = (dst / ".cvat-ext").glob("privacy-*.json")
    report = json.loads(report_path.read_text())
    assert report["status"] == "failed" and "zz_broken.jpg" in report["error"] and report["totals"]["files"] == 3
    assert (dst / "hopper.jpg").is_file() and not (dst / "zz_broken.jpg").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["SRC", "SRC/out"], "destination must be outside"),
        (["SRC", "DST", "--cascades", "eyes"], "unknown cascades"),
        (["SRC", "DST", "--margin", "-1"], "margin must be >= 0"),
        (["EMPTY", "DST"], "no images found"),
    ],
)
def test_blur_bad_input_is_one_line(
    photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    (tmp_path / "empty").mkdir()
    paths = {"SRC": str(photos), "DST": str(tmp_path / "dst"), "EMPTY": str(tmp_path / "empty")}
    argv = [paths.get(a.split("/")[0], a) + ("/" + a.split("/", 1)[1] if "/" in a else "") for a in args]
    code, _, err = run(["privacy", "blur", *argv], capsys)
    assert code == 2 and err.count("\n") == 1 and message in err


def conn_args(standin: CvatStandIn, world: OrgWorld) -> list[str]:
    return ["--url", standin.url, "--token", world.bot_token, "--org", world.org_slug]


def test_create_task_uploads_blurred_copies_only(
    photos: Path,
    tmp_path: Path,
    cvat_standin: CvatStandIn,
    cvat_org_world: OrgWorld,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    keep = tmp_path / "blurred"
    code, out, err = run(
        ["privacy", "create-task", str(photos), "--name", "street", "--project", str(cvat_org_world.project_id),
         "--keep", str(keep), "--segment-size", "2", *conn_args(cvat_standin, cvat_org_world)],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    task_id = int(out.split("task ")[1].split()[0])
    # the originals that show faces: none of their bytes may reach CVAT (coffee.png has no PII and no
    # metadata, so its clean copy may well be byte-identical)
    originals = {h for rel, h in digest(photos).items() if rel != "coffee.png"}
    blurred = {rel: h for rel, h in digest(keep).items() if not rel.startswith(".cvat-ext")}
    with cvat_standin.world.lock:
        task = cvat_standin.world.tasks[task_id]
        uploaded = [(image.name, hashlib.sha256(image.data).hexdigest()) for image in (task.images or [])]
    assert [name for name, _ in uploaded] == ["coffee.png", "hopper.jpg", "astronaut.jpg"]  # multipart keeps base names
    assert {h for _, h in uploaded} == set(blurred.values())
    assert not originals & {h for _, h in uploaded}
    # the task scans clean
    code, out, err = run(["privacy", "scan", "--task", str(task_id), *conn_args(cvat_standin, cvat_org_world)], capsys)
    assert code == 0 and "3 frames scanned, 0 with visible faces" in err


def test_scan_reports_unblurred_frames(
    cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    with CvatClient(cvat_standin.url, access_token=cvat_org_world.bot_token, org=cvat_org_world.org_slug) as client:
        files = []
        for name in ("skimage:coffee", "skimage:astronaut", "file:grace_hopper.jpg"):
            buf = io.BytesIO()
            Image.fromarray(load_photo(name)).save(buf, format="PNG")
            files.append((name.split(":")[1].split(".")[0] + ".png", buf.getvalue()))
        task = client.create_task_from_images("raw", project_id=cvat_org_world.project_id, images=files)
    code, out, err = run(
        ["privacy", "scan", "--task", str(task.id), "--json", *conn_args(cvat_standin, cvat_org_world)], capsys
    )
    assert code == 1 and "2 of 3 frames show faces or plates" in err
    findings = [json.loads(line) for line in out.splitlines()]
    assert [f["frame"] for f in findings] == [1, 2]
    assert all(r["kind"] == "face" for f in findings for r in f["regions"])
    code, _, err = run(["privacy", "scan", "--task", "999", *conn_args(cvat_standin, cvat_org_world)], capsys)
    assert code == 2 and err.count("\n") == 1


def test_workers_give_the_same_files_and_report_every_file_written(
    photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    assert run(["privacy", "blur", str(photos), str(serial)], capsys)[0] == 0
    assert run(["privacy", "blur", str(photos), str(parallel), "--workers", "2"], capsys)[0] == 0
    strip = {rel: h for rel, h in digest(serial).items() if not rel.startswith(".cvat-ext")}
    assert strip == {rel: h for rel, h in digest(parallel).items() if not rel.startswith(".cvat-ext")}
    # a bad file in the middle: the other workers' files are written and reported
    (photos / "b_broken.jpg").write_bytes(b"not a jpeg")
    code, _, err = run(["privacy", "blur", str(photos), str(tmp_path / "p2"), "--workers", "2"], capsys)
    assert code == 2 and "b_broken.jpg: not a readable image" in err
    (report_path,) = (tmp_path / "p2" / ".cvat-ext").glob("privacy-*.json")
    report = json.loads(report_path.read_text())
    assert report["status"] == "failed" and [f["src"] for f in report["files"]] == [
        "coffee.png",
        "hopper.jpg",
        "phone/astronaut.jpg",
    ]


def test_create_task_refuses_colliding_base_names(
    photos: Path,
    tmp_path: Path,
    cvat_standin: CvatStandIn,
    cvat_org_world: OrgWorld,
    capsys: pytest.CaptureFixture[str],
) -> None:
    shutil.copy(photos / "hopper.jpg", photos / "phone" / "hopper.jpg")
    code, _, err = run(
        [
            "privacy",
            "create-task",
            str(photos),
            "--name",
            "x",
            "--project",
            str(cvat_org_world.project_id),
            "--keep",
            str(tmp_path / "kept"),
            *conn_args(cvat_standin, cvat_org_world),
        ],
        capsys,
    )
    assert code == 2 and err.count("\n") == 1 and "share the names ['hopper.jpg']" in err
    with cvat_standin.world.lock:
        assert all(t.name != "x" for t in cvat_standin.world.tasks.values())  # nothing created

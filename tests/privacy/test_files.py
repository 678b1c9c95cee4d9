"""Sources (folder, list, manifest), EXIF-aware reading, metadata-free atomic writing."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, Image

from cvat_ext.errors import ConfigError
from cvat_ext.privacy.files import Source, check_destination, list_sources, read_image, write_clean
from tests.functions.images import gradient


def jpeg_with_metadata(rgb: np.ndarray, *, orientation: int = 1) -> bytes:
    """A JPEG carrying EXIF (camera, GPS, orientation), an ICC profile and a comment."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "TestCam"
    exif[ExifTags.Base.Orientation] = orientation
    gps = {ExifTags.GPS.GPSLatitudeRef: "N", ExifTags.GPS.GPSLatitude: (48.0, 8.0, 30.0)}
    exif[ExifTags.IFD.GPSInfo] = gps
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", exif=exif, icc_profile=b"\0" * 128, comment=b"shot at home")
    return buf.getvalue()


def test_folder_sources_are_images_in_path_order_without_hidden(tmp_path: Path) -> None:
    for rel in ("b.jpg", "a/z.PNG", "a/y.txt", ".hidden/x.jpg", "a/.x.png", "c.jpeg"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    assert [s.rel.as_posix() for s in list_sources(tmp_path)] == ["a/z.PNG", "b.jpg", "c.jpeg"]


def test_list_and_manifest_sources(tmp_path: Path) -> None:
    (tmp_path / "imgs").mkdir()
    listing = tmp_path / "list.txt"
    listing.write_text("# frames\nimgs/1.jpg\n\nimgs/2.png\n")
    assert [s.rel.as_posix() for s in list_sources(listing)] == ["imgs/1.jpg", "imgs/2.png"]
    manifest = tmp_path / "manifest.jsonl"
    lines = [{"version": "1.1"}, {"type": "images"}, {"name": "imgs/1", "extension": ".jpg", "width": 4, "height": 3}]
    manifest.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    assert [s.rel.as_posix() for s in list_sources(manifest)] == ["imgs/1.jpg"]
    outside = tmp_path / "bad.txt"
    outside.write_text("../elsewhere.jpg\n")
    with pytest.raises(ConfigError, match=r"bad.txt line 1: .* is outside"):
        list_sources(outside)
    with pytest.raises(ConfigError, match="no such file"):
        list_sources(tmp_path / "missing")


@pytest.mark.parametrize(
    ("src", "dst", "ok"),
    [("in", "out", True), ("in", "in", False), ("in", "in/blurred", False), ("in/sub", "in", False)],
)
def test_destination_must_be_apart_from_the_source(tmp_path: Path, src: str, dst: str, ok: bool) -> None:
    (tmp_path / src).mkdir(parents=True, exist_ok=True)
    if ok:
        check_destination(tmp_path / src, tmp_path / dst)
    else:
        with pytest.raises(ConfigError, match="destination must be outside"):
            check_destination(tmp_path / src, tmp_path / dst)


def test_read_applies_orientation_and_names_metadata(tmp_path: Path) -> None:
    rgb = gradient(30, 40)
    path = tmp_path / "p.jpg"
    path.write_bytes(jpeg_with_metadata(rgb, orientation=6))  # 6: rotate 90 degrees clockwise to view
    upright, found = read_image(Source(path, Path("p.jpg")))
    assert upright.shape == (40, 30, 3)
    assert {"exif", "gps", "icc", "comment"} <= set(found)
    not_image = tmp_path / "n.jpg"
    not_image.write_bytes(b"not an image at all")
    with pytest.raises(ConfigError, match=r"n.jpg: not a readable image"):
        read_image(Source(not_image, Path("n.jpg")))


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp", ".tif"])
def test_written_file_has_pixels_only(tmp_path: Path, suffix: str) -> None:
    rgb = gradient(24, 32)
    dst = tmp_path / "out" / f"x{suffix}"
    write_clean(rgb, dst)
    with Image.open(dst) as img:
        assert img.size == (32, 24)
        exif = img.getexif()
        assert ExifTags.Base.Make not in exif and not exif.get_ifd(ExifTags.IFD.GPSInfo)
        if suffix != ".tif":  # TIFF's own structure tags (size, compression) live in the same table
            assert len(exif) == 0
        assert not {"icc_profile", "exif", "comment", "xmp"} & set(img.info)
    assert [p.name for p in dst.parent.iterdir()] == [dst.name]  # no temporary file left


def test_failed_write_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unsupported image suffix"):
        write_clean(gradient(), tmp_path / "x.gifx")
    bad = np.zeros((4, 4, 3), dtype=np.float64)  # PIL cannot save float RGB
    with pytest.raises(TypeError):
        write_clean(bad, tmp_path / "y.png")  # type: ignore[arg-type]
    assert not list(tmp_path.iterdir())

"""Where images come from and how redacted copies are written.

Sources (:func:`list_sources`), each image a path relative to a root (that relative path is kept
under the destination):

* a folder: every file with an image extension (:data:`IMAGE_SUFFIXES`) under it, recursively,
  hidden files and folders skipped, sorted by path;
* a list file (``.txt``): one path per line, relative to the list's folder (or absolute inside it),
  ``#`` comments and blank lines skipped;
* a CVAT manifest (``.jsonl``): the lines with ``"name"`` and ``"extension"`` (image entries), paths
  relative to the manifest's folder.

Reading (:func:`read_image`) applies the EXIF orientation, so the pixels are upright as a viewer
shows them (the orientation tag is dropped with the rest of the metadata), and names the metadata
the file carried. Writing (:func:`write_clean`) saves the pixels alone (no EXIF, GPS, XMP, IPTC,
ICC profile or comments) in the source's format, atomically: a temporary file in the destination
folder, fsync, then ``os.replace``; a crash leaves either no file or the whole file.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from cvat_ext.errors import ConfigError

__all__ = ["IMAGE_SUFFIXES", "Source", "check_destination", "list_sources", "read_image", "write_clean"]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
_SAVE_FORMAT = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
}


@dataclass(frozen=True, slots=True)
class Source:
    """One input image: ``path`` on disk and ``rel`` its path under the input root (kept in DST)."""

    path: Path
    rel: Path


def _inside(path: Path, root: Path, where: str) -> Path:
    resolved = path.resolve()
    try:
        return resolved.relative_to(root.resolve())
    except ValueError:
        raise ConfigError(f"{where}: {path} is outside {root}") from None


def _from_list(list_file: Path) -> Iterator[Source]:
    root = list_file.parent
    for n, line in enumerate(list_file.read_text(encoding="utf-8").splitlines(), start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        path = Path(entry) if Path(entry).is_absolute() else root / entry
        yield Source(path, _inside(path, root, f"{list_file} line {n}"))


def _from_manifest(manifest: Path) -> Iterator[Source]:
    root = manifest.parent
    for n, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError as exc:
            raise ConfigError(f"{manifest} line {n}: not JSON ({exc})") from exc
        if not isinstance(entry, dict) or "name" not in entry or "extension" not in entry:
            continue  # the version / type header lines
        path = root / f"{entry['name']}.{str(entry['extension']).lstrip('.')}"
        yield Source(path, _inside(path, root, f"{manifest} line {n}"))


def list_sources(src: Path) -> list[Source]:
    """The images of a folder, list file (.txt) or CVAT manifest (.jsonl), in a stable order."""
    if src.is_dir():
        found = [
            Source(p, p.relative_to(src))
            for p in src.rglob("*")
            if p.is_file()
            and p.suffix.lower() in IMAGE_SUFFIXES
            and not any(part.startswith(".") for part in p.relative_to(src).parts)
        ]
        return sorted(found, key=lambda s: s.rel.as_posix())
    if src.is_file() and src.suffix.lower() == ".txt":
        return list(_from_list(src))
    if src.is_file() and src.suffix.lower() == ".jsonl":
        return list(_from_manifest(src))
    if not src.exists():
        raise ConfigError(f"{src}: no such file or folder")
    raise ConfigError(f"{src}: expected a folder, a list of paths (.txt) or a CVAT manifest (.jsonl)")


def check_destination(src: Path, dst: Path) -> None:
    """Refuse a destination that is, holds or lies inside the source root (outputs would overwrite or
    mix with originals)."""
    src_root = (src if src.is_dir() else src.parent).resolve()
    dst_root = dst.resolve()
    if dst_root == src_root or src_root in dst_root.parents or dst_root in src_root.parents:
        raise ConfigError(f"{dst}: destination must be outside the source {src_root} (and not contain it)")


def read_image(source: Source) -> tuple[npt.NDArray[np.uint8], list[str]]:
    """(H, W, 3) uint8 RGB, EXIF orientation applied, and the metadata kinds the file carried."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(source.path) as img:
            img.load()
            found = _metadata_kinds(img)
            upright = ImageOps.exif_transpose(img)
            rgb = np.asarray(upright.convert("RGB"), dtype=np.uint8)
    except FileNotFoundError:
        raise ConfigError(f"{source.path}: no such file") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ConfigError(f"{source.path}: not a readable image ({type(exc).__name__}: {exc})") from exc
    return rgb, found


def _metadata_kinds(img: object) -> list[str]:
    from PIL import ExifTags

    info = getattr(img, "info", {})
    kinds = []
    exif = img.getexif()  # type: ignore[attr-defined]
    if len(exif):
        kinds.append("exif")
        if exif.get_ifd(ExifTags.IFD.GPSInfo):
            kinds.append("gps")
    for key, kind in (
        ("icc_profile", "icc"),
        ("xmp", "xmp"),
        ("XML:com.adobe.xmp", "xmp"),
        ("comment", "comment"),
        ("photoshop", "iptc"),
        ("dpi", "dpi"),
    ):
        if key in info and kind not in kinds:
            kinds.append(kind)
    if getattr(img, "text", None):  # PNG tEXt / iTXt chunks
        kinds.append("text")
    return kinds


def write_clean(rgb: npt.NDArray[np.uint8], dst: Path, *, jpeg_quality: int = 95) -> None:
    """Write only the pixels of ``rgb`` to ``dst`` (format from its suffix), atomically."""
    from PIL import Image

    fmt = _SAVE_FORMAT.get(dst.suffix.lower())
    if fmt is None:
        raise ConfigError(f"{dst}: unsupported image suffix (expected one of {sorted(_SAVE_FORMAT)})")
    buf = io.BytesIO()
    options = {"quality": jpeg_quality, "optimize": True} if fmt == "JPEG" else {}
    # a fresh image from the array carries no info dict: nothing of the source's metadata can follow
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format=fmt, **options)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(buf.getvalue())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

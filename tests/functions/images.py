"""Test images as CVAT sends them: base64 of an encoded file (PNG, JPEG) and hostile variants."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import numpy as np
import numpy.typing as npt
from PIL import Image


def encode(rgb: npt.NDArray[np.uint8], fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt)
    return buf.getvalue()


def b64(rgb: npt.NDArray[np.uint8], fmt: str = "PNG") -> str:
    return base64.b64encode(encode(rgb, fmt)).decode()


def gradient(h: int = 48, w: int = 64) -> npt.NDArray[np.uint8]:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) % 256], axis=-1).astype(np.uint8)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb_b64(width: int = 30000, height: int = 30000) -> str:
    """A few hundred bytes claiming width x height grey pixels: decoding would need width*height bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1024)
    png = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    return base64.b64encode(png).decode()


def truncated_png_b64() -> str:
    """A PNG whose header is fine but whose pixel data is cut off."""
    data = encode(gradient(64, 64))
    return base64.b64encode(data[: len(data) // 2]).decode()

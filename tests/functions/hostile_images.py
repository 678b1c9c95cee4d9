"""Image files that killed or broke the functions (issue 16), as the bytes CVAT would send.

``HOSTILE_IMAGES`` maps a case name to a builder returning the file bytes. ``WxH`` in a name is
width x height. Builders are deterministic (fixed seeds) and cheap except ``png_1bit_8000x8000``,
whose ~8 kB file declares exactly the 64 MP default pixel limit.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable

import numpy as np
from PIL import Image

from tests.functions.images import _chunk, encode, gradient


def _noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def png(w: int, h: int) -> bytes:
    return encode(_noise(h, w, seed=w * 7 + h))


def _save(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def ico_64() -> bytes:
    return _save(Image.fromarray(gradient(64, 64)), "ICO", sizes=[(64, 64)])


def gif_animated() -> bytes:
    frames = [Image.fromarray(np.full((120, 160, 3), (60 * k, 255 - 60 * k, 90), dtype=np.uint8)) for k in range(4)]
    return _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=40, loop=0)


def tiff_float() -> bytes:
    """32-bit float grey samples outside [0, 1], with a NaN and an inf."""
    values = np.linspace(-3.0, 7.0, 140 * 90, dtype=np.float32).reshape(90, 140)
    values[0, 0], values[1, 1] = np.nan, np.inf
    return _save(Image.fromarray(values, mode="F"), "TIFF")


def png_1bit(w: int = 300, h: int = 200) -> bytes:
    return _save(Image.fromarray(gradient(h, w)[..., 0] > 127), "PNG")


def png_16bit() -> bytes:
    values = (np.arange(200 * 300, dtype=np.uint32).reshape(200, 300) * 7 % 65536).astype(np.uint16)
    return _save(Image.fromarray(values), "PNG")


def jpeg_cmyk() -> bytes:
    return _save(Image.fromarray(gradient(200, 300)).convert("CMYK"), "JPEG", quality=90)


def png_truncated() -> bytes:
    data = encode(_noise(96, 128))
    return data[: len(data) // 2]


def not_an_image() -> bytes:
    return b"%PDF-1.4 this is not an image " + bytes(range(256))


def png_1bit_bomb(w: int = 8000, h: int = 8000) -> bytes:
    """A 1-bit grey PNG of w x h written row by row (zlib of zeros): ~8 kB declaring w*h pixels."""
    ihdr = struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)
    row = b"\0" * (1 + (w + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(h)) + comp.flush()
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


HOSTILE_IMAGES: dict[str, Callable[[], bytes]] = {
    "png_1x1": lambda: png(1, 1),
    "png_16x16": lambda: png(16, 16),
    "png_64x64": lambda: png(64, 64),
    "png_128x64": lambda: png(128, 64),
    "png_200x40": lambda: png(200, 40),
    "png_1x4000": lambda: png(1, 4000),
    "png_4000x1": lambda: png(4000, 1),
    "ico_64x64": ico_64,
    "gif_animated": gif_animated,
    "tiff_float": tiff_float,
    "png_1bit": png_1bit,
    "png_16bit": png_16bit,
    "jpeg_cmyk": jpeg_cmyk,
    "png_truncated": png_truncated,
    "not_an_image": not_an_image,
    "png_1bit_8000x8000": png_1bit_bomb,
}
#: cases whose bytes are not a decodable image: every function answers 400 naming ``image``
UNREADABLE = frozenset({"png_truncated", "not_an_image"})
#: cases beyond SAM's 1024:1 aspect limit: the SAM functions answer 400 naming it
BEYOND_SAM_ASPECT = frozenset({"png_1x4000", "png_4000x1"})

"""A pool of scene images whose detector confidence the test controls (see ``detector_server``).

Each scene has its own layout and colour; its frames are near-duplicates (a little noise). Pixel
(0, 0) carries the confidence the test detector will report for that frame.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

SIZE = (64, 48)


def scene_frame(scene: int, confidence: float, rng: np.random.Generator) -> bytes:
    w, h = SIZE
    yy, xx = np.mgrid[0:h, 0:w]
    angle = scene * 2.1
    base = (np.cos(angle) * xx + np.sin(angle) * yy) * (255 / (w + h))
    hue = np.array([(scene * 97) % 256, (scene * 53 + 80) % 256, (scene * 181 + 30) % 256], float)
    img = (base[..., None] * 0.5 + hue * 0.5 + rng.normal(0, 2.0, (h, w, 3))).clip(0, 255).astype(np.uint8)
    img[0, 0] = (round(confidence * 255), 0, 0)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "PNG")
    return buf.getvalue()


def pool_images(scenes: list[list[float]], seed: int = 0) -> list[tuple[str, bytes]]:
    """``scenes[s]`` = the confidences of scene s's frames; frames are interleaved scene by scene."""
    rng = np.random.default_rng(seed)
    out = []
    for s, confidences in enumerate(scenes):
        for i, conf in enumerate(confidences):
            out.append((f"s{s}_{i:02d}.png", scene_frame(s, conf, rng)))
    return out

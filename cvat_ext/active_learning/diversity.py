"""Diversity for a batch of frames: image-statistics features and score-weighted k-center selection.

Uncertainty alone picks near-duplicates: the ten most uncertain frames of a video are often ten
views of the same hard scene, and labelling all of them teaches the model about as much as
labelling one. A round therefore picks frames that are both informative and far apart in a
feature space.

Features (:func:`frame_features`) need no model: an ``8x8`` grey thumbnail (mean-removed, unit
norm: layout and shading) and an ``8``-bin histogram per HSV channel (colour content), each half
of the vector. They are cheap (a decode and a resize per frame) and separate scenes well enough to
find near-duplicates; a detector backbone's embedding can replace them (any ``(F, D)`` array).

Selection (:func:`select_diverse`) is greedy k-center with a score term: the first pick is the
highest score; each next pick maximises ``(1 - diversity) * score + diversity * d / d_max``, where
``d`` is a frame's distance to the nearest frame already picked and ``d_max`` the largest such
distance among the candidates. ``diversity=0`` is plain ranking by score; ``diversity=1`` is
pure k-center (coverage). Distances are kept as one ``(F,)`` column updated per pick, so K picks
over F candidates cost ``O(F * K * D)`` in vectorised numpy.
"""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt

from cvat_ext.errors import ConfigError

THUMB = 8
HIST_BINS = 8
FEATURE_DIM = THUMB * THUMB + 3 * HIST_BINS


def frame_features(image: bytes, *, where: str = "frame") -> npt.NDArray[np.float64]:
    """``(FEATURE_DIM,)`` features of one encoded image (any format Pillow reads)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(image)) as img:
            img.seek(0)
            rgb = img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ConfigError(f"{where}: not a readable image ({exc})") from exc
    grey = np.asarray(rgb.convert("L").resize((THUMB, THUMB), Image.Resampling.BILINEAR), np.float64).ravel()
    grey -= grey.mean()
    norm = np.linalg.norm(grey)
    layout = grey / norm if norm > 0 else grey
    hsv = np.asarray(rgb.convert("HSV").resize((64, 64), Image.Resampling.BILINEAR), np.int64).reshape(-1, 3)
    bins = hsv * HIST_BINS // 256  # (P, 3) bin per channel
    hist = np.stack([np.bincount(bins[:, c], minlength=HIST_BINS) for c in range(3)]).astype(np.float64).ravel()
    hist /= np.linalg.norm(hist)
    return np.concatenate([layout, hist]) / np.sqrt(2.0)


def select_diverse(
    score: npt.ArrayLike, features: npt.ArrayLike, k: int, *, diversity: float = 0.5
) -> npt.NDArray[np.int64]:
    """Positions of ``k`` picks among ``F`` candidates (``score (F,)``, ``features (F, D)``), in pick order.

    Ties go to the lower position, so the result is deterministic.
    """
    s = np.asarray(score, np.float64)
    x = np.asarray(features, np.float64)
    if s.ndim != 1 or x.ndim != 2 or x.shape[0] != s.shape[0]:
        raise ConfigError(f"select_diverse: expected score (F,) and features (F, D), got {s.shape} and {x.shape}")
    if not 0.0 <= diversity <= 1.0:
        raise ConfigError(f"diversity must be in [0, 1], got {diversity}")
    n = s.shape[0]
    k = min(int(k), n)
    if k <= 0:
        return np.zeros(0, np.int64)
    picked = np.zeros(k, np.int64)
    taken = np.zeros(n, bool)
    nearest = np.full(n, np.inf)  # distance to the nearest picked frame
    gain = s.copy()
    for i in range(k):
        gain[taken] = -np.inf
        pos = int(np.argmax(gain))
        picked[i] = pos
        taken[pos] = True
        nearest = np.minimum(nearest, np.linalg.norm(x - x[pos], axis=1))
        free = ~taken
        d_max = float(nearest[free].max()) if free.any() else 0.0
        spread = nearest / d_max if d_max > 0 else np.zeros(n)
        gain = (1.0 - diversity) * s + diversity * spread
    return picked

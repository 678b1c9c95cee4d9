"""The OpenCV detector never hands OpenCV a frame smaller than a stage's window.

OpenCV's HOG aborts the process (SIGABRT, heap corruption) on frames smaller than its 64x128
window, so each size runs in a child process: a regression fails the test instead of killing pytest.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

cv2 = pytest.importorskip("cv2")
if not hasattr(cv2, "HOGDescriptor"):
    pytest.skip("OpenCV 5 has no HOG people detector", allow_module_level=True)

from cvat_ext.models.opencv_people import fits_window  # noqa: E402

pytestmark = pytest.mark.models

CHILD = """
import sys
import numpy as np
from cvat_ext.models.opencv_people import OpenCvPeopleDetector
detector = OpenCvPeopleDetector()
rng = np.random.default_rng(0)
for arg in sys.argv[1:]:
    w, h = (int(v) for v in arg.split("x"))
    dets = detector(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    assert ((dets.xyxy >= 0) & (dets.xyxy <= [w - 1, h - 1, w - 1, h - 1])).all(), arg
print("survived", len(sys.argv) - 1)
"""

# width x height: the sizes that killed or broke the server (issue 16) and the window edges
SIZES_WH = [
    "1x1",
    "16x16",
    "23x23",
    "24x24",
    "64x64",
    "128x64",
    "200x40",
    "1x4000",
    "4000x1",
    "63x128",
    "64x127",
    "64x128",
    "65x129",
    "3000x2",
    "2x3000",
    "5000x130",
    "130x5000",
]


def test_detector_survives_every_small_or_odd_size() -> None:
    proc = subprocess.run([sys.executable, "-c", CHILD, *SIZES_WH], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"child died with {proc.returncode}: {proc.stderr[-2000:]}"
    assert f"survived {len(SIZES_WH)}" in proc.stdout


@pytest.mark.parametrize(
    ("shape_hw", "window_wh", "fits"),
    [
        ((128, 64), (64, 128), True),
        ((127, 64), (64, 128), False),
        ((128, 63), (64, 128), False),
        ((1, 1), (24, 24), False),
    ],
)
def test_fits_window(shape_hw: tuple[int, int], window_wh: tuple[int, int], fits: bool) -> None:
    assert fits_window(shape_hw, window_wh) is fits

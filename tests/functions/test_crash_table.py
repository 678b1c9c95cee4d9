"""No image kills a function (issue 16): every hostile size and format through every model function.

Each function runs in a child process (tests/functions/crash_child.py) with its real Nuclio
handler and real nuclio-sdk events: OpenCV aborted the process natively on small frames, and a
regression must fail these tests, not kill pytest. The table says what each case must answer:

* detectors (OpenCV, Mask R-CNN, Keypoint R-CNN): 200 and a list for every image they can decode,
  ``[]`` for a frame outside their geometry (what CVAT expects: a 4xx would fail a whole batch
  auto-annotation); 400 naming ``image`` for bytes that are not a decodable image;
* SAM (drop-in and interactor): 200 for every decodable frame within 1024:1, 400 naming the
  aspect limit beyond it (an interactor has no empty answer), 400 for undecodable bytes;
* the superpixel interactors: 200 and a mask for every decodable frame up to their own pixel
  limit (``CVAT_EXT_SUPERPIXEL_MAX_PIXELS``), 413 naming ``image`` above it (the 8000x8000 frame).
"""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("nuclio_sdk")
pytest.importorskip("cv2")
pytest.importorskip("torchvision")
pytest.importorskip("segment_anything")

from tests.functions.crash_child import FUNCTIONS, INTERACTORS
from tests.functions.hostile_images import BEYOND_SAM_ASPECT, HOSTILE_IMAGES, UNREADABLE

pytestmark = [pytest.mark.models, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SAM_FUNCTIONS = frozenset({"pytorch/facebookresearch/sam", "pytorch/cvat_ext/sam-interactor"})
SUPERPIXELS = frozenset({"skimage/cvat_ext/superpixels-coarse", "skimage/cvat_ext/superpixels-fine"})
#: detectors answer [] for frames outside their geometry; which cases those are is the model's business
DETECTORS = sorted(set(FUNCTIONS) - SAM_FUNCTIONS - SUPERPIXELS)


@cache
def run_child() -> tuple[int, dict[tuple[str, str], dict[str, Any]], str]:
    """(exit code, (function, case) -> result, stderr tail) of the child running every call."""
    proc = subprocess.run(
        [sys.executable, "-m", "tests.functions.crash_child"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line.removeprefix("RESULT "))
            results[result["function"], result["case"]] = result
    return proc.returncode, results, proc.stderr[-3000:]


def expected_status(function: str, case: str) -> int:
    if case in UNREADABLE:
        return 400
    if function in SAM_FUNCTIONS and case in BEYOND_SAM_ASPECT:
        return 400
    if function in SUPERPIXELS and case == "png_1bit_8000x8000":
        return 413
    return 200


@pytest.mark.parametrize("case", sorted(HOSTILE_IMAGES))
@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_hostile_image_gets_a_clear_answer(function: str, case: str) -> None:
    returncode, results, stderr = run_child()
    assert (function, case) in results, f"{function} died before answering {case} (exit {returncode}): {stderr}"
    result = results[function, case]
    status, body = result["status"], result["body"]
    assert status == expected_status(function, case), body
    if status in (400, 413):
        assert body["field"] == "image" and body["error"].startswith("image: ")
        if case in BEYOND_SAM_ASPECT:
            assert "aspect ratio" in body["error"] and "1024:1" in body["error"]
    elif function in INTERACTORS:
        assert body["shapes"][0]["type"] == "mask"
    elif function in SAM_FUNCTIONS:
        assert body["blob_chars"] > 0
    else:
        assert isinstance(body, list)


@pytest.mark.parametrize("function", DETECTORS)
def test_detector_frames_outside_its_geometry_are_empty(function: str) -> None:
    # 1x4000 holds nothing a detector finds: every detector answers the empty list (a 4xx would fail a batch)
    _, results, _ = run_child()
    assert results[function, "png_1x4000"]["body"] == [] and results[function, "png_4000x1"]["body"] == []


def test_child_exits_cleanly() -> None:
    returncode, results, stderr = run_child()
    assert returncode == 0, stderr
    assert set(results) == {(function, case) for function in FUNCTIONS for case in HOSTILE_IMAGES}

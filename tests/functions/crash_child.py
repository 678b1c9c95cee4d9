"""Child process of the crash table: ``python -m tests.functions.crash_child [FUNCTION...]``.

Loads each function folder's ``main.py`` as Nuclio would (CPU, tiny random-weight models for
torchvision and SAM), sends every hostile image through its real handler with a real nuclio-sdk
event, and prints one ``RESULT {"function", "case", "status", "body"}`` line per call, flushed, so
a native abort still leaves every earlier answer for the parent (tests/functions/test_crash_table.py).
One process for all functions: torch is imported once.
"""

from __future__ import annotations

import base64
import json
import os
import sys

#: function folder (under serverless/) -> environment that makes it run on CPU without weights
FUNCTIONS: dict[str, dict[str, str]] = {
    "opencv/opencv/people-face": {},
    "pytorch/torchvision/maskrcnn": {"CVAT_EXT_MODEL_VARIANT": "tiny", "CVAT_EXT_DEVICE": "cpu"},
    "pytorch/torchvision/keypointrcnn": {"CVAT_EXT_MODEL_VARIANT": "tiny", "CVAT_EXT_DEVICE": "cpu"},
    "pytorch/facebookresearch/sam": {
        "CVAT_EXT_SAM_MODEL_TYPE": "tiny",
        "CVAT_EXT_DEVICE": "cpu",
        "CVAT_EXT_SAM_CACHE_MB": "16",
    },
    "pytorch/cvat_ext/sam-interactor": {
        "CVAT_EXT_SAM_MODEL_TYPE": "tiny",
        "CVAT_EXT_DEVICE": "cpu",
        "CVAT_EXT_SAM_CACHE_MB": "16",
    },
    "skimage/cvat_ext/lf-prelabel": {},
    "skimage/cvat_ext/superpixels-coarse": {},
    "skimage/cvat_ext/superpixels-fine": {},
}
INTERACTORS = frozenset(
    {"pytorch/cvat_ext/sam-interactor", "skimage/cvat_ext/superpixels-coarse", "skimage/cvat_ext/superpixels-fine"}
)


def request_body(function: str, image: bytes) -> dict[str, object]:
    """CVAT's body for this function kind (an interactor gets one click at the origin)."""
    body: dict[str, object] = {"image": base64.b64encode(image).decode("ascii")}
    if function in INTERACTORS:
        body.update({"pos_points": [[0, 0]], "neg_points": [], "obj_bbox": []})
    return body


def main(argv: list[str]) -> int:
    functions = argv or list(FUNCTIONS)
    for name in ("CVAT_EXT_WEIGHTS", "CVAT_FUNCTIONS_REDIS_HOST", "CVAT_EXT_SAM_PRECISION", "CVAT_EXT_SAM_COMPILE"):
        os.environ.pop(name, None)
    import nuclio_sdk
    import nuclio_sdk.test

    from tests.functions.hostile_images import HOSTILE_IMAGES
    from tests.functions.loading import function_module

    images = {case: build() for case, build in HOSTILE_IMAGES.items()}
    for function in functions:
        os.environ.update(FUNCTIONS[function])  # read by build_model on the first call
        module = function_module(function)
        platform = nuclio_sdk.test.Platform()
        for case, image in images.items():
            body = json.dumps(request_body(function, image)).encode()
            event = nuclio_sdk.Event(body=body, content_type="application/json", method="POST", path="/")
            response = platform.call_handler(module.handler, event)
            answer = json.loads(response.body)
            if isinstance(answer, dict) and "blob" in answer:
                answer = {"blob_chars": len(answer["blob"])}  # 5.6 MB of base64 is not worth printing
            elif isinstance(answer, dict) and "shapes" in answer:
                answer = {"shapes": [{"type": shape["type"]} for shape in answer["shapes"]]}
            line = {"function": function, "case": case, "status": response.status_code, "body": answer}
            sys.stdout.write("RESULT " + json.dumps(line) + "\n")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""Detector functions: images/s through the real Nuclio handler, and the runtime's own overhead.

For each model and frame, the request goes through exactly what Nuclio runs: ``main.handler``
built by ``make_handler`` (JSON body dict -> pydantic validation -> base64 -> image header check
-> pixel decode -> model -> CVAT items -> JSON). The handler's :class:`HandlerStats` split the time
into runtime (parse + pixel decode + encode) and model; the target is runtime < 10% of model.

    python bench/functions_detectors.py [--iterations 10] [--torch]

``--torch`` adds torchvision Mask R-CNN / Keypoint R-CNN ResNet-50 FPN with random weights (same
compute as the COCO checkpoints; box_score_thresh 0 so masks and skeletons are encoded too).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from results_io import BenchResults


def _frames() -> dict[str, tuple[np.ndarray, str]]:
    import cv2
    from skimage import data

    astronaut = np.asarray(data.astronaut())
    # a 1080p frame: the photo scaled to 1080x1080 in the middle of a grey 1920x1080 canvas
    full_hd = np.full((1080, 1920, 3), 96, dtype=np.uint8)
    full_hd[:, 420:1500] = cv2.resize(astronaut, (1080, 1080), interpolation=cv2.INTER_LINEAR)
    return {
        "astronaut 512x512 PNG": (astronaut, "PNG"),
        "astronaut 512x512 JPEG": (astronaut, "JPEG"),
        "astronaut 1920x1080 JPEG": (full_hd, "JPEG"),
        "astronaut 1920x1080 PNG": (full_hd, "PNG"),
    }


def _b64(rgb: np.ndarray, fmt: str) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return base64.b64encode(buf.getvalue()).decode()


def _run(
    name: str, handler: Callable[[Any, Any], Any], body: dict[str, Any], iterations: int, results: BenchResults
) -> None:
    import nuclio_sdk

    context = nuclio_sdk.Context(nuclio_sdk.Logger(40, "bench"))
    response = handler(context, nuclio_sdk.Event(body=body))  # warm-up (model load, first-call costs)
    assert response.status_code == 200, response.body
    stats = context.user_data.stats
    function = context.user_data.model  # the DetectorFunction: splits forward pass / item building
    stats.__init__()  # count only the timed calls
    function.forward_s = function.items_s = 0.0
    t0 = time.perf_counter()
    for _ in range(iterations):
        response = handler(context, nuclio_sdk.Event(body=body))
    wall = time.perf_counter() - t0
    n = max(stats.requests, 1)
    model_s = function.forward_s
    # runtime = request parse/validate + pixel decode + threshold/CVAT items + JSON
    encode_s = function.items_s + stats.encode_s
    runtime_s = stats.parse_s + stats.decode_s + encode_s
    items = len(json.loads(response.body))
    print(
        f"{name:<50} {iterations / wall:6.2f} img/s  model {1000 * model_s / n:7.1f} ms  "
        f"runtime {1000 * runtime_s / n:5.1f} ms (parse {1000 * stats.parse_s / n:4.1f}, "
        f"decode {1000 * stats.decode_s / n:4.1f}, encode {1000 * encode_s / n:4.1f})  "
        f"= {100 * runtime_s / model_s:5.1f}% of model  [{items} items]"
    )
    results.add(f"{name}: throughput", iterations / wall, "images/s")
    results.add(f"{name}: model", 1000 * model_s / n, "ms")
    share = 100 * runtime_s / model_s
    results.add(f"{name}: runtime (parse + decode + encode) / model", share, "%", "< 10", share < 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--torch", action="store_true", help="also run torchvision ResNet-50 models (slow on CPU)")
    parser.add_argument("--device", default="cpu", help="torch device for --torch (cpu, cuda)")
    args = parser.parse_args()

    from cvat_ext.functions.detector import DetectorFunction
    from cvat_ext.functions.handler import make_handler
    from cvat_ext.functions.interface import LabelSpec
    from cvat_ext.models.opencv_people import LABELS, OpenCvPeopleDetector

    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}")
    on_gpu = args.torch and args.device.startswith("cuda")
    results = BenchResults(__file__, variant="cuda" if on_gpu else None,
                           note=f"{args.iterations} iterations per frame (a fifth, at least 2, for torch on CPU)")
    frames = _frames()
    opencv_labels = [LabelSpec(n, "rectangle", i) for i, n in LABELS.items()]
    _, opencv = make_handler(lambda ctx: DetectorFunction(OpenCvPeopleDetector(), opencv_labels))
    import cv2

    if not hasattr(cv2, "HOGDescriptor"):
        print(f"opencv-people-face: skipped, OpenCV {cv2.__version__} has no HOG (needs OpenCV 4.x)")
    else:
        for frame_name, (rgb, fmt) in frames.items():
            _run(f"opencv-people-face | {frame_name}", opencv, {"image": _b64(rgb, fmt)}, args.iterations, results)

    if not args.torch:
        results.write()
        return
    import torch

    from cvat_ext.functions.coco import coco_detection_labels, coco_person_skeleton_label
    from cvat_ext.models.contours import mask_polygon
    from cvat_ext.models.torchvision_detection import TorchvisionDetector, build_detection_model

    torch.manual_seed(0)
    device_name = torch.cuda.get_device_name() if on_gpu else f"{torch.get_num_threads()} threads"
    print(f"torch {torch.__version__} on {args.device} ({device_name}), random ResNet-50 weights")
    for arch, labels, kw in (
        ("maskrcnn", coco_detection_labels("mask"), {"polygonize": mask_polygon}),
        ("keypointrcnn", (coco_person_skeleton_label(),), {}),
    ):
        model = build_detection_model(arch, "resnet50_fpn")
        model.roi_heads.score_thresh = 0.0  # random weights score low: encode a full set of objects
        detector = TorchvisionDetector(model, device=args.device)

        def factory(ctx: Any, detector: Any = detector, labels: Any = labels, kw: Any = kw) -> Any:
            return DetectorFunction(detector, labels, default_threshold=0.0, **kw)

        _, handler = make_handler(factory)
        for frame_name in ("astronaut 512x512 JPEG", "astronaut 1920x1080 JPEG"):
            rgb, fmt = frames[frame_name]
            iterations = args.iterations if args.device != "cpu" else max(2, args.iterations // 5)
            _run(f"{arch} r50 | {frame_name}", handler, {"image": _b64(rgb, fmt)}, iterations, results)
    results.machine.update(device=args.device if not on_gpu else torch.cuda.get_device_name(), torch=torch.__version__)
    results.write()


if __name__ == "__main__":
    main()

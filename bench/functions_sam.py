"""SAM functions: cache miss (cold) vs cache hit, through the real Nuclio handler (CPU, or --device cuda).

Each request goes through exactly what Nuclio runs: the function folder's ``main.handler`` (JSON
body dict -> validation -> base64 decode -> image header -> SHA-256 -> cache -> model ->
response). "function time" is the handler call, measured around it.

* drop-in ``pth-facebookresearch-sam-vit-h``: the hit answers the ready ``{"blob": ...}`` JSON
  body (5.6 MB) without decoding a pixel — target < 50 ms for a 1920x1080 frame;
* server-decoded interactor: the hit runs only the prompt encoder and mask decoder.

Weights are random (same compute as the checkpoints). ``--cold-model`` picks the encoder used for
the miss (default ``tiny``: a 2-block toy encoder, so the "cold" figure is NOT a ViT-H figure;
``vit_h`` takes ~1 min per miss on 2 cores). Hit figures do not depend on the encoder.

    python bench/functions_sam.py [--hits 20] [--cold-model tiny|vit_b|vit_l|vit_h] [--interactor-model vit_b]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from results_io import BenchResults

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing


def _frame() -> np.ndarray:
    """A 1920x1080 frame with smooth regions and texture (a realistic JPEG/PNG size)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:1080, 0:1920]
    img = np.stack([x * 255 // 1919, y * 255 // 1079, (x // 7 + y // 5) % 256], axis=-1).astype(np.int16)
    img[200:800, 400:1400] += rng.integers(-40, 40, size=(600, 1000, 3), dtype=np.int16)
    return np.clip(img, 0, 255).astype(np.uint8)


def _b64(rgb: np.ndarray, fmt: str) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return base64.b64encode(buf.getvalue()).decode()


class Worker:
    """One function module + one Nuclio context (= one worker)."""

    def __init__(self, relpath: str) -> None:
        import nuclio_sdk

        from cvat_ext.functions.dev.gateway import load_function

        self.module = load_function(ROOT / "serverless" / relpath / "nuclio" / "function.yaml").module
        self.context = nuclio_sdk.Context(nuclio_sdk.Logger(40, "bench"))
        self.module.init_context(self.context)

    def call(self, body: dict[str, Any]) -> tuple[float, Any]:
        import nuclio_sdk

        event = nuclio_sdk.Event(body=body, content_type="application/json")
        t0 = time.perf_counter()
        response = self.module.handler(self.context, event)
        elapsed = time.perf_counter() - t0
        assert response.status_code == 200, response.body[:300]
        return elapsed, response


def _ms(values: list[float]) -> str:
    return f"median {1000 * statistics.median(values):7.1f} ms  max {1000 * max(values):7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hits", type=int, default=20)
    parser.add_argument("--cold-model", default="tiny")
    parser.add_argument("--interactor-model", default="vit_b")
    parser.add_argument("--device", default="cpu", help="cpu (fp32) or cuda (fp16 encoder)")
    args = parser.parse_args()

    import torch

    precision = "fp16" if args.device.startswith("cuda") else "fp32"
    os.environ.update(
        {"CVAT_EXT_DEVICE": args.device, "CVAT_EXT_SAM_PRECISION": precision, "CVAT_EXT_SAM_RANDOM_WEIGHTS": "1"}
    )
    for name in ("CVAT_EXT_WEIGHTS", "CVAT_FUNCTIONS_REDIS_HOST", "CVAT_EXT_SAM_COMPILE"):
        os.environ.pop(name, None)

    print(f"CPU: {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads)")
    on_gpu = args.device.startswith("cuda")
    # runs kept side by side: functions_sam[-cuda][-<cold model>] (tiny, the default, adds nothing)
    variant = "-".join([*(["cuda"] if on_gpu else []), *([args.cold_model] if args.cold_model != "tiny" else [])])
    results = BenchResults(
        __file__, variant=variant or None,
        note=f"random weights; drop-in miss with the {args.cold_model} encoder, interactor {args.interactor_model}; "
             "function time of the real Nuclio handler for a 1920x1080 frame",
    )
    results.machine.update(torch=torch.__version__, threads=torch.get_num_threads(), encoder=precision)
    if on_gpu:
        print(f"device: {torch.cuda.get_device_name(0)}, encoder {precision}")
        results.machine.update(device=torch.cuda.get_device_name(0))
    rgb = _frame()
    frames = {"1920x1080 JPEG q90": _b64(rgb, "JPEG"), "1920x1080 PNG": _b64(rgb, "PNG")}

    print(f"\n== drop-in pth-facebookresearch-sam-vit-h (miss: {args.cold_model} encoder, random weights)")
    os.environ["CVAT_EXT_SAM_MODEL_TYPE"] = args.cold_model
    worker = Worker("pytorch/facebookresearch/sam")
    for name, image in frames.items():
        body = {"image": image, "pos_points": [[960, 540]], "neg_points": [], "obj_bbox": []}
        miss, response = worker.call(body)
        hits = [worker.call(body)[0] for _ in range(args.hits)]
        size = len(response.body)
        # what Nuclio's Python wrapper adds after the handler: the response envelope as JSON
        t0 = time.perf_counter()
        json.dumps({"body": response.body, "status_code": 200, "content_type": response.content_type, "headers": {}})
        envelope_s = time.perf_counter() - t0
        print(f"  {name:<20} ({len(image) / 1e6:4.1f} MB b64)  miss {1000 * miss:8.1f} ms   hit {_ms(hits)}")
        print(f"  {'':<20} + Nuclio wrapper envelope json.dumps {1000 * envelope_s:.1f} ms (outside the handler)")
        runs = worker.context.user_data.model.embedder.encoder_calls
        print(f"  {'':<20} response {size / 1e6:.1f} MB; model runs so far: {runs}")
        results.add(f"drop-in {name}: miss ({args.cold_model})", 1000 * miss, "ms")
        hit_ms = 1000 * statistics.median(hits)
        results.add(f"drop-in {name}: hit, median", hit_ms, "ms", "< 50", hit_ms < 50)
        results.add(f"drop-in {name}: Nuclio envelope json.dumps (outside the handler)", 1000 * envelope_s, "ms")
    t0 = time.perf_counter()
    prefetch_body = {"prefetch": [_b64(np.ascontiguousarray(rgb[:, ::-1]), "JPEG")]}
    _, response = worker.call(prefetch_body)
    prefetch_s = time.perf_counter() - t0
    print(f"  prefetch of 1 new frame: {1000 * prefetch_s:.1f} ms -> {response.body}")
    results.add(f"drop-in prefetch of 1 new JPEG frame ({args.cold_model})", 1000 * prefetch_s, "ms")

    print(f"\n== server-decoded interactor ({args.interactor_model} random weights)")
    os.environ["CVAT_EXT_SAM_MODEL_TYPE"] = args.interactor_model
    worker = Worker("pytorch/cvat_ext/sam-interactor")
    image = frames["1920x1080 JPEG q90"]
    clicks = [[[960, 540]], [[960, 540], [700, 400]], [[960, 540], [700, 400], [1200, 600]]]
    miss, _ = worker.call({"image": image, "pos_points": clicks[0], "neg_points": [], "obj_bbox": []})
    hits = []
    for i in range(args.hits):
        body = {"image": image, "pos_points": clicks[i % 3], "neg_points": [[100, 100]], "obj_bbox": []}
        hits.append(worker.call(body)[0])
    box_hit, response = worker.call(
        {"image": image, "pos_points": [], "neg_points": [], "obj_bbox": [[500, 300], [1400, 800]]}
    )
    print(f"  first click (embedding miss) {1000 * miss:8.1f} ms")
    print(f"  next clicks (cached)         {_ms(hits)}")
    print(f"  box prompt (cached)          {1000 * box_hit:8.1f} ms; response {len(response.body) / 1e3:.1f} kB")
    results.add(f"interactor ({args.interactor_model}): first click (embedding miss)", 1000 * miss, "ms")
    click_ms = 1000 * statistics.median(hits)
    results.add(f"interactor ({args.interactor_model}): next clicks (cached), median", click_ms, "ms")
    results.add(f"interactor ({args.interactor_model}): box prompt (cached)", 1000 * box_hit, "ms")
    results.write()


if __name__ == "__main__":
    main()

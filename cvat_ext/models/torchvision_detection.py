"""COCO instance segmentation (Mask R-CNN) and person keypoints (Keypoint R-CNN) from torchvision.

``build_detection_model(arch, variant, ...)`` builds the ``torch.nn.Module`` in eval mode:

* ``arch``: ``"maskrcnn"`` (boxes + instance masks, 91 COCO class indices) or ``"keypointrcnn"``
  (person boxes + 17 COCO keypoints);
* ``variant``: ``"resnet50_fpn"`` (the published COCO checkpoints), ``"resnet50_fpn_v2"``
  (Mask R-CNN only) or ``"tiny"``: a two-layer backbone with random weights, the same detection
  heads and post-processing, small enough for CPU tests (a forward pass takes milliseconds);
* ``weights_path``: a local ``state_dict`` file (the image downloads it at build time); None keeps
  random weights.

``TorchvisionDetector(model)`` is the callable the functions use: ``(H, W, 3) uint8 RGB ->``
:class:`~cvat_ext.models.detections.Detections` with masks cropped to their boxes and keypoints as
``[x, y, score]`` (torchvision's keypoint scores are heatmap logits, not probabilities).
torch is imported only inside these functions.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from cvat_ext.errors import ConfigError
from cvat_ext.models.detections import Detections, MaskCrop
from cvat_ext.models.frame_input import FrameLimits, shrink_rgb
from cvat_ext.models.weights import load_checkpoint

Arch = Literal["maskrcnn", "keypointrcnn"]
COCO_NUM_CLASSES = 91
COCO_NUM_KEYPOINTS = 17

#: torchvision's published COCO checkpoints: file name -> URL. The 8 hex digits in each name are
#: the first 8 of the file's sha256 (torch.hub checks the same prefix).
CHECKPOINTS: dict[tuple[str, str], str] = {
    ("maskrcnn", "resnet50_fpn"): "https://download.pytorch.org/models/maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth",
    ("maskrcnn", "resnet50_fpn_v2"): "https://download.pytorch.org/models/maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth",
    ("keypointrcnn", "resnet50_fpn"): "https://download.pytorch.org/models/keypointrcnn_resnet50_fpn_coco-fc266e95.pth",
}

#: environment read by :func:`detector_from_env` (set in function.yaml)
ENV_VARIANT = "CVAT_EXT_MODEL_VARIANT"
ENV_WEIGHTS = "CVAT_EXT_WEIGHTS"
ENV_DEVICE = "CVAT_EXT_DEVICE"


def _tiny_backbone(torch: Any, channels: int = 16) -> Any:
    """Stride-16 feature map from two strided convolutions; torchvision reads ``out_channels``."""
    nn = torch.nn
    backbone = nn.Sequential(
        nn.Conv2d(3, 8, kernel_size=3, stride=4, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(8, channels, kernel_size=3, stride=4, padding=1),
        nn.ReLU(inplace=True),
    )
    backbone.out_channels = channels
    return backbone


def _tiny_model(arch: Arch, num_classes: int, num_keypoints: int, seed: int) -> Any:
    torch = importlib.import_module("torch")
    det = importlib.import_module("torchvision.models.detection")
    ops = importlib.import_module("torchvision.ops")
    anchor_mod = importlib.import_module("torchvision.models.detection.anchor_utils")
    faster = importlib.import_module("torchvision.models.detection.faster_rcnn")
    torch.manual_seed(seed)
    channels = 16
    common: dict[str, Any] = {
        "rpn_anchor_generator": anchor_mod.AnchorGenerator(sizes=((16, 32, 64),), aspect_ratios=((0.5, 1.0, 2.0),)),
        "box_roi_pool": ops.MultiScaleRoIAlign(featmap_names=["0"], output_size=7, sampling_ratio=2),
        "box_head": faster.TwoMLPHead(channels * 7 * 7, 64),
        "box_predictor": faster.FastRCNNPredictor(64, num_classes),
        "min_size": 128,
        "max_size": 256,
        # random weights score everything low: keep every box so the output paths are exercised
        "box_score_thresh": 0.0,
        "box_detections_per_img": 20,
        "rpn_pre_nms_top_n_test": 100,
        "rpn_post_nms_top_n_test": 50,
    }
    backbone = _tiny_backbone(torch, channels)
    if arch == "maskrcnn":
        mask_mod = importlib.import_module("torchvision.models.detection.mask_rcnn")
        return det.MaskRCNN(
            backbone,
            num_classes=None,
            mask_roi_pool=ops.MultiScaleRoIAlign(featmap_names=["0"], output_size=14, sampling_ratio=2),
            mask_head=mask_mod.MaskRCNNHeads(channels, (16, 16), 1),
            mask_predictor=mask_mod.MaskRCNNPredictor(16, 16, num_classes),
            **common,
        )
    kp_mod = importlib.import_module("torchvision.models.detection.keypoint_rcnn")
    return det.KeypointRCNN(
        backbone,
        num_classes=None,
        keypoint_roi_pool=ops.MultiScaleRoIAlign(featmap_names=["0"], output_size=14, sampling_ratio=2),
        keypoint_head=kp_mod.KeypointRCNNHeads(channels, (32, 32)),
        keypoint_predictor=kp_mod.KeypointRCNNPredictor(32, num_keypoints),
        **common,
    )


def build_detection_model(
    arch: Arch,
    variant: str = "resnet50_fpn",
    *,
    weights_path: str | os.PathLike[str] | None = None,
    num_classes: int | None = None,
    num_keypoints: int = COCO_NUM_KEYPOINTS,
    seed: int = 0,
) -> Any:
    """The torchvision detection model in eval mode (see the module docstring)."""
    if arch not in ("maskrcnn", "keypointrcnn"):
        raise ConfigError(f"torchvision detection: unknown arch {arch!r}, expected maskrcnn or keypointrcnn")
    classes = num_classes if num_classes is not None else (COCO_NUM_CLASSES if arch == "maskrcnn" else 2)
    if variant == "tiny":
        model = _tiny_model(arch, classes, num_keypoints, seed)
    else:
        det = importlib.import_module("torchvision.models.detection")
        builders = {
            ("maskrcnn", "resnet50_fpn"): "maskrcnn_resnet50_fpn",
            ("maskrcnn", "resnet50_fpn_v2"): "maskrcnn_resnet50_fpn_v2",
            ("keypointrcnn", "resnet50_fpn"): "keypointrcnn_resnet50_fpn",
        }
        builder = builders.get((arch, variant))
        if builder is None:
            raise ConfigError(f"torchvision detection: no {variant!r} variant of {arch}")
        kwargs: dict[str, Any] = {"weights": None, "weights_backbone": None, "num_classes": classes}
        if arch == "keypointrcnn":
            kwargs["num_keypoints"] = num_keypoints
        model = getattr(det, builder)(**kwargs)
    if weights_path is not None:
        load_checkpoint(model, weights_path, what="torchvision detection")
    return model.eval()


@dataclass
class TorchvisionDetector:
    """Callable ``(rgb (H, W, 3) uint8) -> Detections`` around a torchvision detection model.

    ``mask_thr`` binarises mask probabilities; masks are cut to their (rounded, clipped) box
    before binarising, so memory stays proportional to the objects, not N full frames.

    A frame larger than the model's working size (its transform's ``min_size``/``max_size`` scale)
    is shrunk to that size on the CPU first (uint8, area average) and the results are mapped back:
    torchvision would otherwise hold the whole frame as float32 and paste every mask at full size
    (an 8000x8000 frame took 11.7 GB for 20 masks; shrunk it takes what a 1333-px frame takes).
    """

    model: Any
    device: str = "cpu"
    mask_thr: float = 0.5

    def __post_init__(self) -> None:
        self._torch: Any = importlib.import_module("torch")
        self.model = self.model.to(self.device).eval()

    @property
    def frame_limits(self) -> FrameLimits:
        """The model's transform scales the long side to at most ``max_size``: beyond ``max_size / 2``:1
        the short side would round below 2 pixels (0 fails the resize), and nothing is detectable
        there anyway, so the detector answers the empty result."""
        transform = getattr(self.model, "transform", None)
        max_size = int(getattr(transform, "max_size", 1333))
        return FrameLimits("the torchvision detector", max_aspect=max(max_size / 2, 1.0), outside="empty")

    def work_scale(self, height: int, width: int) -> float:
        """The scale the model's transform applies to a ``height x width`` frame (1.0 when it has none)."""
        transform = getattr(self.model, "transform", None)
        if transform is None:
            return 1.0
        min_size = float(transform.min_size[-1])
        return min(min_size / min(height, width), float(transform.max_size) / max(height, width))

    def __call__(self, rgb: npt.NDArray[np.uint8]) -> Detections:
        torch = self._torch
        h, w = rgb.shape[:2]
        to_input = (1.0, 1.0)
        scale = self.work_scale(h, w)
        if scale < 1.0:
            rgb, to_input = shrink_rgb(rgb, scale)
        # torch refuses read-only arrays (PIL's); the uint8 copy is small next to the float image
        pixels = np.array(rgb, dtype=np.uint8, order="C", copy=not rgb.flags.writeable)
        image = torch.from_numpy(pixels).to(self.device).permute(2, 0, 1).float().div_(255.0)
        with torch.inference_mode():
            out = self.model([image])[0]
        sx, sy = to_input
        xyxy = out["boxes"].float().cpu().numpy().astype(np.float64) * [sx, sy, sx, sy]
        xyxy = np.clip(xyxy, 0, [w, h, w, h])
        score = out["scores"].float().cpu().numpy().astype(np.float64)
        class_id = out["labels"].cpu().numpy().astype(np.int64)
        masks = None
        if "masks" in out:
            masks = self._crop_masks(out["masks"], xyxy, h, w, to_input)
        keypoints = None
        if "keypoints" in out:
            kp = out["keypoints"].float().cpu().numpy().astype(np.float64)
            kp[..., 0] *= sx
            kp[..., 1] *= sy
            kp_score = out["keypoints_scores"].float().cpu().numpy().astype(np.float64)
            keypoints = np.concatenate([kp[..., :2], kp_score[..., None]], axis=-1).reshape(len(score), -1, 3)
        return Detections(xyxy, score, class_id, masks=masks, keypoints=keypoints)

    def _crop_masks(
        self, probs: Any, xyxy: npt.NDArray[np.float64], h: int, w: int, to_input: tuple[float, float]
    ) -> tuple[MaskCrop | None, ...]:
        """Per detection, the binarised mask inside its box in input pixels.

        ``probs`` (N, 1, h', w') at the working size; ``to_input`` (sx, sy) input pixels per working
        pixel: a shrunk frame's probabilities are resized (bilinear) to the box, never the frame.
        """
        crops: list[MaskCrop | None] = []
        for i in range(xyxy.shape[0]):
            x0, y0 = int(max(np.floor(xyxy[i, 0]), 0)), int(max(np.floor(xyxy[i, 1]), 0))
            x1, y1 = int(min(np.ceil(xyxy[i, 2]), w - 1)), int(min(np.ceil(xyxy[i, 3]), h - 1))
            if x1 < x0 or y1 < y0:
                crops.append(None)
                continue
            box_probs = self._box_probs(probs[i, 0], (x0, y0, x1, y1), to_input)
            bits = (box_probs > self.mask_thr).cpu().numpy()
            crops.append(MaskCrop(bits, x0, y0).tight())
        return tuple(crops)

    def _box_probs(self, probs: Any, box: tuple[int, int, int, int], to_input: tuple[float, float]) -> Any:
        """(y1 - y0 + 1, x1 - x0 + 1) probabilities of the inclusive input-pixel ``box``."""
        x0, y0, x1, y1 = box
        if to_input == (1.0, 1.0):
            return probs[y0 : y1 + 1, x0 : x1 + 1]
        sx, sy = to_input
        # input pixel centre (x + 0.5) sits at working coordinate (x + 0.5) / sx: sample there
        functional = self._torch.nn.functional
        xs = self._torch.arange(x0, x1 + 1, device=probs.device, dtype=probs.dtype).add_(0.5).div_(sx)
        ys = self._torch.arange(y0, y1 + 1, device=probs.device, dtype=probs.dtype).add_(0.5).div_(sy)
        hs, ws = probs.shape
        grid_x = xs.mul_(2.0 / ws).sub_(1.0)  # grid_sample's [-1, 1] with align_corners=False
        grid_y = ys.mul_(2.0 / hs).sub_(1.0)
        grid = self._torch.stack(self._torch.meshgrid(grid_y, grid_x, indexing="ij")[::-1], dim=-1)
        sampled = functional.grid_sample(
            probs[None, None], grid[None], mode="bilinear", padding_mode="border", align_corners=False
        )
        return sampled[0, 0]


def detector_from_env(arch: Arch, *, default_weights: str | None = None) -> TorchvisionDetector:
    """The detector a Nuclio function builds: variant, weights file and device from the environment.

    ``CVAT_EXT_MODEL_VARIANT`` (default ``resnet50_fpn``), ``CVAT_EXT_WEIGHTS`` (default
    ``default_weights``; must exist unless the variant is ``tiny``), ``CVAT_EXT_DEVICE`` (default
    ``cuda`` when available, else ``cpu``).
    """
    torch = importlib.import_module("torch")
    variant = os.environ.get(ENV_VARIANT, "resnet50_fpn")
    weights = os.environ.get(ENV_WEIGHTS, default_weights or "") or None
    if variant != "tiny" and (weights is None or not os.path.isfile(weights)):
        raise ConfigError(f"{arch}: weights file {weights!r} not found (set {ENV_WEIGHTS})")
    device = os.environ.get(ENV_DEVICE) or ("cuda" if torch.cuda.is_available() else "cpu")
    model = build_detection_model(arch, variant, weights_path=weights if variant != "tiny" else None)
    return TorchvisionDetector(model, device=device)

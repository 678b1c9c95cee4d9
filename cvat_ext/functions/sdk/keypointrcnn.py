"""cvat-sdk auto-annotation module: torchvision Keypoint R-CNN.

``--function-module cvat_ext.functions.sdk.keypointrcnn``

Parameters (``-p name=type:value``): ``weights=str:<path>``, ``device=str:cpu|cuda``,
``threshold=float:0.5``, ``keypoint_thr=float:0.0``.
"""

from cvat_ext.functions.sdk.torchvision import create_keypointrcnn as create

__all__ = ["create"]

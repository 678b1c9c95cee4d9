"""cvat-sdk auto-annotation module: torchvision Mask R-CNN (``--function-module cvat_ext.functions.sdk.maskrcnn``).

Parameters (``-p name=type:value``): ``variant=str:resnet50_fpn|resnet50_fpn_v2``,
``weights=str:<path>``, ``device=str:cpu|cuda``, ``threshold=float:0.5``.
"""

from cvat_ext.functions.sdk.torchvision import create_maskrcnn as create

__all__ = ["create"]

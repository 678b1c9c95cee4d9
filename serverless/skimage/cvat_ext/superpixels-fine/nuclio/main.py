"""Nuclio entry point (handler: main:handler): the shared cvat-ext runtime around model_handler.

The body is CVAT's interactor call (image, pos_points, neg_points, obj_bbox) or a prefetch call
``{"prefetch": ["<b64 frame file>", ...]}`` (see cvat_ext.functions.superpixels).
"""

from model_handler import build_model

from cvat_ext.functions.handler import InteractorRequest, make_handler
from cvat_ext.functions.sam import make_parse

init_context, handler = make_handler(build_model, parse=make_parse(InteractorRequest))

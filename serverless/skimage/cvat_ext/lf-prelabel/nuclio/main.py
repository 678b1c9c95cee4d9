"""Nuclio entry point (handler: main:handler): the shared cvat-ext runtime around model_handler."""

from model_handler import build_model

from cvat_ext.functions.handler import DetectorRequest, make_handler

init_context, handler = make_handler(build_model, request_type=DetectorRequest)

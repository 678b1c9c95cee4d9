"""The shared Nuclio runtime of cvat-ext's serverless functions.

* :mod:`~cvat_ext.serverless.request`  — request models (detector, interactor), image decoding with limits;
* :mod:`~cvat_ext.serverless.response` — CVAT detector items and interactor v2 shapes;
* :mod:`~cvat_ext.serverless.handler`  — ``make_handler(model_factory)`` -> ``(init_context, handler)``;
* :mod:`~cvat_ext.serverless.spec`     — the function's own function.yaml and declared labels;
* :mod:`~cvat_ext.serverless.lint`     — function.yaml checks for what CVAT 2.73 mis-parses;
* :mod:`~cvat_ext.serverless.gateway`  — a local stand-in for the Nuclio dashboard (``cvat-ext functions serve``).

Nothing here imports torch, cv2 or nuclio_sdk at module level.
"""

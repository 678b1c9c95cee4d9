"""cvat-ext's serverless functions: the contract, the runtime that ships in function images, the encoders.

* :mod:`~cvat_ext.functions.interface`       — Protocols and frozen specs of detector and interactor functions;
* :mod:`~cvat_ext.functions.spec`            — the pydantic model of ``function.yaml`` (runtime and lint);
* :mod:`~cvat_ext.functions.encode`          — the one policy from :class:`Detections` to CVAT shapes;
* :mod:`~cvat_ext.functions.request`         — request models (detector, interactor), image decoding with limits;
* :mod:`~cvat_ext.functions.response`        — CVAT detector items and interactor v2 shapes (Nuclio JSON);
* :mod:`~cvat_ext.functions.handler`         — ``make_handler(model_factory)`` -> ``(init_context, handler)``;
* :mod:`~cvat_ext.functions.detector`        — a detector function around any ``model(rgb) -> Detections``;
* :mod:`~cvat_ext.functions.sam`             — the two SAM functions (browser-decoded blob, server-decoded);
* :mod:`~cvat_ext.functions.embedding_cache` — the SAM embedding cache (per worker + Redis);
* :mod:`~cvat_ext.functions.sdk`             — the same models as cvat-sdk auto-annotation modules;
* :mod:`~cvat_ext.functions.dev`             — dev-only tools: the local dashboard (``functions serve``), the lint.

Layering: ``cvat_ext.models`` (model code) imports nothing from here; the runtime modules above
(everything but ``sdk`` and ``dev``) are what a function image imports, and they import neither
cvat_sdk nor the dev tools. Nothing here imports torch, cv2 or nuclio_sdk at module level.
"""

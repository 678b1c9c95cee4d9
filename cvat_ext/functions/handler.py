"""The shared Nuclio handler: decode and validate the request, call the model, encode the response.

A function's ``main.py`` is three lines::

    from cvat_ext.functions.handler import make_handler
    from model_handler import build_model          # build_model(context) -> callable(request) -> JSON-able

    init_context, handler = make_handler(build_model, request_type=DetectorRequest)

``init_context(context)`` builds the model once per worker into ``context.user_data.model``;
``handler(context, event)`` answers every event with a JSON ``context.Response``:

* 200 and the model's result (any JSON-able value, or :class:`~cvat_ext.functions.response.RawJson`);
* a :class:`~cvat_ext.errors.FunctionInputError` (bad body, bad base64, not an image, too big, a
  missing or mistyped field, or raised by the model for a bad prompt) -> its status (400) and
  ``{"error": <message>, "field": <field or null>}``;
* any other exception -> 500 and ``{"error": "internal error: <type>: <message>", "field": null}``,
  logged with its traceback. The worker keeps serving: a bad frame never kills it, and CVAT's batch
  job sees an HTTP error for that frame only.

Timings accumulate in ``context.user_data.stats`` (:class:`HandlerStats`) so the benchmark can
report the runtime's own overhead (parse + pixel decode + encode) against the model's time.
"""

from __future__ import annotations

import inspect
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from cvat_ext.errors import FunctionInputError
from cvat_ext.functions.request import (
    DEFAULT_LIMITS,
    DetectorRequest,
    FunctionRequest,
    InteractorRequest,
    RequestLimits,
    parse_request,
)
from cvat_ext.functions.response import RawJson, encode_json

# request/response types re-exported so a main.py needs one import line
__all__ = [
    "DetectorRequest",
    "FunctionRequest",
    "HandlerStats",
    "InteractorRequest",
    "RawJson",
    "RequestLimits",
    "error_body",
    "make_handler",
]

logger = logging.getLogger(__name__)

RequestT = TypeVar("RequestT", bound=BaseModel)
Model = Callable[[Any], Any]
ModelFactory = Callable[[Any], Model]
InitContext = Callable[[Any], None]
Handler = Callable[[Any, Any], Any]

JSON_CONTENT_TYPE = "application/json"


@dataclass
class HandlerStats:
    """Per-worker counters; seconds are sums over all requests."""

    requests: int = 0
    client_errors: int = 0
    server_errors: int = 0
    parse_s: float = 0.0
    decode_s: float = 0.0
    model_s: float = 0.0
    encode_s: float = 0.0

    @property
    def overhead_s(self) -> float:
        """Runtime time outside the model: parse/validate + pixel decode + encode."""
        return self.parse_s + self.decode_s + self.encode_s

    @property
    def overhead_ratio(self) -> float:
        """``overhead_s / model_s`` (0 when no model time was recorded)."""
        return self.overhead_s / self.model_s if self.model_s > 0 else 0.0


def error_body(message: str, field: str | None) -> str | bytes:
    """The JSON error body every 4xx/5xx answer carries."""
    return encode_json({"error": message, "field": field})


@dataclass
class _HandlerPair(Generic[RequestT]):
    model_factory: ModelFactory
    parse: Callable[[Any], RequestT]

    def init_context(self, context: Any) -> None:
        context.user_data.model = self.model_factory(context)
        context.user_data.stats = HandlerStats()
        context.user_data.handler_pair = self

    def handler(self, context: Any, event: Any) -> Any:
        # a context initialised by another pair (several pairs in one test module) or not at all
        if getattr(context.user_data, "handler_pair", None) is not self:
            self.init_context(context)
        stats: HandlerStats = context.user_data.stats
        stats.requests += 1
        try:
            t0 = time.perf_counter()
            request = self.parse(event.body)
            t1 = time.perf_counter()
            result = context.user_data.model(request)
            t2 = time.perf_counter()
            body = encode_json(result)
            t3 = time.perf_counter()
        except FunctionInputError as exc:
            stats.client_errors += 1
            _log(context, "warn", "rejected request", error=str(exc), field=exc.field)
            return _response(context, error_body(str(exc), exc.field), exc.status)
        except Exception as exc:  # a bad frame must never kill the worker
            stats.server_errors += 1
            _log(context, "error", "function failed", error=repr(exc), traceback=traceback.format_exc())
            message = f"internal error: {type(exc).__name__}: {exc}"[:1000]
            return _response(context, error_body(message, None), 500)
        decode_s = _decode_seconds(request)
        stats.parse_s += t1 - t0
        stats.decode_s += decode_s
        stats.model_s += max(t2 - t1 - decode_s, 0.0)
        stats.encode_s += t3 - t2
        return _response(context, body, 200)


def _decode_seconds(request: Any) -> float:
    image = getattr(request, "image", None)
    return float(getattr(image, "decode_s", 0.0))


def _response(context: Any, body: str | bytes, status: int) -> Any:
    return context.Response(body=body, headers={}, content_type=JSON_CONTENT_TYPE, status_code=status)


def _log(context: Any, level: str, message: str, **fields: Any) -> None:
    log_with = getattr(getattr(context, "logger", None), f"{level}_with", None)
    if callable(log_with):
        try:
            log_with(message, **fields)
            return
        except Exception:  # a broken platform logger must not turn a 4xx into a 500
            pass
    logger.log(logging.ERROR if level == "error" else logging.WARNING, "%s: %s", message, fields)


def make_handler(
    model_factory: ModelFactory,
    *,
    request_type: type[BaseModel] = DetectorRequest,
    limits: RequestLimits = DEFAULT_LIMITS,
    parse: Callable[[Any], Any] | None = None,
    module: str | None = None,
) -> tuple[InitContext, Handler]:
    """Build the ``(init_context, handler)`` pair of a Nuclio function.

    ``model_factory(context)`` is called once per worker and returns the model: a callable taking
    the validated request (an instance of ``request_type``, e.g. :class:`DetectorRequest` or
    :class:`InteractorRequest`) and returning the JSON-able response. ``parse`` replaces the
    default body parsing (``parse_request(request_type, body, limits=limits)``), e.g. to dispatch
    between request kinds; it must raise FunctionInputError on bad input.

    ``module`` is the ``__name__`` of the module that will hold the pair (default: the caller's),
    set on both functions so ``nuclio_sdk.test.Platform`` finds ``init_context`` next to ``handler``.
    """
    parser: Callable[[Any], Any] = parse or partial(parse_request, request_type, limits=limits)
    pair = _HandlerPair(model_factory, parser)

    def init_context(context: Any) -> None:
        pair.init_context(context)

    def handler(context: Any, event: Any) -> Any:
        return pair.handler(context, event)

    if module is None:
        frame = inspect.currentframe()
        caller = frame.f_back if frame is not None else None
        module = caller.f_globals.get("__name__", __name__) if caller is not None else __name__
    for fn in (init_context, handler):
        fn.__module__ = module
    return init_context, handler

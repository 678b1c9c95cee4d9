"""A local stand-in for the Nuclio dashboard: CVAT's lambda manager talks to it, functions run in-process.

CVAT 2.73 talks to the dashboard at ``CVAT_NUCLIO_HOST:CVAT_NUCLIO_PORT`` (contracts §2.2/§2.3, and
the recording ``L01``-``L05``), always with ``x-nuclio-project-name: cvat``:

* ``GET /api/functions`` -> ``{name: <function config>}`` where each config has
  ``metadata.{name, namespace, labels, annotations}`` (annotations string->string),
  ``spec.{description, handler, runtime}`` and ``status.{state: "ready", httpPort}``;
* ``GET /api/functions/<name>`` -> that one config (404 JSON when unknown);
* ``POST /api/function_invocations`` with ``x-nuclio-function-name: <name>`` and
  ``x-nuclio-path: /``, the JSON payload as body -> the function's own status and body
  (invoke method ``dashboard``: ``CVAT_NUCLIO_INVOKE_METHOD=dashboard``).

With ``direct_ports`` each function also listens on its own port (``status.httpPort``), which is
what CVAT's ``direct`` invoke method posts to. Functions are found as ``**/function.yaml``;
each ``main.py`` is imported from its folder and its ``init_context`` runs on the first call
(or at start with ``eager``). One worker per function: calls to one function are serialised, as a
Nuclio function with ``numWorkers: 1``. Bodies above the function's ``maxRequestBodySize`` get
413 with a JSON error; every other bound (bad ``Content-Length``, deep JSON, slow clients, listen
backlog) is the shared HTTP base's (:mod:`cvat_ext.http_endpoint`), the same as the sidecar's.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from cvat_ext.errors import ConfigError, HttpInputError
from cvat_ext.http_endpoint import BoundedHTTPServer, JsonRequestHandler
from cvat_ext.serverless.handler import error_body
from cvat_ext.serverless.lint import find_function_yamls
from cvat_ext.serverless.spec import annotation_str

__all__ = ["FunctionGateway", "LocalFunction", "load_function"]

logger = logging.getLogger(__name__)

PROJECT = "cvat"
DEFAULT_MAX_BODY = 32 * 2**20


@dataclass
class LocalFunction:
    """One function loaded from its folder. ``invoke`` runs the real Nuclio handler in-process."""

    name: str
    yaml_path: Path
    config: Mapping[str, Any]
    module: ModuleType
    max_body_bytes: int
    http_port: int = 0
    _context: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def dashboard_config(self, *, namespace: str = "nuclio") -> dict[str, Any]:
        """The function as the Nuclio dashboard lists it (annotations as strings, state ready)."""
        metadata = self.config.get("metadata") or {}
        spec = self.config.get("spec") or {}
        annotations = {str(k): annotation_str(v) for k, v in (metadata.get("annotations") or {}).items()}
        return {
            "metadata": {
                "name": self.name,
                "namespace": namespace,
                "labels": {"nuclio.io/project-name": PROJECT},
                "annotations": annotations,
            },
            "spec": {
                "description": spec.get("description", ""),
                "handler": spec.get("handler", "main:handler"),
                "runtime": spec.get("runtime", "python:3.11"),
            },
            "status": {"state": "ready", "httpPort": self.http_port},
        }

    def _ensure_context(self) -> Any:
        if self._context is None:
            import nuclio_sdk

            log = nuclio_sdk.Logger(logging.INFO, self.name)
            log.set_handler("default", sys.stderr, nuclio_sdk.logger.HumanReadableFormatter())
            context = nuclio_sdk.Context(log, nuclio_sdk.Platform("local"), worker_id=0)
            init = getattr(self.module, "init_context", None)
            if callable(init):
                init(context)
            self._context = context
        return self._context

    def warm_up(self) -> None:
        """Run ``init_context`` now (load the model) instead of on the first call."""
        with self._lock:
            self._ensure_context()

    def invoke(self, body: bytes, *, headers: Mapping[str, str], path: str = "/") -> tuple[int, str, bytes]:
        """Call the handler with a Nuclio event; returns ``(status, content_type, body)``."""
        import nuclio_sdk

        content_type = headers.get("Content-Type", headers.get("content-type", "")) or ""
        event_body: Any = body
        if content_type.split(";")[0].strip() == "application/json":
            try:  # Nuclio hands JSON bodies to Python handlers already decoded
                event_body = json.loads(body)
            except (ValueError, RecursionError):  # the handler's own parsing reports it
                event_body = body
        event = nuclio_sdk.Event(
            body=event_body, content_type=content_type, headers=dict(headers), method="POST", path=path, size=len(body)
        )
        with self._lock:
            try:
                context = self._ensure_context()
                response = self.module.handler(context, event)
            except Exception as exc:  # init failure or a handler that does not catch
                logger.exception("function %s failed", self.name)
                return (
                    500,
                    "application/json",
                    _as_bytes(error_body(f"internal error: {type(exc).__name__}: {exc}", None)),
                )
        return _unpack_response(response)


def _as_bytes(data: str | bytes) -> bytes:
    return data.encode() if isinstance(data, str) else data


def _unpack_response(response: Any) -> tuple[int, str, bytes]:
    status = int(getattr(response, "status_code", 200))
    content_type = str(getattr(response, "content_type", "") or "text/plain")
    body = getattr(response, "body", response)
    if isinstance(body, (dict, list)):
        return status, "application/json", json.dumps(body).encode()
    if body is None:
        return status, content_type, b""
    return status, content_type, _as_bytes(body if isinstance(body, (str, bytes)) else str(body))


def _module_name(function_name: str) -> str:
    return "cvat_ext_function_" + re.sub(r"\W", "_", function_name)


def load_function(yaml_path: str | Path) -> LocalFunction:
    """Import ``main.py`` next to ``yaml_path`` (with its folder first on ``sys.path``)."""
    path = Path(yaml_path)
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read function yaml ({exc})") from exc
    name = (config.get("metadata") or {}).get("name") if isinstance(config, Mapping) else None
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{path}: metadata.name is missing")
    spec = config.get("spec") or {}
    module_file, _, _ = str(spec.get("handler", "main:handler")).partition(":")
    main_py = path.parent / f"{module_file}.py"
    if not main_py.is_file():
        raise ConfigError(f"{path}: handler module {main_py.name} not found next to it")
    folder = str(path.parent)
    # every function folder has its own model_handler.py: import each in isolation
    shadowed = {m: sys.modules.pop(m) for m in ("model_handler", module_file) if m in sys.modules}
    sys.path.insert(0, folder)
    try:
        import_spec = importlib.util.spec_from_file_location(_module_name(name), main_py)
        if import_spec is None or import_spec.loader is None:
            raise ConfigError(f"{main_py}: cannot be imported")
        module = importlib.util.module_from_spec(import_spec)
        sys.modules[import_spec.name] = module
        import_spec.loader.exec_module(module)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"{main_py}: import failed ({type(exc).__name__}: {exc})") from exc
    finally:
        sys.path.remove(folder)
        sys.modules.pop("model_handler", None)
        sys.modules.update(shadowed)
    triggers = spec.get("triggers") or {}
    max_body = DEFAULT_MAX_BODY
    for trigger in triggers.values():
        if isinstance(trigger, Mapping) and trigger.get("kind") == "http":
            max_body = int((trigger.get("attributes") or {}).get("maxRequestBodySize", DEFAULT_MAX_BODY))
    return LocalFunction(name=name, yaml_path=path, config=config, module=module, max_body_bytes=max_body)


class _JsonHandler(JsonRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _invoke(self, fn: LocalFunction, path: str) -> None:
        try:
            body = self.read_body(fn.max_body_bytes)
        except HttpInputError as exc:
            self.send_refusal(exc)
            return
        status, content_type, answer = fn.invoke(body, headers=dict(self.headers.items()), path=path)
        self.send_body(status, answer, content_type)


class _DashboardHandler(_JsonHandler):
    def do_GET(self) -> None:
        gateway = self.server.gateway
        path = self.path.split("?")[0].rstrip("/")
        if path == "/api/functions":
            project = self.headers.get("x-nuclio-project-name")
            listed = {} if project not in (None, PROJECT) else gateway.functions
            self.send_json(200, {name: fn.dashboard_config() for name, fn in listed.items()})
        elif path.startswith("/api/functions/"):
            fn = gateway.functions.get(path.removeprefix("/api/functions/"))
            if fn is None:
                self.send_json(404, {"error": f"function {path.rsplit('/', 1)[-1]!r} not found"})
            else:
                self.send_json(200, fn.dashboard_config())
        elif path in ("", "/api/healthz"):
            self.send_json(200, {"functions": sorted(gateway.functions)})
        else:
            self.send_json(404, {"error": f"no route {path}"})

    def do_POST(self) -> None:
        path = self.path.split("?")[0].rstrip("/")
        if path != "/api/function_invocations":
            self.discard_body()
            self.send_json(404, {"error": f"no route {path}"})
            return
        name = self.headers.get("x-nuclio-function-name")
        fn = self.server.gateway.functions.get(name or "")
        if fn is None:
            self.discard_body()
            status = 400 if not name else 404
            self.send_body(status, _as_bytes(error_body(f"unknown function {name!r}", "x-nuclio-function-name")))
            return
        self._invoke(fn, self.headers.get("x-nuclio-path") or "/")


class _DirectHandler(_JsonHandler):
    """Answers CVAT's ``direct`` invoke method: any POST on the function's own port."""

    def do_POST(self) -> None:
        fn = self.server.function
        assert fn is not None
        self._invoke(fn, self.path)


class _Server(BoundedHTTPServer):
    gateway: FunctionGateway
    function: LocalFunction | None = None


class FunctionGateway:
    """The dashboard stand-in. Context manager; ``url`` is ``http://host:port`` once started."""

    def __init__(
        self,
        roots: Iterable[str | Path] = ("serverless",),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        names: Iterable[str] | None = None,
        eager: bool = False,
        direct_ports: bool = True,
    ) -> None:
        wanted = set(names) if names is not None else None
        self.functions: dict[str, LocalFunction] = {}
        for root in roots:
            for yaml_path in find_function_yamls(root):
                if yaml_path.name != "function.yaml":
                    continue  # the GPU variants declare the same function
                fn = load_function(yaml_path)
                if wanted is not None and fn.name not in wanted:
                    continue
                if fn.name in self.functions:
                    raise ConfigError(
                        f"{yaml_path}: function name {fn.name!r} already used by {self.functions[fn.name].yaml_path}"
                    )
                self.functions[fn.name] = fn
        if wanted is not None and wanted - set(self.functions):
            raise ConfigError(f"functions not found: {', '.join(sorted(wanted - set(self.functions)))}")
        self.host = host
        self._port = port
        self._eager = eager
        self._direct_ports = direct_ports
        self._servers: list[_Server] = []
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        if not self._servers:
            raise ConfigError("gateway not started")
        host, port = self._servers[0].server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def port(self) -> int:
        return int(self._servers[0].server_address[1])

    def _serve(self, server: _Server) -> None:
        thread = threading.Thread(target=server.serve_forever, name=f"gateway-{server.server_address[1]}", daemon=True)
        thread.start()
        self._servers.append(server)
        self._threads.append(thread)

    def start(self) -> FunctionGateway:
        if self._eager:
            for fn in self.functions.values():
                fn.warm_up()
        dashboard = _Server((self.host, self._port), _DashboardHandler)
        dashboard.gateway = self
        self._serve(dashboard)
        for fn in self.functions.values():
            if self._direct_ports:
                direct = _Server((self.host, 0), _DirectHandler)
                direct.gateway = self
                direct.function = fn
                fn.http_port = int(direct.server_address[1])
                self._serve(direct)
            else:
                fn.http_port = self.port
        return self

    def serve_forever(self) -> None:
        """Block until interrupted (``cvat-ext functions serve``); starts the servers if needed."""
        if not self._servers:
            self.start()
        try:
            for thread in self._threads:
                thread.join()
        finally:
            self.stop()

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()
        self._threads.clear()

    def __enter__(self) -> FunctionGateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

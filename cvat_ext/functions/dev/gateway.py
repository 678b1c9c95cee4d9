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
what CVAT's ``direct`` invoke method posts to. Functions are found as ``**/function.yaml``; each
``main.py`` is imported from its folder. As in Nuclio:

* each function runs with its own ``spec.env`` (:mod:`~cvat_ext.functions.dev.environment`, with
  command-line overrides), so one process serves ViT-H and ViT-B with their own checkpoints;
* each function has ``numWorkers`` workers, each with its own ``init_context`` (run at start, or on
  a worker's first call with ``eager=False``); a call waits for a free worker at most
  ``workerAvailabilityTimeoutMilliseconds`` (then 503) (:mod:`~cvat_ext.functions.dev.workers`);
* bodies above the trigger's ``maxRequestBodySize`` get 413 with a JSON error; every other bound
  (bad ``Content-Length``, deep JSON, slow clients, listen backlog) is the shared HTTP base's
  (:mod:`cvat_ext.http_endpoint`), the same as the sidecar's.

A function that cannot load (its yaml, an import such as a missing dependency, its
``init_context`` such as missing weights) is logged, kept in :attr:`FunctionGateway.failures` and
**not listed**: CVAT lists a Nuclio function in any state and would offer a broken one to users.
Its calls get 503. Every answer >= 400 is logged with the function, the status, the error and the
field: CVAT replaces a function's error body with a generic 400, so the log is where ops see why.
:meth:`FunctionGateway.drain` (SIGTERM/SIGINT in :meth:`~FunctionGateway.serve_forever`) refuses
new calls with 503 and waits for the calls in flight before the servers close.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import signal
import sys
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from cvat_ext.errors import ConfigError, FunctionUnavailableError, HttpInputError
from cvat_ext.functions.dev.environment import EnvOverrides, function_environment, scoped_environ
from cvat_ext.functions.dev.lint import find_function_yamls
from cvat_ext.functions.dev.workers import WorkerPool
from cvat_ext.functions.embedding_cache import ENV_LOCAL_CACHE_SCOPE
from cvat_ext.functions.handler import error_body
from cvat_ext.functions.spec import FunctionYaml, HttpTrigger, load_function_config
from cvat_ext.http_endpoint import BoundedHTTPServer, HttpLimits, JsonRequestHandler, bind_server

__all__ = ["FunctionGateway", "LocalFunction", "load_function"]

logger = logging.getLogger(__name__)

PROJECT = "cvat"


@dataclass
class LocalFunction:
    """One function loaded from its folder. ``invoke`` runs the real Nuclio handler in-process.

    ``env`` is what its workers' ``init_context`` sees on top of the process environment;
    ``load_error`` is set (and the function is not ready) once loading failed.
    """

    name: str
    yaml_path: Path
    config: FunctionYaml
    module: ModuleType
    trigger: HttpTrigger
    env: dict[str, str]
    http_port: int = 0
    load_error: str | None = None
    pool: WorkerPool = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.pool = WorkerPool(
            self.name,
            self._new_context,
            size=self.trigger.num_workers,
            availability_timeout_s=self.trigger.worker_availability_timeout_s,
        )

    @property
    def max_body_bytes(self) -> int:
        return self.trigger.max_body_bytes

    @property
    def ready(self) -> bool:
        return self.load_error is None

    def dashboard_config(self, *, namespace: str = "nuclio") -> dict[str, Any]:
        """The function as the Nuclio dashboard lists it (annotations as strings, state ready)."""
        spec = self.config.spec
        return {
            "metadata": {
                "name": self.name,
                "namespace": namespace,
                "labels": {"nuclio.io/project-name": PROJECT},
                "annotations": dict(self.config.annotations),
            },
            "spec": {
                "description": spec.description or "",
                "handler": spec.handler or "main:handler",
                "runtime": spec.runtime or "python:3.11",
            },
            "status": {"state": "ready", "httpPort": self.http_port},
        }

    def _new_context(self, worker_id: int) -> Any:
        import nuclio_sdk

        log = nuclio_sdk.Logger(logging.INFO, f"{self.name}[{worker_id}]")
        log.set_handler("default", sys.stderr, nuclio_sdk.logger.HumanReadableFormatter())
        context = nuclio_sdk.Context(log, nuclio_sdk.Platform("local"), worker_id=worker_id)
        init = getattr(self.module, "init_context", None)
        if callable(init):
            with scoped_environ(self.env):
                init(context)
        return context

    def _fail(self, exc: BaseException) -> str:
        self.load_error = f"{type(exc).__name__}: {exc}"
        logger.error("function %s cannot load, not served: %s", self.name, self.load_error)
        return self.load_error

    def warm_up(self) -> bool:
        """Run every worker's ``init_context`` now; False (and :attr:`load_error` set) when it fails."""
        try:
            self.pool.start()
        except Exception as exc:  # missing weights, a bad device, any error of the function's own code
            self._fail(exc)
            return False
        return True

    def invoke(self, body: bytes, *, headers: Mapping[str, str], path: str = "/") -> tuple[int, str, bytes]:
        """Call the handler with a Nuclio event on a free worker; returns ``(status, content_type, body)``."""
        import nuclio_sdk

        if self.load_error is not None:
            message = f"function {self.name} is not loaded: {self.load_error}"
            return FunctionUnavailableError.status, "application/json", _as_bytes(error_body(message, None))
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
        try:
            with self.pool.borrow() as context:
                response = self.module.handler(context, event)
        except FunctionUnavailableError as exc:
            return exc.status, "application/json", _as_bytes(error_body(str(exc), None))
        except Exception as exc:  # a lazy init that failed, or a handler that does not catch
            logger.exception("function %s failed", self.name)
            if not self.pool.contexts():
                self._fail(exc)
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


def _import_main(main_py: Path, module_file: str, name: str) -> ModuleType:
    folder = str(main_py.parent)
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
    except Exception as exc:  # ImportError of a missing dependency, or the module's own code
        raise ConfigError(f"{main_py}: import failed ({type(exc).__name__}: {exc})") from exc
    finally:
        sys.path.remove(folder)
        sys.modules.pop("model_handler", None)
        sys.modules.update(shadowed)
    return module


def load_function(
    yaml_path: str | Path, *, overrides: EnvOverrides | None = None, workers: int | None = None
) -> LocalFunction:
    """Import ``main.py`` next to ``yaml_path`` (with its folder first on ``sys.path``, its env set).

    ``workers`` replaces the trigger's ``numWorkers``. A bad yaml or a failed import -> ConfigError
    naming the file.
    """
    path = Path(yaml_path)
    config = load_function_config(path)
    module_file, _, _ = str(config.spec.handler or "main:handler").partition(":")
    main_py = path.parent / f"{module_file}.py"
    if not main_py.is_file():
        raise ConfigError(f"{path}: handler module {main_py.name} not found next to it")
    trigger = config.http(where=str(path))
    if workers is not None:
        trigger = HttpTrigger(workers, trigger.max_body_bytes, trigger.worker_availability_timeout_s)
    env = function_environment(config, path, overrides or EnvOverrides())
    with scoped_environ(env):
        module = _import_main(main_py, module_file, config.name)
    return LocalFunction(name=config.name, yaml_path=path, config=config, module=module, trigger=trigger, env=env)


class _JsonHandler(JsonRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _invoke(self, fn: LocalFunction, path: str) -> None:
        gateway = self.server.gateway
        with gateway.invocation() as admitted:
            if not admitted:
                self.discard_body()
                self.close_connection = True
                message = "shutting down: not taking new calls"
                self._answer(fn.name, FunctionUnavailableError.status, _as_bytes(error_body(message, None)))
                return
            try:
                body = self.read_body(fn.max_body_bytes)
            except HttpInputError as exc:
                self._answer(fn.name, exc.status, _as_bytes(error_body(str(exc), exc.field)))
                return
            status, content_type, answer = fn.invoke(body, headers=dict(self.headers.items()), path=path)
            self._answer(fn.name, status, answer, content_type)

    def _answer(self, name: str, status: int, body: bytes, content_type: str = "application/json") -> None:
        if status >= 400:
            log_failed_call(name, status, body)
        self.send_body(status, body, content_type)


def log_failed_call(name: str, status: int, body: bytes) -> None:
    """One log line per failed call, with the error and the field from the JSON error body.

    CVAT answers the annotator with a generic "400 Client Error" whatever the function said, so
    this line is the only place the reason shows up.
    """
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if isinstance(payload, Mapping):
        error, where = payload.get("error"), payload.get("field")
    else:
        error, where = body[:200].decode("utf-8", "replace"), None
    level = logging.ERROR if status >= 500 else logging.WARNING
    logger.log(level, "function %s answered %d: %s (field %s)", name, status, error, where)


class _DashboardHandler(_JsonHandler):
    def do_GET(self) -> None:
        gateway = self.server.gateway
        path = self.path.split("?")[0].rstrip("/")
        if path == "/api/functions":
            project = self.headers.get("x-nuclio-project-name")
            listed = {} if project not in (None, PROJECT) else gateway.ready_functions()
            self.send_json(200, {name: fn.dashboard_config() for name, fn in listed.items()})
        elif path.startswith("/api/functions/"):
            name = path.removeprefix("/api/functions/")
            fn = gateway.ready_functions().get(name)
            if fn is None:
                reason = gateway.failures.get(name)
                message = (
                    f"function {name!r} not found" if reason is None else f"function {name!r} not loaded: {reason}"
                )
                self.send_json(404, {"error": message})
            else:
                self.send_json(200, fn.dashboard_config())
        elif path in ("", "/api/healthz"):
            ready = sorted(gateway.ready_functions())
            healthy = bool(ready) and not gateway.draining
            payload = {"functions": ready, "failed": dict(gateway.failures), "draining": gateway.draining}
            self.send_json(200 if healthy else 503, payload)
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
        reason = self.server.gateway.failures.get(name or "")
        if fn is None and reason is not None:
            self.discard_body()
            message = f"function {name} is not loaded: {reason}"
            self._answer(name or "?", FunctionUnavailableError.status, _as_bytes(error_body(message, None)))
            return
        if fn is None:
            self.discard_body()
            status = 400 if not name else 404
            self._answer(
                name or "?", status, _as_bytes(error_body(f"unknown function {name!r}", "x-nuclio-function-name"))
            )
            return
        self._invoke(fn, self.headers.get("x-nuclio-path") or "/")


class _DirectHandler(_JsonHandler):
    """Answers CVAT's ``direct`` invoke method: any POST on the function's own port."""

    def do_POST(self) -> None:
        fn = self.server.function
        assert fn is not None
        self._invoke(fn, self.path)


class _Server(BoundedHTTPServer):
    # bursts of CVAT calls (a whole-task auto-annotation, 50 annotators) must queue, not be refused:
    # the listen backlog is HttpLimits.request_queue_size (128), as for every cvat-ext endpoint
    gateway: FunctionGateway
    function: LocalFunction | None = None


def _function_yamls(roots: Iterable[str | Path]) -> list[Path]:
    found: list[Path] = []
    for root in roots:
        if not Path(root).exists():
            raise ConfigError(f"functions root {root} does not exist (run from the repository root or pass --root)")
        # the GPU variants declare the same function
        found.extend(p for p in find_function_yamls(root) if p.name == "function.yaml")
    return found


class FunctionGateway:
    """The dashboard stand-in. Context manager; ``url`` is ``http://host:port`` once started.

    ``env`` overrides (``NAME=VALUE`` / ``FUNCTION:NAME=VALUE``) go on top of each yaml's
    ``spec.env``; ``workers`` replaces every function's ``numWorkers``. No function.yaml under
    ``roots`` (or none of ``names``) is a ConfigError; functions that fail to load are listed in
    :attr:`failures` (name or yaml path -> reason) and not served. The HTTP limits
    (``CVAT_EXT_HTTP_*``, or ``limits``) are read first, so a bad one fails before any model loads.
    """

    def __init__(
        self,
        roots: Iterable[str | Path] = ("serverless",),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        names: Iterable[str] | None = None,
        eager: bool = True,
        direct_ports: bool = True,
        env: Iterable[str] | EnvOverrides = (),
        workers: int | None = None,
        limits: HttpLimits | None = None,
    ) -> None:
        self.limits = limits or HttpLimits.from_env()
        roots = list(roots)
        wanted = set(names) if names is not None else None
        overrides = env if isinstance(env, EnvOverrides) else EnvOverrides.parse(env)
        scope = uuid.uuid4().hex
        self.functions: dict[str, LocalFunction] = {}
        self.failures: dict[str, str] = {}
        yamls = _function_yamls(roots)
        if not yamls:
            where = ", ".join(str(Path(r).resolve()) for r in roots)
            raise ConfigError(f"no function.yaml under {where} (run from the repository root or pass --root)")
        for yaml_path in yamls:
            try:
                name = load_function_config(yaml_path).name
            except ConfigError as exc:
                self.failures[str(yaml_path)] = str(exc)
                logger.error("%s", exc)
                continue
            if wanted is not None and name not in wanted:
                continue
            if name in self.functions:
                raise ConfigError(
                    f"{yaml_path}: function name {name!r} already used by {self.functions[name].yaml_path}"
                )
            # workers of this function share in-process caches; other functions do not
            fn_overrides = EnvOverrides(
                {**overrides.common, ENV_LOCAL_CACHE_SCOPE: f"{scope}:{name}"},
                overrides.by_function,
            )
            try:
                self.functions[name] = load_function(yaml_path, overrides=fn_overrides, workers=workers)
            except ConfigError as exc:
                self.failures[name] = str(exc)
                logger.error("function %s cannot load, not served: %s", name, exc)
        if wanted is not None and wanted - set(self.functions) - set(self.failures):
            raise ConfigError(f"functions not found: {', '.join(sorted(wanted - set(self.functions)))}")
        unknown = overrides.unknown_functions([*self.functions, *self.failures])
        if unknown:
            raise ConfigError(f"--env names functions that are not served: {', '.join(unknown)}")
        self.host = host
        self._port = port
        self._eager = eager
        self._direct_ports = direct_ports
        self._servers: list[_Server] = []
        self._threads: list[threading.Thread] = []
        self._inflight = 0
        self._draining = False
        self._idle = threading.Condition()
        self._stop_requested = threading.Event()

    def ready_functions(self) -> dict[str, LocalFunction]:
        """The functions CVAT may see: loaded, and not failed since."""
        return {name: fn for name, fn in self.functions.items() if fn.ready and name not in self.failures}

    @property
    def draining(self) -> bool:
        return self._draining

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

    def load(self) -> None:
        """Run every worker's ``init_context`` (eager mode); failures move to :attr:`failures`."""
        for name, fn in self.functions.items():
            if not fn.warm_up():
                self.failures[name] = fn.load_error or "init_context failed"

    def start(self) -> FunctionGateway:
        if self._eager:
            self.load()
        dashboard = bind_server(
            lambda address: _Server(address, _DashboardHandler, limits=self.limits),
            self.host,
            self._port,
            what="functions dashboard",
        )
        dashboard.gateway = self
        self._serve(dashboard)
        for fn in self.ready_functions().values():
            if self._direct_ports:
                direct = bind_server(
                    lambda address: _Server(address, _DirectHandler, limits=self.limits),
                    self.host,
                    0,
                    what=f"function {fn.name}",
                )
                direct.gateway = self
                direct.function = fn
                fn.http_port = int(direct.server_address[1])
                self._serve(direct)
            else:
                fn.http_port = self.port
        return self

    @contextmanager
    def invocation(self) -> Iterator[bool]:
        """Count one call in flight; yields False (refuse it) while draining."""
        with self._idle:
            if self._draining:
                admitted = False
            else:
                admitted = True
                self._inflight += 1
        try:
            yield admitted
        finally:
            if admitted:
                with self._idle:
                    self._inflight -= 1
                    self._idle.notify_all()

    def drain(self, timeout_s: float | None = None) -> bool:
        """Refuse new calls (503) and wait for the ones in flight; False when ``timeout_s`` ran out first."""
        with self._idle:
            self._draining = True
            inflight = self._inflight
        logger.warning("draining: new calls get 503, waiting for %d calls in flight", inflight)
        with self._idle:
            return self._idle.wait_for(lambda: self._inflight == 0, timeout=timeout_s)

    def request_stop(self) -> None:
        """Ask :meth:`serve_forever` to drain and stop (what SIGTERM does); safe from a signal handler."""
        self._stop_requested.set()

    def serve_forever(self, *, drain_timeout_s: float | None = 300.0) -> bool:
        """Serve until SIGTERM/SIGINT or :meth:`request_stop`, then drain and stop.

        Returns whether every call in flight finished within ``drain_timeout_s``.
        """
        if not self._servers:
            self.start()
        previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, lambda *_: self.request_stop())
        try:
            while not self._stop_requested.wait(0.5):  # a timed wait lets signal handlers run
                pass
            drained = self.drain(drain_timeout_s)
            if not drained:
                logger.error("stopping with %d calls still in flight after %s s", self._inflight, drain_timeout_s)
            return drained
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
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

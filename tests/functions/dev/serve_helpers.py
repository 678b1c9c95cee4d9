"""Function folders written by the serve tests, and gates the served code waits on.

The served ``main.py`` files import :data:`GATES` from here: the test and the function run in one
process (``functions serve`` runs functions in-process), so an Event set by the test releases a
call blocked inside a worker, and the order of completion is observed without any timing.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

#: name -> Event; a served function waits on GATES[name] / sets GATES[name + ":started"]
GATES: defaultdict[str, threading.Event] = defaultdict(threading.Event)

CVAT_HEADERS = {"x-nuclio-project-name": "cvat", "x-nuclio-function-namespace": "nuclio"}


def write_function(
    root: Path,
    name: str,
    main_py: str,
    *,
    env: dict[str, str] | None = None,
    workers: int = 1,
    availability_ms: int = 10_000,
) -> Path:
    """A function folder ``root/<name>/nuclio`` with a detector function.yaml and ``main_py``."""
    folder = root / name / "nuclio"
    folder.mkdir(parents=True)
    config = {
        "metadata": {
            "name": name,
            "namespace": "cvat",
            "annotations": {"name": name, "type": "detector", "spec": '[{"id": 0, "name": "thing"}]'},
        },
        "spec": {
            "description": f"test function {name}",
            "runtime": "python:3.11",
            "handler": "main:handler",
            "eventTimeout": "30s",
            "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
            "triggers": {
                "http": {
                    "kind": "http",
                    "numWorkers": workers,
                    "workerAvailabilityTimeoutMilliseconds": availability_ms,
                    "attributes": {"maxRequestBodySize": 1_000_000},
                }
            },
        },
    }
    (folder / "function.yaml").write_text(yaml.safe_dump(config))
    (folder / "main.py").write_text(main_py)
    return folder / "function.yaml"


#: answers {"env": {...}} with what init_context saw, or waits on a gate named in the body
ECHO_MAIN = """\
import os

from cvat_ext.functions.handler import make_handler
from tests.functions.dev.serve_helpers import GATES

NAMES = ("SERVE_TEST_A", "SERVE_TEST_B", "CVAT_EXT_FUNCTION_YAML")


def build_model(context):
    seen = {k: os.environ.get(k) for k in NAMES}

    def model(body):
        gate = body.get("gate") if isinstance(body, dict) else None
        if gate:
            GATES[gate + ":started"].set()
            GATES[gate].wait(60)
        return {"env": seen, "worker": context.worker_id}

    return model


init_context, handler = make_handler(build_model, parse=lambda body: body)
"""


def invoke(url: str, name: str, body: Any, *, timeout: float = 60) -> tuple[int, Any]:
    """POST ``body`` as CVAT's dashboard invoke method does; ``(status, JSON answer)``."""
    headers = CVAT_HEADERS | {
        "x-nuclio-function-name": name,
        "x-nuclio-path": "/",
        "Content-Type": "application/json",
    }
    data = json.dumps(body).encode()
    return http(url + "/api/function_invocations", data, headers, timeout=timeout)


def http(url: str, data: bytes | None = None, headers: dict[str, str] | None = None, *, timeout: float = 60) -> Any:
    """``(status, JSON body)`` of a GET (no data) or POST."""
    request = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())

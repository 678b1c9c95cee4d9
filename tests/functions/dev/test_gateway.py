"""The local dashboard gateway, called over real HTTP exactly as CVAT 2.73 calls Nuclio (recording L01-L03)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from cvat_sdk.masks import encode_mask

from cvat_ext.functions.dev.gateway import FunctionGateway
from tests.functions.images import b64, gradient

REPO = Path(__file__).resolve().parents[3]
#: the Nuclio-side requests of recordings L01-L03 (tests/data/cvat-2.73/recorded), kept with the tests
RECORDED = json.loads((Path(__file__).parents[1] / "recorded_nuclio.json").read_text())["files"]

#: the dashboard headers CVAT sent in the recording (L01), used when the recording is unavailable
CVAT_HEADERS = {
    "User-Agent": "CVAT/2.73.0 python-requests/2.33.1",
    "Accept": "*/*",
    "x-nuclio-project-name": "cvat",
    "x-nuclio-function-namespace": "nuclio",
    "x-nuclio-invoke-via": "domain-name",
    "X-Nuclio-Invoke-Timeout": "120s",
}


def recorded_requests(name: str) -> list[dict[str, Any]]:
    return list(RECORDED[name])


def cvat_headers(recorded: dict[str, Any]) -> dict[str, str]:
    """The headers CVAT sent, minus the transport ones requests sets itself."""
    skip = {"host", "content-length", "accept-encoding", "connection"}
    return {k: v for k, v in recorded["headers"].items() if k.lower() not in skip}


INTERACTOR_YAML = """\
metadata:
  name: test-interactor
  namespace: cvat
  annotations:
    name: Test interactor
    type: interactor
    version: 2
    spec: ""
    min_pos_points: 1
    min_neg_points: 0
    startswith_box_optional: true
spec:
  description: returns the box of the clicks as a mask
  runtime: "python:3.11"
  handler: main:handler
  eventTimeout: 30s
  triggers:
    http:
      kind: http
      numWorkers: 1
      attributes:
        maxRequestBodySize: 200000
"""

INTERACTOR_HANDLER = """\
import numpy as np

from cvat_ext.functions.response import interactor_mask_shape, interactor_response


def build_model(context):
    def model(request):
        if request.threshold == 0.99:
            raise RuntimeError("boom")
        h, w = request.image.rgb().shape[:2]
        x0, y0, x1, y1 = request.box_xyxy.astype(int)
        mask = np.zeros((h, w), dtype=bool)
        mask[y0 : y1 + 1, x0 : x1 + 1] = True
        return interactor_response([interactor_mask_shape(mask, confidence=0.87)])
    return model
"""

INTERACTOR_MAIN = """\
from model_handler import build_model

from cvat_ext.functions.handler import InteractorRequest, make_handler

init_context, handler = make_handler(build_model, request_type=InteractorRequest)
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FunctionGateway]:
    root = tmp_path_factory.mktemp("functions")
    fn_dir = root / "test" / "org" / "interactor" / "nuclio"
    fn_dir.mkdir(parents=True)
    (fn_dir / "function.yaml").write_text(INTERACTOR_YAML)
    (fn_dir / "model_handler.py").write_text(textwrap.dedent(INTERACTOR_HANDLER))
    (fn_dir / "main.py").write_text(INTERACTOR_MAIN)
    with FunctionGateway([REPO / "serverless" / "opencv", root]) as gw:
        yield gw


def test_list_functions_as_cvat_reads_it(gateway: FunctionGateway) -> None:
    recorded = recorded_requests("L01_lambda_functions_list.json")[0]
    assert (recorded["method"], recorded["path"]) == ("GET", "/api/functions")
    answer = requests.get(gateway.url + recorded["path"], headers=cvat_headers(recorded), timeout=10)
    assert answer.status_code == 200
    listing = answer.json()
    assert set(listing) == {"opencv-people-face", "test-interactor"}
    example = next(iter(recorded["response"]["body"].values()))
    for name, fn in listing.items():
        # same structure as the real dashboard answer
        assert set(fn) == set(example)
        assert set(fn["metadata"]) == set(example["metadata"])
        assert fn["metadata"]["name"] == name
        assert fn["metadata"]["labels"] == {"nuclio.io/project-name": "cvat"}
        assert all(isinstance(v, str) for v in fn["metadata"]["annotations"].values())
        assert fn["status"]["state"] == "ready" and isinstance(fn["status"]["httpPort"], int)
        # what CVAT's LambdaFunction.__init__ does with it must not raise
        ann = fn["metadata"]["annotations"]
        assert ann["type"] in ("detector", "interactor")
        int(ann.get("version", "1"))
        labels = json.loads(ann.get("spec") or "[]")
        assert all("name" in label for label in labels)
        assert fn["spec"]["description"]
    interactor = listing["test-interactor"]["metadata"]["annotations"]
    assert interactor["version"] == "2" and interactor["startswith_box_optional"] == "true"
    opencv_spec = json.loads(listing["opencv-people-face"]["metadata"]["annotations"]["spec"])
    assert [label["name"] for label in opencv_spec] == ["person", "face"]


def test_other_project_sees_nothing(gateway: FunctionGateway) -> None:
    answer = requests.get(gateway.url + "/api/functions", headers={"x-nuclio-project-name": "other"}, timeout=10)
    assert answer.json() == {}


def test_get_one_function(gateway: FunctionGateway) -> None:
    recorded = recorded_requests("L01_lambda_functions_list.json")[1]
    assert recorded["path"] == "/api/functions/qa-interactor"
    answer = requests.get(gateway.url + "/api/functions/test-interactor", headers=cvat_headers(recorded), timeout=10)
    assert answer.status_code == 200
    assert answer.json()["metadata"]["annotations"]["min_pos_points"] == "1"
    missing = requests.get(gateway.url + "/api/functions/nope", headers=cvat_headers(recorded), timeout=10)
    assert missing.status_code == 404 and "error" in missing.json()


def _invocation(name: str) -> dict[str, Any]:
    return next(r for r in recorded_requests(name) if r["path"] == "/api/function_invocations")


def test_detector_invocation_as_cvat_sends_it(gateway: FunctionGateway) -> None:
    from skimage import data

    recorded = _invocation("L02_lambda_detector_call.json")
    headers = cvat_headers(recorded) | {"x-nuclio-function-name": "opencv-people-face"}
    assert headers["x-nuclio-path"] == "/" and headers["Content-Type"] == "application/json"
    body = dict(recorded["body"], image=b64(data.astronaut()))
    answer = requests.post(gateway.url + recorded["path"], headers=headers, data=json.dumps(body), timeout=60)
    assert answer.status_code == 200, answer.text
    items = answer.json()
    assert {i["label"] for i in items} == {"person", "face"}
    assert all(i["type"] == "rectangle" and len(i["points"]) == 4 for i in items)
    assert all(float(i["confidence"]) >= recorded["body"]["threshold"] for i in items)


def test_interactor_invocation_as_cvat_sends_it(gateway: FunctionGateway) -> None:
    recorded = _invocation("L03_lambda_interactor_call.json")
    headers = cvat_headers(recorded) | {"x-nuclio-function-name": "test-interactor"}
    body = dict(recorded["body"], image=b64(gradient(300, 400)))
    answer = requests.post(gateway.url + recorded["path"], headers=headers, json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    (shape,) = answer.json()["shapes"]
    (x1, y1), (x2, y2) = recorded["body"]["obj_bbox"]
    expected = np.zeros((300, 400), dtype=bool)
    expected[y1 : y2 + 1, x1 : x2 + 1] = True
    assert shape["type"] == "mask" and shape["points"] == [int(v) for v in encode_mask(expected)]
    assert shape["attributes"] == [{"spec_id": 0, "value": "0.8700"}]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"{broken", 400, "body"),
        (json.dumps({"image": "!!"}).encode(), 400, "image"),
        (json.dumps({"image": b64(gradient()), "pos_points": [["a", 1]]}).encode(), 400, "pos_points.0.0"),
        (json.dumps({"image": "A" * 300_000}).encode(), 413, "body"),  # over maxRequestBodySize (200000)
        (b"[" * 100_000, 400, "body"),  # nested deeper than the HTTP base allows
        (json.dumps({"image": b64(gradient()), "obj_bbox": [[0, 0], [5, 5]], "threshold": 0.99}).encode(), 500, None),
    ],
)
def test_bad_invocations_get_json_errors(gateway: FunctionGateway, body: bytes, status: int, field: str | None) -> None:
    headers = CVAT_HEADERS | {
        "x-nuclio-function-name": "test-interactor",
        "x-nuclio-path": "/",
        "Content-Type": "application/json",
    }
    answer = requests.post(gateway.url + "/api/function_invocations", headers=headers, data=body, timeout=30)
    assert answer.status_code == status
    assert answer.json()["field"] == field
    # and the function still answers afterwards
    ok = requests.post(
        gateway.url + "/api/function_invocations",
        headers=headers,
        json={"image": b64(gradient()), "obj_bbox": [[1, 1], [3, 3]]},
        timeout=30,
    )
    assert ok.status_code == 200


def test_unknown_function_invocation(gateway: FunctionGateway) -> None:
    headers = CVAT_HEADERS | {"x-nuclio-function-name": "nope", "x-nuclio-path": "/"}
    answer = requests.post(gateway.url + "/api/function_invocations", headers=headers, json={}, timeout=10)
    assert answer.status_code == 404
    answer = requests.post(gateway.url + "/api/function_invocations", headers=CVAT_HEADERS, json={}, timeout=10)
    assert answer.status_code == 400


def test_direct_invoke_port(gateway: FunctionGateway) -> None:
    """CVAT's ``direct`` method posts the payload to status.httpPort."""
    listing = requests.get(gateway.url + "/api/functions", headers=CVAT_HEADERS, timeout=10).json()
    port = listing["test-interactor"]["status"]["httpPort"]
    answer = requests.post(
        f"http://127.0.0.1:{port}", json={"image": b64(gradient()), "obj_bbox": [[0, 0], [1, 1]]}, timeout=30
    )
    assert answer.status_code == 200 and answer.json()["shapes"][0]["points"][-4:] == [0, 0, 1, 1]

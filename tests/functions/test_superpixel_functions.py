"""The superpixel interactors through nuclio_sdk.test.Platform (real nuclio Events), the local
dashboard gateway (real HTTP as CVAT 2.73 calls it, recording L03) and a real Redis."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import requests
import yaml
from cvat_sdk.masks import decode_mask

pytest.importorskip("nuclio_sdk")
pytest.importorskip("skimage")


from cvat_ext.functions.dev.gateway import FunctionGateway
from cvat_ext.functions.dev.lint import lint_paths
from cvat_ext.models.superpixels import SCALES, segment_frame
from tests.functions.dev.test_gateway import CVAT_HEADERS, cvat_headers, recorded_requests
from tests.functions.images import b64, gradient
from tests.functions.loading import SERVERLESS, NuclioWorker
from tests.functions.test_deploy_sh import deploy, deployed_files
from tests.functions.test_sam_cache import redis_server  # noqa: F401

FINE = "skimage/cvat_ext/superpixels-fine"
COARSE = "skimage/cvat_ext/superpixels-coarse"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CVAT_FUNCTIONS_REDIS_HOST", "CVAT_EXT_SUPERPIXEL_MAX_PIXELS", "CVAT_EXT_SUPERPIXEL_CACHE_MB"):
        monkeypatch.delenv(name, raising=False)


class Worker(NuclioWorker):
    """One function module + one mock platform (= one Nuclio worker)."""

    @property
    def stats(self) -> Any:
        return self.context.user_data.model.cache.stats


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.coffee())


def click(image: np.ndarray, pos: list[list[float]], neg: list[list[float]] | None = None, box: Any = None) -> dict:
    """CVAT's interactor body (the community UI always sends obj_bbox, [] without a box)."""
    return {"image": b64(image), "pos_points": pos, "neg_points": neg or [], "obj_bbox": box or []}


def test_function_yamls_lint_clean_and_declare_the_interactor_contract() -> None:
    folders = [SERVERLESS / FINE, SERVERLESS / COARSE]
    assert lint_paths([f / "nuclio" / "function.yaml" for f in folders]) == []
    names = set()
    for folder in folders:
        raw = yaml.safe_load((folder / "nuclio" / "function.yaml").read_text())
        ann = raw["metadata"]["annotations"]
        names.add(raw["metadata"]["name"])
        assert ann["type"] == "interactor" and int(ann["version"]) >= 2 and ann["spec"] == ""
        assert (ann["min_pos_points"], ann["min_neg_points"]) == ("1", "0")
        assert ann["startswith_box_optional"] == "true" and "startswith_box" not in ann
        assert all(str(v).lower() != "false" for v in ann.values())
        assert "nvidia.com/gpu" not in json.dumps(raw)  # CPU only
        assert not (folder / "nuclio" / "function-gpu.yaml").exists()
    assert len(names) == 2


@pytest.mark.parametrize(("relpath", "scale"), [(FINE, "fine"), (COARSE, "coarse")])
def test_click_answers_mask_and_polygon_of_the_fill(photo: np.ndarray, relpath: str, scale: str) -> None:
    worker = Worker(relpath)
    status, body = worker.call(click(photo, [[300, 150]]))
    assert status == 200, body
    mask_shape, polygon_shape = body["shapes"]
    assert mask_shape["type"] == "mask" and mask_shape["attributes"] == []
    got = decode_mask(mask_shape["points"], image_width=photo.shape[1], image_height=photo.shape[0])
    # the same fill computed directly from the model
    params = SCALES[scale]
    spx = segment_frame(photo, params)
    crop = spx.fill(np.array([[300.0, 150.0]]), np.zeros((0, 2)), edge_lab=params.edge_lab, seed_lab=params.seed_lab)
    assert crop is not None
    expected = np.zeros(photo.shape[:2], dtype=bool)
    h, w = crop.bitmap.shape
    expected[crop.top : crop.top + h, crop.left : crop.left + w] = crop.bitmap
    np.testing.assert_array_equal(got, expected)
    assert got[150, 300]
    left, t, r, b = mask_shape["points"][-4:]
    inside = got[t : b + 1, left : r + 1]
    assert inside.any(axis=0).all() and inside.any(axis=1).all()  # the box is tight
    assert polygon_shape["type"] == "polygon" and len(polygon_shape["points"]) >= 6
    xy = np.asarray(polygon_shape["points"]).reshape(-1, 2)
    assert (xy[:, 0] >= left).all() and (xy[:, 0] <= r).all() and (xy[:, 1] >= t).all() and (xy[:, 1] <= b).all()


def test_further_clicks_reuse_the_frame_and_add_or_remove_regions(photo: np.ndarray) -> None:
    worker = Worker(FINE)
    _, one = worker.call(click(photo, [[300, 150]]))
    assert worker.stats.computed == 1
    _, two = worker.call(click(photo, [[300, 150], [360, 290]]))
    assert (worker.stats.computed, worker.stats.local_hits) == (1, 1)
    size = {}
    for name, body in (("one", one), ("two", two)):
        size[name] = decode_mask(body["shapes"][0]["points"], image_width=600, image_height=400).sum()
    assert size["two"] > size["one"]
    # a negative click on the only positive click's region removes it all
    status, none = worker.call(click(photo, [[300, 150]], [[300, 150]]))
    assert status == 200 and none == {"shapes": []}
    # another frame is computed again
    worker.call(click(photo[::-1].copy(), [[10, 10]]))
    assert worker.stats.computed == 2


def test_box_limits_the_fill_and_a_box_alone_fills_what_is_inside(photo: np.ndarray) -> None:
    worker = Worker(COARSE)
    box = [[250, 120], [330, 170]]
    _, limited = worker.call(click(photo, [[300, 150]], box=box))
    left, t, r, b = limited["shapes"][0]["points"][-4:]
    assert left >= 250 and t >= 120 and r <= 330 and b <= 170
    status, alone = worker.call({"image": b64(photo), "pos_points": [], "neg_points": [], "obj_bbox": box})
    assert status == 200 and alone["shapes"][0]["type"] == "mask"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"image": "bm90IGFuIGltYWdl", "pos_points": [[1, 1]]}, 400, "image"),  # "not an image"
        ({"image": b64(gradient()), "pos_points": [[64, 10], [70, 10]]}, 400, "pos_points.1"),
        ({"image": b64(gradient()), "pos_points": [[5, 5]], "neg_points": [[5, -3]]}, 400, "neg_points.0"),
        ({"image": b64(gradient()), "pos_points": [], "obj_bbox": []}, 400, "pos_points"),
        ({"image": b64(gradient()), "pos_points": [[5, 5]], "text_prompts": ["cup"]}, 400, "text_prompts"),
        ({"image": b64(gradient()), "obj_bbox": [[100, 100], [120, 120]]}, 400, "obj_bbox"),
        ({"prefetch": [b64(gradient())], "image": b64(gradient())}, 400, "image"),
    ],
)
def test_bad_input_gets_one_clear_error(body: dict[str, Any], status: int, field: str) -> None:
    worker = Worker(FINE)
    got_status, answer = worker.call(body)
    assert (got_status, answer["field"]) == (status, field), answer
    assert answer["error"].startswith(field.split(".")[0]) or field in answer["error"]
    # the worker keeps serving
    assert worker.call(click(gradient(), [[5, 5]]))[0] == 200


def test_frame_above_the_limit_is_a_413(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CVAT_EXT_SUPERPIXEL_MAX_PIXELS", str(64 * 48 - 1))
    worker = Worker(COARSE)
    status, answer = worker.call(click(gradient(48, 64), [[5, 5]]))
    assert status == 413 and answer["field"] == "image" and "CVAT_EXT_SUPERPIXEL_MAX_PIXELS" in answer["error"]
    assert worker.call(click(gradient(47, 64), [[5, 5]]))[0] == 200


def test_prefetch_warms_the_cache(photo: np.ndarray) -> None:
    worker = Worker(COARSE)
    status, body = worker.call({"prefetch": [b64(photo), b64(gradient()), b64(photo)]})
    assert status == 200
    assert [item["source"] for item in body["prefetch"]] == ["computed", "computed", "local"]
    worker.call(click(photo, [[300, 150]]))
    assert worker.stats.computed == 2


def test_workers_share_frames_through_redis(
    monkeypatch: pytest.MonkeyPatch,
    redis_server: tuple[str, int],  # noqa: F811
    photo: np.ndarray,
) -> None:
    host, port = redis_server
    monkeypatch.setenv("CVAT_FUNCTIONS_REDIS_HOST", host)
    monkeypatch.setenv("CVAT_FUNCTIONS_REDIS_PORT", str(port))
    first, second = Worker(FINE), Worker(FINE)
    _, a = first.call(click(photo, [[300, 150]]))
    _, b = second.call(click(photo, [[300, 150]]))
    assert a == b
    assert (first.stats.computed, second.stats.computed, second.stats.shared_hits) == (1, 0, 1)
    # the coarse scale keys its maps apart: no false hit
    coarse = Worker(COARSE)
    coarse.call(click(photo, [[300, 150]]))
    assert coarse.stats.computed == 1
    # a corrupt shared value is recomputed and overwritten, the click still answers
    import redis

    client = redis.Redis(host=host, port=port)
    keys = client.keys("*superpixels*")
    assert len(keys) == 2
    for key in keys:
        client.set(key, b"garbage")
    third = Worker(FINE)
    status, c = third.call(click(photo, [[300, 150]]))
    assert status == 200 and c == a and third.stats.computed == 1
    assert all(client.get(k) != b"garbage" for k in keys if b"superpixels-slic-4000" in k)


@pytest.fixture(scope="module")
def gateway() -> Iterator[FunctionGateway]:
    with FunctionGateway([SERVERLESS / "skimage"]) as gw:
        yield gw


def test_served_to_cvat_by_the_local_gateway(gateway: FunctionGateway, photo: np.ndarray) -> None:
    listing = requests.get(gateway.url + "/api/functions", headers=CVAT_HEADERS, timeout=10).json()
    assert {"skimage-cvat-ext-superpixels-fine", "skimage-cvat-ext-superpixels-coarse"} <= set(listing)
    for name in ("skimage-cvat-ext-superpixels-fine", "skimage-cvat-ext-superpixels-coarse"):
        config = listing[name]
        assert config["metadata"]["annotations"]["type"] == "interactor"
        assert int(config["metadata"]["annotations"]["version"]) >= 2
    recorded = next(
        r for r in recorded_requests("L03_lambda_interactor_call.json") if r["path"] == "/api/function_invocations"
    )
    headers = cvat_headers(recorded) | {"x-nuclio-function-name": "skimage-cvat-ext-superpixels-coarse"}
    body = dict(recorded["body"], image=b64(photo))
    answer = requests.post(gateway.url + recorded["path"], headers=headers, json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    shapes = answer.json()["shapes"]
    assert shapes[0]["type"] == "mask"
    left, t, r, b = shapes[0]["points"][-4:]
    (x1, y1), (x2, y2) = recorded["body"]["obj_bbox"]
    assert x1 <= left <= r <= x2 and y1 <= t <= b <= y2


def test_deploy_sh_deploys_both_scales() -> None:
    result = deploy("--dry-run", "skimage-cvat-ext-superpixels-fine", "skimage-cvat-ext-superpixels-coarse")
    assert result.returncode == 0, result.stderr
    assert deployed_files(result.stdout) == ["function.yaml", "function.yaml"]
    assert "superpixels-fine/nuclio/function.yaml" in result.stdout
    assert "superpixels-coarse/nuclio/function.yaml" in result.stdout

"""SAM functions through nuclio_sdk.test.Platform with real nuclio Events and a tiny real SAM.

The tiny model (cvat_ext.models.sam ``tiny``) is a real segment-anything ``Sam`` with a 2-block,
32-wide ViT encoder at 1024 input and 16 px patches, so the embedding has the real
(1, 256, 64, 64) shape and the real prompt encoder / mask decoder run.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("segment_anything")
pytest.importorskip("nuclio_sdk")

import torch
from cvat_sdk.masks import decode_mask

from cvat_ext.errors import ConfigError
from cvat_ext.functions.dev.lint import lint_paths
from cvat_ext.functions.sam import prefetch_bodies
from cvat_ext.models.sam import EMBEDDING_SHAPE, SamMaskDecoder, build_sam
from tests.functions.images import b64, gradient
from tests.functions.loading import SERVERLESS, NuclioWorker
from tests.functions.test_sam_cache import redis_server  # noqa: F401

pytestmark = pytest.mark.models

DROP_IN = "pytorch/facebookresearch/sam"
INTERACTOR = "pytorch/cvat_ext/sam-interactor"


@pytest.fixture
def tiny_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("CVAT_EXT_WEIGHTS", "CVAT_EXT_SAM_PRECISION", "CVAT_EXT_SAM_COMPILE", "CVAT_FUNCTIONS_REDIS_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CVAT_EXT_SAM_MODEL_TYPE", "tiny")
    monkeypatch.setenv("CVAT_EXT_DEVICE", "cpu")
    monkeypatch.setenv("CVAT_EXT_SAM_CACHE_MB", "64")
    yield


class Function(NuclioWorker):
    """One function module + one mock platform (= one Nuclio worker)."""

    @property
    def model(self) -> Any:
        return self.context.user_data.model

    @property
    def encoder_calls(self) -> int:
        return int(self.model.embedder.encoder_calls)


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    img = gradient(96, 128)
    img[20:70, 30:90] = (250, 40, 40)
    return img


def _blob(body: dict[str, Any]) -> np.ndarray:
    assert set(body) == {"blob"}
    return np.frombuffer(base64.b64decode(body["blob"]), dtype="<f4").reshape(EMBEDDING_SHAPE)


def test_function_yamls_lint_clean_and_declare_the_contract() -> None:
    assert lint_paths([SERVERLESS / DROP_IN, SERVERLESS / INTERACTOR]) == []
    import yaml

    for relpath, min_pos, name in ((DROP_IN, "0", "pth-facebookresearch-sam-vit-h"), (INTERACTOR, "1", None)):
        for yaml_name in ("function.yaml", "function-gpu.yaml"):
            raw = yaml.safe_load((SERVERLESS / relpath / "nuclio" / yaml_name).read_text())
            ann = raw["metadata"]["annotations"]
            if name is not None:
                assert raw["metadata"]["name"] == name
            assert ann["type"] == "interactor" and ann["version"] == "2" and ann["spec"] == ""
            assert (ann["min_pos_points"], ann["min_neg_points"]) == (min_pos, "0")
            assert ann["startswith_box_optional"] == "true"
            # no boolean annotation may be written as false (CVAT reads bool("false") as True)
            assert "startswith_box" not in ann
            assert all(str(v).lower() != "false" for v in ann.values())


def test_drop_in_blob_is_a_float32_embedding_and_matches_the_model(tiny_env: None, frame: np.ndarray) -> None:
    fn = Function(DROP_IN)
    # CVAT's interactor body: prompts are sent but decoded in the browser
    status, body = fn.call({"image": b64(frame), "pos_points": [[5, 5]], "neg_points": [], "obj_bbox": []})
    assert status == 200
    emb = _blob(body)
    assert emb.dtype == np.float32 and emb.shape == (1, 256, 64, 64) and np.isfinite(emb).all()
    expected = fn.model.embedder.embed_numpy(frame)
    np.testing.assert_array_equal(emb, expected)


def test_drop_in_cache_hit_does_not_run_the_model(tiny_env: None, frame: np.ndarray) -> None:
    fn = Function(DROP_IN)
    status, first = fn.call({"image": b64(frame)})
    assert status == 200 and fn.encoder_calls == 1
    status, second = fn.call({"image": b64(frame), "pos_points": [[1, 2]]})
    assert status == 200 and fn.encoder_calls == 1
    assert second == first
    # another frame misses
    fn.call({"image": b64(frame[::-1].copy())})
    assert fn.encoder_calls == 2
    assert fn.model.cache.stats.local_hits == 1


def test_drop_in_prefetch_warms_the_cache(tiny_env: None, frame: np.ndarray) -> None:
    fn = Function(DROP_IN)
    other = frame[:, ::-1].copy()
    status, body = fn.call({"prefetch": [b64(frame), b64(other), b64(frame)]})
    assert status == 200
    sources = [item["source"] for item in body["prefetch"]]
    assert sources == ["computed", "computed", "local"]
    assert body["prefetch"][0]["sha256"] == body["prefetch"][2]["sha256"] != body["prefetch"][1]["sha256"]
    assert fn.encoder_calls == 2
    status, blob = fn.call({"image": b64(other)})
    assert status == 200 and fn.encoder_calls == 2
    assert _blob(blob).shape == EMBEDDING_SHAPE


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "image"),
        ({"image": 5}, "image"),
        ({"image": "not base64!"}, "image"),
        ({"image": base64.b64encode(b"plain text, not an image").decode()}, "image"),
        ({"prefetch": []}, "prefetch"),
        ({"prefetch": "abc"}, "prefetch"),
        ({"prefetch": [7]}, "prefetch.0"),
        ({"prefetch": ["????"]}, "prefetch.0"),
        ({"prefetch": ["x"] * 17}, "prefetch"),
        ({"prefetch": [b64(gradient())], "pos_points": []}, "pos_points"),
    ],
)
def test_drop_in_bad_requests_are_400_json(tiny_env: None, body: dict[str, Any], field: str) -> None:
    fn = Function(DROP_IN)
    status, answer = fn.call(body)
    assert status == 400
    assert answer["field"] == field and answer["error"].startswith(field)
    assert fn.model.embedder.encoder_calls == 0


@pytest.mark.redis
def test_drop_in_shares_embeddings_between_workers_through_redis(
    tiny_env: None, frame: np.ndarray, redis_server: tuple[str, int], monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    host, port = redis_server
    monkeypatch.setenv("CVAT_FUNCTIONS_REDIS_HOST", host)
    monkeypatch.setenv("CVAT_FUNCTIONS_REDIS_PORT", str(port))
    first, second = Function(DROP_IN), Function(DROP_IN)
    status, body_a = first.call({"prefetch": [b64(frame)]})
    assert status == 200 and first.encoder_calls == 1
    status, body_b = second.call({"image": b64(frame)})
    assert status == 200 and second.encoder_calls == 0  # served from Redis: this worker never ran the model
    assert second.model.cache.stats.shared_hits == 1
    np.testing.assert_array_equal(_blob(body_b), first.model.embedder.embed_numpy(frame))
    assert body_a["prefetch"][0]["source"] == "computed"


def _interactor_body(frame: np.ndarray, **prompts: Any) -> dict[str, Any]:
    return {"image": b64(frame), "pos_points": [], "neg_points": [], "obj_bbox": []} | prompts


@pytest.mark.parametrize(
    ("prompts", "multimask"),
    [
        ({"pos_points": [[60, 45]]}, True),
        ({"pos_points": [[60, 45], [40, 30]], "neg_points": [[5, 90]]}, False),
        ({"obj_bbox": [[85, 65], [35, 25]]}, False),
        ({"obj_bbox": [[30, 20], [90, 70]], "pos_points": [[60, 45]], "neg_points": [[32, 22]]}, False),
    ],
)
def test_interactor_mask_matches_sam_predictor(
    tiny_env: None, frame: np.ndarray, prompts: dict[str, Any], multimask: bool
) -> None:
    fn = Function(INTERACTOR)
    status, body = fn.call(_interactor_body(frame, **prompts))
    assert status == 200
    # reference: a stock SamPredictor on a fresh copy of the same weights, fed our embedding
    from segment_anything import SamPredictor

    embedding = fn.model.embedder.embed(frame)
    predictor = SamPredictor(build_sam("tiny"))
    predictor.features = embedding
    predictor.original_size = frame.shape[:2]
    predictor.input_size = predictor.transform.get_preprocess_shape(*frame.shape[:2], 1024)
    predictor.is_image_set = True
    pos = np.asarray(prompts.get("pos_points", []), dtype=np.float32).reshape(-1, 2)
    neg = np.asarray(prompts.get("neg_points", []), dtype=np.float32).reshape(-1, 2)
    coords = np.concatenate([pos, neg])
    labels = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    box = np.asarray(prompts["obj_bbox"], dtype=np.float32) if prompts.get("obj_bbox") else None
    masks, scores, _ = predictor.predict(
        point_coords=coords if len(coords) else None,
        point_labels=labels if len(coords) else None,
        box=None if box is None else np.concatenate([box.min(axis=0), box.max(axis=0)]),
        multimask_output=multimask,
    )
    best = int(np.argmax(scores))
    expected = masks[best]
    if not expected.any():
        assert body == {"shapes": []}
        return
    (shape,) = body["shapes"]
    assert shape["type"] == "mask"
    decoded = decode_mask(shape["points"], image_width=frame.shape[1], image_height=frame.shape[0])
    np.testing.assert_array_equal(decoded, expected)
    # the RLE box is tight around the mask
    ys, xs = np.nonzero(expected)
    assert shape["points"][-4:] == [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())]
    (attr,) = shape["attributes"]
    assert attr["spec_id"] == 0 and float(attr["value"]) == pytest.approx(float(scores[best]), abs=1e-4)


def test_interactor_caches_the_embedding_across_clicks(tiny_env: None, frame: np.ndarray) -> None:
    fn = Function(INTERACTOR)
    for clicks in ([[60, 45]], [[60, 45], [40, 30]], [[60, 45], [40, 30], [80, 50]]):
        status, _ = fn.call(_interactor_body(frame, pos_points=clicks))
        assert status == 200
    assert fn.encoder_calls == 1
    status, body = fn.call({"prefetch": [b64(frame)]})
    assert status == 200 and body["prefetch"][0]["source"] == "local" and fn.encoder_calls == 1


@pytest.mark.parametrize(
    ("prompts", "field"),
    [
        ({}, "pos_points"),
        ({"pos_points": [[200, 10]]}, "pos_points.0"),
        ({"pos_points": [[10, 10], [10, -1]]}, "pos_points.1"),
        ({"pos_points": [[10, 10]], "neg_points": [[129, 10]]}, "neg_points.0"),
        ({"obj_bbox": [[10, 10], [500, 50]]}, "obj_bbox.1"),
        ({"obj_bbox": [[10, 10]]}, "obj_bbox"),
        ({"obj_bbox": [[10, 10], [20, 20], [30, 30]]}, "obj_bbox"),
        ({"pos_points": [[10]]}, "pos_points.0"),
        ({"pos_points": [[10, 10, 10]]}, "pos_points.0"),
        ({"pos_points": [["10", 10]]}, "pos_points.0.0"),
        ({"pos_points": "10,10"}, "pos_points"),
        ({"pos_points": [[10, 10]], "text_prompts": ["cat"]}, "text_prompts"),
        ({"pos_points": [[10, 10]], "threshold": "0.5"}, "threshold"),
    ],
)
def test_interactor_bad_prompts_are_400_json(
    tiny_env: None, frame: np.ndarray, prompts: dict[str, Any], field: str
) -> None:
    fn = Function(INTERACTOR)
    status, answer = fn.call(_interactor_body(frame, **prompts))
    assert status == 400, answer
    assert answer["field"] == field
    assert fn.encoder_calls == 0


def test_interactor_missing_image_is_400(tiny_env: None) -> None:
    fn = Function(INTERACTOR)
    status, answer = fn.call({"pos_points": [[1, 1]], "neg_points": [], "obj_bbox": []})
    assert (status, answer["field"]) == (400, "image")


def test_mask_decoder_threshold_moves_the_mask_boundary(frame: np.ndarray) -> None:
    sam = build_sam("tiny")
    decoder = SamMaskDecoder(sam)
    from cvat_ext.models.sam import SamEmbedder

    embedding = SamEmbedder(sam).embed(frame)
    args = (embedding, frame.shape[:2], np.array([[60.0, 45.0]]), np.zeros((0, 2)), None)
    low, _ = decoder(*args, mask_prob_thr=0.2)
    mid, _ = decoder(*args, mask_prob_thr=0.5)
    high, _ = decoder(*args, mask_prob_thr=0.8)
    assert low.sum() >= mid.sum() >= high.sum()
    assert (mid & ~low).sum() == 0 and (high & ~mid).sum() == 0
    assert low.sum() > high.sum()
    assert isinstance(embedding, torch.Tensor) and tuple(embedding.shape) == EMBEDDING_SHAPE


@pytest.mark.parametrize(("n", "batch", "sizes"), [(0, 4, []), (3, 4, [3]), (8, 4, [4, 4]), (9, 4, [4, 4, 1])])
def test_prefetch_bodies_batches_frames(n: int, batch: int, sizes: list[int]) -> None:
    files = [bytes([i]) * 3 for i in range(n)]
    bodies = list(prefetch_bodies(files, batch=batch))
    assert [len(b["prefetch"]) for b in bodies] == sizes
    assert [base64.b64decode(x) for b in bodies for x in b["prefetch"]] == files


def test_prefetch_bodies_rejects_bad_batch() -> None:
    with pytest.raises(ConfigError):
        list(prefetch_bodies([b"x"], batch=17))


def _http(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_gateway_serves_both_functions_as_cvat_calls_them(tiny_env: None, frame: np.ndarray) -> None:
    """List and invoke through the local dashboard stand-in over HTTP, with CVAT's headers."""
    from cvat_ext.functions.dev.gateway import FunctionGateway

    common = {"x-nuclio-project-name": "cvat", "x-nuclio-function-namespace": "nuclio"}
    roots = [SERVERLESS / "pytorch" / "facebookresearch", SERVERLESS / "pytorch" / "cvat_ext"]
    # the yamls name the official checkpoints under /opt/weights: serve the tiny model instead
    tiny = ["CVAT_EXT_SAM_MODEL_TYPE=tiny", "CVAT_EXT_WEIGHTS=", "CVAT_EXT_DEVICE=cpu", "CVAT_EXT_SAM_CACHE_MB=64"]
    with FunctionGateway(roots, direct_ports=False, env=tiny, workers=1) as gw:
        status, listing = _http(gw.url + "/api/functions", headers=common)
        assert status == 200
        assert set(listing) == {"pth-facebookresearch-sam-vit-h", "pth-cvat-ext-sam-vit-b-interactor"}
        ann = listing["pth-facebookresearch-sam-vit-h"]["metadata"]["annotations"]
        # what CVAT's LambdaFunction does with them
        assert int(ann["version"]) == 2 and int(ann["min_pos_points"]) == 0 and int(ann["min_neg_points"]) == 0
        assert bool(ann["startswith_box_optional"]) and not bool(ann.get("startswith_box"))
        assert json.loads(ann["spec"] or "[]") == []

        body = {"image": b64(frame), "pos_points": [[60, 45]], "neg_points": [], "obj_bbox": []}
        for name in ("pth-facebookresearch-sam-vit-h", "pth-cvat-ext-sam-vit-b-interactor"):
            headers = common | {"x-nuclio-function-name": name, "x-nuclio-path": "/"}
            headers["Content-Type"] = "application/json"
            status, answer = _http(gw.url + "/api/function_invocations", json.dumps(body).encode(), headers)
            assert status == 200
            if name.endswith("sam-vit-h"):
                assert _blob(answer).shape == EMBEDDING_SHAPE
            else:
                assert set(answer) == {"shapes"} and all(s["type"] == "mask" for s in answer["shapes"])
        bad = json.dumps({"image": b64(frame), "pos_points": [[999, 1]]}).encode()
        headers = common | {"x-nuclio-function-name": "pth-cvat-ext-sam-vit-b-interactor"}
        headers["Content-Type"] = "application/json"
        status, answer = _http(gw.url + "/api/function_invocations", bad, headers)
        assert (status, answer["field"]) == (400, "pos_points.0")

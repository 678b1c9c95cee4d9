"""SAM model code with tiny random-weight real segment-anything modules (CPU)."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch")
pytest.importorskip("segment_anything")

from segment_anything.utils.transforms import ResizeLongestSide  # noqa: E402

from cvat_ext.errors import ConfigError  # noqa: E402
from cvat_ext.models.sam import (  # noqa: E402
    CHECKPOINTS,
    EMBEDDING_SHAPE,
    SamEmbedder,
    build_sam,
    embedder_from_env,
    preprocess_shape,
    stock_embedding,
    use_sdpa_attention,
)
from tests.functions.images import gradient  # noqa: E402
from tests.functions.loading import SERVERLESS  # noqa: E402

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def tiny() -> object:
    return build_sam("tiny")


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    rng = np.random.default_rng(1)
    img = gradient(90, 150)
    img[10:60, 20:100] = rng.integers(0, 255, size=(50, 80, 3), dtype=np.uint8)
    return img


@pytest.mark.parametrize(("h", "w"), [(1080, 1920), (1920, 1080), (480, 640), (1024, 1024), (7, 3000), (1, 1)])
def test_preprocess_shape_matches_resize_longest_side(h: int, w: int) -> None:
    assert preprocess_shape(h, w) == ResizeLongestSide.get_preprocess_shape(h, w, 1024)


def test_sdpa_attention_equals_stock_attention(tiny: object, frame: np.ndarray) -> None:
    stock = copy.deepcopy(tiny.image_encoder)  # type: ignore[attr-defined]
    patched = copy.deepcopy(tiny.image_encoder)  # type: ignore[attr-defined]
    assert use_sdpa_attention(patched) == 2  # one windowed, one global block
    torch.manual_seed(0)
    for block in (stock.blocks, patched.blocks):  # non-zero relative-position tables: the bias matters
        for b in block:
            with torch.no_grad():
                b.attn.rel_pos_h.copy_(torch.linspace(-1, 1, b.attn.rel_pos_h.numel()).view_as(b.attn.rel_pos_h))
                b.attn.rel_pos_w.copy_(torch.linspace(1, -1, b.attn.rel_pos_w.numel()).view_as(b.attn.rel_pos_w))
    x = torch.randn(1, 3, 1024, 1024)
    with torch.inference_mode():
        np.testing.assert_allclose(patched(x).numpy(), stock(x).numpy(), rtol=1e-4, atol=1e-4)


def test_gpu_style_preprocessing_is_within_one_level_of_the_pil_path(tiny: object) -> None:
    rgb = gradient(1080, 1920)
    ours = SamEmbedder(copy.deepcopy(tiny)).preprocess(rgb)
    resized = ResizeLongestSide(1024).apply_image(rgb)
    stock_in = torch.as_tensor(resized).permute(2, 0, 1).contiguous()[None].float()
    stock = tiny.preprocess(stock_in)  # type: ignore[attr-defined]
    assert tuple(ours.shape) == tuple(stock.shape) == (1, 3, 1024, 1024)
    levels = ((ours - stock) * tiny.pixel_std).abs()  # type: ignore[attr-defined]
    assert float(levels.max()) <= 1.0 + 1e-3
    assert float((levels > 0.5).float().mean()) < 0.05
    assert float(ours[..., 576:, :].abs().max()) == 0.0  # padding rows below the 1024x576 image


def test_embedding_shape_dtype_and_closeness_to_stock(tiny: object, frame: np.ndarray) -> None:
    embedder = SamEmbedder(copy.deepcopy(tiny))
    emb = embedder.embed_numpy(frame)
    assert emb.shape == EMBEDDING_SHAPE and emb.dtype == np.float32 and emb.flags.c_contiguous
    ref = stock_embedding(copy.deepcopy(tiny), frame)
    cos = float((emb.ravel() @ ref.ravel()) / (np.linalg.norm(emb) * np.linalg.norm(ref)))
    assert cos > 0.999
    assert embedder.encoder_calls == 1


def test_bf16_encoder_returns_float32_close_to_fp32(tiny: object, frame: np.ndarray) -> None:
    fp32 = SamEmbedder(copy.deepcopy(tiny)).embed_numpy(frame)
    bf16 = SamEmbedder(copy.deepcopy(tiny), precision="bf16").embed_numpy(frame)
    assert bf16.dtype == np.float32
    cos = float((bf16.ravel() @ fp32.ravel()) / (np.linalg.norm(bf16) * np.linalg.norm(fp32)))
    assert cos > 0.999


def test_raw_bytes_roundtrip(tiny: object, frame: np.ndarray) -> None:
    embedder = SamEmbedder(copy.deepcopy(tiny))
    emb = embedder.embed(frame)
    back = embedder.from_bytes(emb.numpy().astype("<f4").tobytes())
    assert torch.equal(back, emb)


def test_rejects_non_rgb_input(tiny: object) -> None:
    with pytest.raises(ValueError, match="expected an \\(H, W, 3\\) uint8 image"):
        SamEmbedder(copy.deepcopy(tiny)).embed(np.zeros((10, 10), dtype=np.uint8))


def test_checkpoint_load_and_mismatch(tmp_path: Path, tiny: object) -> None:
    path = tmp_path / "tiny.pth"
    torch.save(tiny.state_dict(), path)  # type: ignore[attr-defined]
    loaded = build_sam("tiny", path, seed=123)
    for (name, a), (_, b) in zip(loaded.state_dict().items(), tiny.state_dict().items(), strict=True):  # type: ignore[attr-defined]
        assert torch.equal(a, b), name
    wrong = tmp_path / "wrong.pth"
    torch.save({"image_encoder.pos_embed": torch.zeros(1)}, wrong)
    with pytest.raises(ConfigError, match=r"sam tiny: checkpoint .* does not fit"):
        build_sam("tiny", wrong)
    with pytest.raises(ConfigError, match="cannot load checkpoint"):
        build_sam("tiny", tmp_path / "missing.pth")
    with pytest.raises(ConfigError, match="unknown model type"):
        build_sam("vit_x")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"CVAT_EXT_SAM_MODEL_TYPE": "tiny"}, ("tiny-random", "fp32", False, None)),
        ({"CVAT_EXT_SAM_MODEL_TYPE": "tiny", "CVAT_EXT_SAM_COMPILE": "0"}, ("tiny-random", "fp32", False, None)),
        ({"CVAT_EXT_SAM_MODEL_TYPE": "tiny", "CVAT_EXT_SAM_PRECISION": "bf16"}, ("tiny-random", "bf16", False, None)),
        ({"CVAT_EXT_SAM_MODEL_TYPE": "vit_b"}, ConfigError),  # no checkpoint
        ({"CVAT_EXT_SAM_MODEL_TYPE": "tiny", "CVAT_EXT_SAM_PRECISION": "fp8"}, ConfigError),
    ],
)
def test_embedder_from_env(env: dict[str, str], expected: object) -> None:
    env = {"CVAT_EXT_DEVICE": "cpu"} | env
    if isinstance(expected, type):
        with pytest.raises(expected):
            embedder_from_env(env)
        return
    embedder, sam = embedder_from_env(env)
    assert (embedder.model_key, embedder.precision, embedder.compile, embedder.compile_mode) == expected
    assert embedder.sam is sam


def test_compile_mode_from_env() -> None:
    from cvat_ext.models.sam import _compile_mode

    assert _compile_mode({}) == (False, None)
    assert _compile_mode({"CVAT_EXT_SAM_COMPILE": "1"}) == (True, None)
    assert _compile_mode({"CVAT_EXT_SAM_COMPILE": "reduce-overhead"}) == (True, "reduce-overhead")


@pytest.mark.parametrize(
    ("relpath", "model_type"),
    [("pytorch/facebookresearch/sam", "vit_h"), ("pytorch/cvat_ext/sam-interactor", "vit_b")],
)
def test_function_yaml_downloads_the_pinned_checkpoint(relpath: str, model_type: str) -> None:
    ckpt = CHECKPOINTS[model_type]
    assert ckpt.filename.endswith(f"_{ckpt.md5_prefix}.pth") and ckpt.url.endswith("/" + ckpt.filename)
    assert re.fullmatch(r"[0-9a-f]{64}", ckpt.sha256)
    for name in ("function.yaml", "function-gpu.yaml"):
        raw = yaml.safe_load((SERVERLESS / relpath / "nuclio" / name).read_text())
        env = {e["name"]: e["value"] for e in raw["spec"]["env"]}
        assert env["CVAT_EXT_SAM_MODEL_TYPE"] == model_type
        assert env["CVAT_EXT_WEIGHTS"] == f"/opt/weights/{ckpt.filename}"
        steps = " ".join(d["value"] for d in raw["spec"]["build"]["directives"]["preCopy"])
        assert ckpt.url in steps
        assert f'echo "{ckpt.sha256}  /opt/weights/{ckpt.filename}" | sha256sum -c -' in steps
        assert f'cut -c1-6)" = "{ckpt.md5_prefix}"' in steps

"""The one input-normalisation step: headers, decoding of every mode to uint8 RGB, geometry limits, budget."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from PIL import Image

from cvat_ext.errors import ConfigError, FunctionInputError
from cvat_ext.models import frame_input
from cvat_ext.models.frame_input import (
    DecodeBudget,
    FrameLimits,
    check_frame,
    decode_rgb,
    read_header,
    rgb_from_pil,
    shrink_rgb,
)
from tests.functions.hostile_images import HOSTILE_IMAGES, UNREADABLE, png_1bit_bomb
from tests.functions.images import encode, gradient


def save(img: Image.Image, fmt: str = "PNG", **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    return decode_rgb(data, read_header(data, max_pixels=64_000_000))


@pytest.mark.parametrize("case", sorted(set(HOSTILE_IMAGES) - UNREADABLE))
def test_every_readable_hostile_image_decodes_to_uint8_rgb(case: str) -> None:
    data = HOSTILE_IMAGES[case]()
    header = read_header(data, max_pixels=64_000_000)
    rgb = decode_rgb(data, header)
    assert rgb.dtype == np.uint8 and rgb.shape == (header.height, header.width, 3)


@pytest.mark.parametrize("case", sorted(UNREADABLE))
def test_unreadable_bytes_name_the_field(case: str) -> None:
    data = HOSTILE_IMAGES[case]()
    with pytest.raises(FunctionInputError) as info:
        decode_rgb(data, read_header(data, max_pixels=64_000_000, field="prefetch.2"), field="prefetch.2")
    assert info.value.field == "prefetch.2" and str(info.value).startswith("prefetch.2: ")
    assert info.value.status == 400


def test_16_bit_samples_scale_by_1_over_257() -> None:
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    rgb = decode(save(Image.fromarray(values)))
    assert rgb[0, :, 0].tolist() == [0, 1, 128, 255] and (rgb[..., 0] == rgb[..., 2]).all()


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0.0, 0.5, 1.0], [0, 128, 255]),  # within [0, 1]: x 255
        ([-1.0, 0.0, 3.0], [0, 64, 255]),  # outside: min..max
        ([np.nan, 2.0, np.inf], [0, 0, 0]),  # one finite value: no range, non-finite -> 0
    ],
)
def test_float_samples(values: list[float], expected: list[int]) -> None:
    rgb = decode(save(Image.fromarray(np.array([values], dtype=np.float32), mode="F"), "TIFF"))
    assert rgb[0, :, 1].tolist() == expected


def test_first_frame_of_an_animation() -> None:
    frames = [Image.new("RGB", (8, 6), colour) for colour in ((250, 0, 0), (0, 250, 0))]
    rgb = decode(save(frames[0], "GIF", save_all=True, append_images=frames[1:]))
    assert tuple(rgb[0, 0]) == (250, 0, 0)


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGBA", "CMYK", "I;16", "I", "F"])
def test_pillow_path_matches_pillow_convert_for_8_bit_modes(mode: str) -> None:
    img = Image.fromarray(gradient(700, 1600)).convert(mode)  # > 1 strip
    rgb = rgb_from_pil(img)
    assert rgb.shape == (700, 1600, 3)
    if mode in ("1", "L", "LA", "P", "RGBA", "CMYK"):
        assert np.array_equal(rgb, np.asarray(img.convert("RGB")))


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [("1", "PNG"), ("L", "PNG"), ("RGB", "PNG"), ("P", "PNG"), ("RGBA", "PNG"), ("L", "JPEG"), ("RGB", "JPEG")],
)
def test_opencv_and_pillow_paths_agree(mode: str, fmt: str) -> None:
    data = save(Image.fromarray(gradient(40, 56)).convert(mode), fmt)
    header = read_header(data, max_pixels=10**6)
    fast, slow = frame_input._decode_cv2(data, header), frame_input._decode_pil(data, "image")
    assert fast is not None and np.abs(fast.astype(int) - slow.astype(int)).max() <= 1


def test_header_is_checked_before_decoding() -> None:
    with pytest.raises(FunctionInputError, match=r"8000x8000 = 64000000 pixels, limit 63999999"):
        read_header(png_1bit_bomb(), max_pixels=63_999_999)


SAM_LIKE = FrameLimits("SAM", max_aspect=1024, outside="reject")
HOG_LIKE = FrameLimits("D", min_width=64, min_height=128, outside="reject")


@pytest.mark.parametrize(
    ("limits", "size_wh", "runs", "error"),
    [
        (FrameLimits("m"), (1, 1), True, None),
        (FrameLimits("m", min_width=24, min_height=24), (23, 100), False, None),
        (FrameLimits("m", max_aspect=100), (1, 100), True, None),
        (FrameLimits("m", max_aspect=100), (1, 101), False, None),
        (
            FrameLimits("SAM", max_aspect=1024, outside="reject"),
            (4000, 1),
            None,
            r"image: 4000x1 .* SAM takes at most 1024:1",
        ),
        (
            FrameLimits("D", min_width=64, min_height=128, outside="reject"),
            (64, 127),
            None,
            r"smaller than the 64x128 minimum of D",
        ),
    ],
)
def test_check_frame(limits: FrameLimits, size_wh: tuple[int, int], runs: bool | None, error: str | None) -> None:
    if error is not None:
        with pytest.raises(FunctionInputError, match=error):
            check_frame(*size_wh, limits)
    else:
        assert check_frame(*size_wh, limits) is runs


@pytest.mark.parametrize(("kwargs", "error"), [({"min_width": 0}, "min_width"), ({"max_aspect": 0.5}, "max_aspect")])
def test_bad_limits_are_config_errors(kwargs: dict[str, float], error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        FrameLimits("m", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("h", "w", "scale"), [(4000, 1, 0.25), (1000, 3000, 0.1), (99, 77, 0.5)])
def test_shrink_keeps_every_side_and_returns_the_mapping(h: int, w: int, scale: float) -> None:
    rgb = np.random.default_rng(h).integers(0, 256, (h, w, 3), dtype=np.uint8)
    small, (sx, sy) = shrink_rgb(rgb, scale)
    assert small.shape[0] >= 1 and small.shape[1] >= 1 and small.dtype == np.uint8
    assert (small.shape[1] * sx, small.shape[0] * sy) == pytest.approx((w, h))


def test_decode_budget_bounds_pixels_in_flight() -> None:
    budget = DecodeBudget(100, wait_s=30)
    first_in, release_first, second_in = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with budget.hold(80):
            first_in.set()
            release_first.wait(10)

    def second() -> None:
        with budget.hold(50):
            second_in.set()

    t1 = threading.Thread(target=first)
    t1.start()
    assert first_in.wait(10)
    t2 = threading.Thread(target=second)
    t2.start()
    assert not second_in.wait(0.2)  # 80 + 50 > 100: waits
    assert budget.in_use == 80
    release_first.set()
    assert second_in.wait(10)
    t1.join(10)
    t2.join(10)
    assert budget.in_use == 0


def test_decode_budget_times_out_with_503_and_a_lone_frame_always_fits() -> None:
    now = [0.0]
    budget = DecodeBudget(100, wait_s=5, clock=lambda: now[0])
    with budget.hold(10**9):  # larger than the budget: clamped, decodes alone
        assert budget.in_use == 100
        now[0] = 10.0  # the deadline has passed before waiting starts
        with pytest.raises(FunctionInputError) as info, budget.hold(1):
            pass
    assert info.value.status == 503 and budget.in_use == 0


def test_rgb_decode_peak_memory_is_the_frame_itself() -> None:
    # a 1-bit PNG: decoded once as grey, expanded once into RGB, never through Pillow's 4-byte RGB
    # or an extra full copy (tracemalloc sees numpy's and Python's allocations, not OpenCV's own)
    import tracemalloc

    data = png_1bit_bomb(4000, 4000)  # 16 MP keeps the test fast; the ratio is what matters
    header = read_header(data, max_pixels=64_000_000)
    tracemalloc.start()
    rgb = decode_rgb(data, header)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert rgb.shape == (4000, 4000, 3)
    assert peak < 1.5 * rgb.nbytes


def test_encode_helper_round_trip() -> None:
    rgb = gradient(10, 12)
    assert np.array_equal(decode(encode(rgb)), rgb)

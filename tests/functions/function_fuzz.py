"""A seeded fuzzer for ``cvat-ext functions serve``: malformed and valid requests over loopback HTTP.

:func:`generate` builds ``n_bad`` malformed requests (odd images, hostile JSON, broken framing and
headers, bombs) and ``n_valid`` valid detector calls, shuffled, all from one seed; each is the raw
bytes of one HTTP request. :class:`ServeProcess` runs the real CLI (``python -m cvat_ext functions
serve``) in a child process with short HTTP timeouts; :func:`run_fuzz` sends every request on its
own connection and counts what the issue's targets name: process deaths (the server is restarted
and the death counted), answers >= 500 to bad input, requests left unanswered, valid requests that
did not get 200 and a list, and the server's peak RSS.

Used by tests/functions/test_function_fuzz.py (a bounded run) and bench/functions_fuzz.py (1,200).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tests.functions.hostile_images import HOSTILE_IMAGES, png_1bit_bomb
from tests.functions.images import png_bomb_b64

REPO = Path(__file__).resolve().parents[2]
FUNCTION = "opencv-people-face"
PATH = "/api/function_invocations"
#: HTTP bounds of the fuzzed server: short, so a request that must time out costs about a second
SERVER_ENV = {"CVAT_EXT_HTTP_HEADER_TIMEOUT_S": "1", "CVAT_EXT_HTTP_BODY_TIMEOUT_S": "1"}
#: how long the client waits for an answer (model time included) before calling it unanswered
ANSWER_WAIT_S = 30.0

Rng = np.random.Generator


@dataclass(frozen=True)
class FuzzCase:
    """One request: ``raw`` HTTP bytes, ``kind`` (the generator that made it), ``valid`` or not."""

    kind: str
    raw: bytes
    valid: bool = False


# --- building requests ----------------------------------------------------------------------------
def http_request(
    body: bytes,
    *,
    function: str = FUNCTION,
    length: str | None = None,
    extra: list[str] | None = None,
    method: str = "POST",
    path: str = PATH,
    version: str = "HTTP/1.1",
    content_type: str = "application/json",
) -> bytes:
    lines = [f"{method} {path} {version}", "Host: 127.0.0.1", f"Content-Type: {content_type}"]
    lines += ["x-nuclio-project-name: cvat", f"x-nuclio-function-name: {function}", "x-nuclio-path: /"]
    lines += extra or []
    if length != "omit":
        lines.append(f"Content-Length: {len(body) if length is None else length}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def detector_body(image: bytes, **fields: Any) -> bytes:
    return json.dumps({"image": base64.b64encode(image).decode("ascii"), **fields}).encode()


def _natural_image(rng: Rng) -> bytes:
    """A valid frame: gradient, noise and a few filled boxes; 64..800 px a side, PNG or JPEG."""
    h, w = (int(v) for v in rng.integers(64, 801, 2))
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x * 255 // w, y * 255 // h, (x + y) % 256], axis=-1).astype(np.uint8)
    rgb = np.clip(rgb.astype(np.int16) + rng.integers(-20, 21, rgb.shape), 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(0, 4))):
        x0, y0 = int(rng.integers(0, w - 8)), int(rng.integers(0, h - 8))
        rgb[y0 : y0 + int(rng.integers(4, h // 2 + 5)), x0 : x0 + int(rng.integers(4, w // 2 + 5))] = rng.integers(
            0, 256, 3
        )
    return _save(Image.fromarray(rgb), "JPEG" if rng.random() < 0.5 else "PNG")


def _save(img: Image.Image, fmt: str, **kwargs: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


#: format -> modes Pillow writes in it
_WRITABLE = {
    "PNG": ["1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I"],
    "JPEG": ["L", "RGB", "CMYK"],
    "TIFF": ["1", "L", "RGB", "RGBA", "CMYK", "I;16", "F"],
    "GIF": ["L", "P"],
    "BMP": ["1", "L", "P", "RGB"],
    "WEBP": ["RGB", "RGBA"],
    "ICO": ["RGB", "RGBA"],
}


def _odd_image(rng: Rng) -> bytes:
    """A decodable image of odd size, mode and format."""
    shape = rng.integers(0, 3)
    if shape == 0:
        w, h = (int(v) for v in rng.integers(1, 9, 2))
    elif shape == 1:
        w, h = (int(v) for v in rng.integers(1, 300, 2))
    else:
        w, h = int(rng.integers(1, 4)), int(rng.integers(500, 5000))
        if rng.random() < 0.5:
            w, h = h, w
    fmt = str(rng.choice(list(_WRITABLE)))
    if fmt == "ICO":
        w, h = min(w, 256), min(h, 256)
    mode = str(rng.choice(_WRITABLE[fmt]))
    values = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    img = Image.fromarray(values).convert("L" if mode in ("I;16", "I", "F") else mode)
    if mode in ("I;16", "I", "F"):
        img = img.convert(mode) if mode != "I;16" else Image.fromarray(values[..., 0].astype(np.uint16) * 257)
    kwargs: dict[str, Any] = {}
    if fmt == "GIF" and rng.random() < 0.5:  # animated
        kwargs = {"save_all": True, "append_images": [img.copy() for _ in range(2)]}
    try:
        return _save(img, fmt, **kwargs)
    except (OSError, ValueError, KeyError):
        return _save(img.convert("RGB"), "PNG")


def _corrupt(data: bytes, rng: Rng) -> bytes:
    if rng.random() < 0.5:
        return data[: int(rng.integers(0, max(len(data), 1)))]
    flipped = bytearray(data)
    for pos in rng.integers(0, len(flipped), size=int(rng.integers(1, 20))):
        flipped[int(pos)] ^= int(rng.integers(1, 256))
    return bytes(flipped)


def _deep(rng: Rng) -> bytes:
    depth = int(rng.choice([65, 1000, 100_000, 200_000]))
    if rng.random() < 0.5:
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


# --- the malformed request kinds ------------------------------------------------------------------
def _bad_image(rng: Rng) -> FuzzCase:
    pick = rng.integers(0, 6)
    if pick == 0:
        name = str(rng.choice([n for n in HOSTILE_IMAGES if n != "png_1bit_8000x8000"]))
        return FuzzCase(f"image:{name}", http_request(detector_body(HOSTILE_IMAGES[name]())))
    if pick == 1:
        return FuzzCase("image:odd", http_request(detector_body(_odd_image(rng))))
    if pick == 2:
        return FuzzCase("image:corrupt", http_request(detector_body(_corrupt(_natural_image(rng), rng))))
    if pick == 3:
        junk = rng.integers(0, 256, int(rng.integers(0, 5000)), dtype=np.uint8).tobytes()
        return FuzzCase("image:random-bytes", http_request(detector_body(junk)))
    if pick == 4:
        size = int(rng.choice([20_000, 30_000, 65_535]))
        body = json.dumps({"image": png_bomb_b64(size, size)}).encode()
        return FuzzCase("bomb:png-header", http_request(body))
    text = rng.choice(["!!", "QUJD", "====", "A" * 5, "\u00e9t\u00e9", " YWJj "])
    return FuzzCase("image:bad-base64", http_request(json.dumps({"image": str(text)}).encode()))


def _bad_json(rng: Rng) -> FuzzCase:
    image = base64.b64encode(_natural_image(rng)).decode()
    bodies: list[Callable[[], bytes]] = [
        lambda: _deep(rng),
        lambda: json.dumps({"image": image, "threshold": {"a": [[[[1]]]]}}).encode(),
        lambda: json.dumps({"image": rng.choice([1, 2.5, True])}).encode(),
        lambda: json.dumps({"image": [image]}).encode(),
        lambda: json.dumps({"image": None}).encode(),
        lambda: json.dumps({"image": image, "threshold": str(rng.choice(["0.5", "x", "nan"]))}).encode(),
        lambda: json.dumps({"image": image, "threshold": float(rng.choice([-1.0, 7.0, 1e308]))}).encode(),
        lambda: b'{"image": "' + image.encode() + b'", "threshold": NaN}',
        lambda: json.dumps({"threshold": 0.5}).encode(),
        lambda: json.dumps([image]).encode(),
        lambda: b'"' + image.encode() + b'"',
        lambda: b'{"image": "' + image.encode()[: int(rng.integers(0, len(image)))],
        lambda: b'{"image": "\xff\xfe\xfd"}',
        lambda: b"",
        lambda: b"null",
        lambda: json.dumps({"image": image, "x" * 1000: ["y" * 1000] * 100}).encode(),
        lambda: b'{"image": "' + b"\\u00e9" * 50_000 + b'"}',
    ]
    pick = int(rng.integers(0, len(bodies)))
    content_type = "text/plain" if rng.random() < 0.2 else "application/json"
    return FuzzCase(f"json:{pick}", http_request(bodies[pick](), content_type=content_type))


def _bad_framing(rng: Rng) -> FuzzCase:
    body = detector_body(_natural_image(rng)) if rng.random() < 0.3 else b'{"image": "QUJD"}'
    cases: list[Callable[[], bytes]] = [
        lambda: http_request(body, length="abc"),
        lambda: http_request(body, length="-1"),
        lambda: http_request(body, length="+5"),
        lambda: http_request(body, length="1" * 20),
        lambda: http_request(b"", length="9" * 15),
        lambda: http_request(body, length=str(40 * 2**20)),
        lambda: http_request(body, extra=[f"Content-Length: {len(body) + 1}"]),
        lambda: http_request(body, length="omit"),
        lambda: http_request(body, length=str(max(len(body) - 3, 0))),
        lambda: http_request(body, length=str(len(body) + 50)),  # body ends early: 408
        lambda: http_request(body, extra=["Transfer-Encoding: chunked"]),
        lambda: http_request(body, method="FOO"),
        lambda: http_request(body, version="HTTP/2.0"),
        lambda: http_request(body, path="/api/nothing"),
        lambda: http_request(body, function="no-such-function"),
        lambda: http_request(body, function=""),
        lambda: http_request(body, extra=["X-Long: " + "a" * 70_000]),
        lambda: http_request(body, extra=[f"X-{i}: y" for i in range(120)]),
        lambda: b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n",
        lambda: b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64),  # a TLS hello
        lambda: b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Le",  # headers cut: 408
        lambda: b"\r\n\r\n",
    ]
    pick = int(rng.integers(0, len(cases)))
    return FuzzCase(f"framing:{pick}", cases[pick]())


def _bomb(rng: Rng) -> FuzzCase:
    if rng.random() < 0.3:
        return FuzzCase("bomb:1bit-8000x8000", http_request(detector_body(png_1bit_bomb())))
    size = int(rng.choice([9000, 16_000, 46_000]))
    return FuzzCase("bomb:1bit-over-limit", http_request(detector_body(png_1bit_bomb(size, 8))))


_BAD_KINDS: list[tuple[float, Callable[[Rng], FuzzCase]]] = [
    (0.40, _bad_image),
    (0.30, _bad_json),
    (0.27, _bad_framing),
    (0.03, _bomb),
]


def generate(seed: int, n_bad: int, n_valid: int) -> list[FuzzCase]:
    """``n_bad`` malformed and ``n_valid`` valid requests, shuffled, all from ``seed``."""
    rng = np.random.default_rng(seed)
    weights = np.array([w for w, _ in _BAD_KINDS])
    cases = [_BAD_KINDS[int(rng.choice(len(_BAD_KINDS), p=weights / weights.sum()))][1](rng) for _ in range(n_bad)]
    for _ in range(n_valid):
        fields = {"threshold": float(rng.uniform(0.05, 1.0))} if rng.random() < 0.5 else {}
        cases.append(FuzzCase("valid", http_request(detector_body(_natural_image(rng), **fields)), valid=True))
    order = rng.permutation(len(cases))
    return [cases[int(i)] for i in order]


# --- running --------------------------------------------------------------------------------------
class ServeProcess:
    """``python -m cvat_ext functions serve`` on a free port, restarted after a death."""

    def __init__(self, root: Path = REPO / "serverless" / "opencv") -> None:
        self.root = root
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.deaths = 0
        self.peak_rss_kb = 0

    def start(self) -> None:
        env = os.environ | SERVER_ENV
        cmd = [sys.executable, "-m", "cvat_ext", "functions", "serve", "--root", str(self.root), "--port", "0"]
        self.proc = subprocess.Popen(
            [*cmd, "--no-direct-ports"], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        found = re.search(r"http://[\d.]+:(\d+)", line)
        if found is None:
            raise RuntimeError(f"functions serve did not start: {line!r}")
        self.port = int(found.group(1))

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def note_rss(self) -> None:
        if self.proc is None:
            return
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return
        found = re.search(r"VmHWM:\s+(\d+) kB", status)
        if found:
            self.peak_rss_kb = max(self.peak_rss_kb, int(found.group(1)))

    def check(self) -> bool:
        """True when the server died since the last check (and is restarted)."""
        if self.alive():
            self.note_rss()
            return False
        self.deaths += 1
        self.start()
        return True

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.note_rss()
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def send(port: int, raw: bytes, *, wait_s: float = ANSWER_WAIT_S) -> tuple[int | None, bytes]:
    """(status or None when the server answered nothing, body bytes) of one request on its own connection."""
    data = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as sock:
            # the server may refuse early and close while we send: its answer is still readable
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(raw)
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                sock.settimeout(max(deadline - time.monotonic(), 0.01))
                chunk = sock.recv(1 << 16)
                if not chunk:
                    break
                data += chunk
    except (TimeoutError, ConnectionResetError, ConnectionRefusedError):
        pass
    if not data.startswith(b"HTTP/"):
        return None, data
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@dataclass
class FuzzReport:
    """What :func:`run_fuzz` counted; ``problems`` lists ``kind -> what went wrong`` for each miss."""

    sent: int = 0
    bad: int = 0
    valid: int = 0
    deaths: int = 0
    bad_5xx: int = 0
    unanswered: int = 0
    valid_ok: int = 0
    peak_rss_mb: float = 0.0
    seconds: float = 0.0
    statuses: Counter[int | None] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)


def run_fuzz(
    cases: list[FuzzCase], server: ServeProcess, *, progress: Callable[[int], None] | None = None
) -> FuzzReport:
    """Send every case to ``server`` (started) and count deaths, 5xx for bad input, silence, successes."""
    report = FuzzReport()
    t0 = time.perf_counter()
    for i, case in enumerate(cases):
        status, body = send(server.port, case.raw)
        report.sent += 1
        report.statuses[status] += 1
        if server.check():
            report.problems.append(f"{case.kind}: server died")
        if status is None:
            report.unanswered += 1
            report.problems.append(f"{case.kind}: no answer")
        if case.valid:
            report.valid += 1
            ok = status == 200 and isinstance(json.loads(body or b"null"), list)
            report.valid_ok += ok
            if not ok:
                report.problems.append(f"{case.kind}: {status} {body[:200]!r}")
        else:
            report.bad += 1
            if status is not None and status >= 500:
                report.bad_5xx += 1
                report.problems.append(f"{case.kind}: {status} {body[:200]!r}")
        if progress is not None:
            progress(i)
    server.note_rss()
    report.deaths = server.deaths
    report.peak_rss_mb = server.peak_rss_kb / 1024
    report.seconds = time.perf_counter() - t0
    return report

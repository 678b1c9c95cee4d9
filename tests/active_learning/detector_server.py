"""A detector function over loopback HTTP speaking CVAT's Nuclio detector contract (contracts §2.5, §2.6).

Its "model" is readable by the test: the red value of pixel (0, 0) divided by 255 is the confidence
of one ``car`` rectangle over the middle of the image (the green value of pixel (0, 0) > 200 adds a
``zebra``, a label no project has). Requests are counted so tests can see what was asked;
``called`` is set at the first request, and a ``gate`` event, when set on the server, holds every
answer until the test opens it.
"""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.calls += 1
        self.server.called.set()
        if self.server.gate is not None:  # a test holds every answer until it opens the gate
            assert self.server.gate.wait(60), "the test never opened the gate"
        img = Image.open(io.BytesIO(base64.b64decode(body["image"]))).convert("RGB")
        red, green, _ = img.getpixel((0, 0))
        w, h = img.size
        items = [{"label": "car", "type": "rectangle", "points": [w / 4, h / 4, 3 * w / 4, 3 * h / 4],
                  "confidence": f"{red / 255:.4f}"}]
        if green > 200:
            items.append({"label": "zebra", "type": "rectangle", "points": [0, 0, 2, 2], "confidence": "0.9"})
        data = json.dumps(items).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    calls = 0
    called: threading.Event
    gate: threading.Event | None = None


@contextmanager
def detector_function() -> Iterator[_Server]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.called = threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def url_of(server: _Server) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}"

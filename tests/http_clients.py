"""Raw-socket HTTP clients for the bounds tests: send exact bytes, read whatever comes back."""

from __future__ import annotations

import json
import socket
import time
from typing import Any


def exchange(port: int, raw: bytes, *, wait_s: float = 5.0) -> tuple[int | None, Any, float]:
    """Send ``raw`` and read until the server closes or ``wait_s`` passes.

    Returns (status or None when nothing came back, the JSON body or None, seconds until the
    connection ended or the wait ran out).
    """
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as sock:
        sock.sendall(raw)
        return read_answer(sock, t0, wait_s)


def read_answer(sock: socket.socket, t0: float, wait_s: float) -> tuple[int | None, Any, float]:
    """(status, JSON body, seconds since ``t0``) of the next answer on ``sock``."""
    data = b""
    try:
        while True:
            sock.settimeout(max(0.01, wait_s - (time.monotonic() - t0)))
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep and _complete(head, body):
                break
    except (TimeoutError, ConnectionResetError):
        pass
    elapsed = time.monotonic() - t0
    if not data:
        return None, None, elapsed
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    try:
        payload = json.loads(body) if body else None
    except ValueError:
        payload = body
    return status, payload, elapsed


def _complete(head: bytes, body: bytes) -> bool:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False


def post(path: str, body: bytes, *, headers: dict[str, str] | None = None, length: str | None = None) -> bytes:
    """The raw bytes of one POST; ``length`` overrides the Content-Length header text."""
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    lines.append(f"Content-Length: {len(body) if length is None else length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def closed_within(port: int, first: bytes, *, drip: bytes, every_s: float, wait_s: float) -> float | None:
    """Send ``first``, then ``drip`` every ``every_s`` (a slowloris client); seconds until the server
    closed the connection, or None if it was still open after ``wait_s``."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as sock:
        sock.sendall(first)
        while time.monotonic() - t0 < wait_s:
            try:
                sock.sendall(drip)
                sock.settimeout(every_s)
                if sock.recv(65536) == b"":
                    return time.monotonic() - t0
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - t0
    return None

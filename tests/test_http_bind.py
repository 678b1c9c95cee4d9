"""The shared HTTP base: every bind failure becomes one ConfigError line naming the port and host.

(The bounds of the same base are tested in tests/test_http_endpoint.py.)"""

from __future__ import annotations

import errno
import os
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NoReturn

import pytest

from cvat_ext.errors import ConfigError
from cvat_ext.http_endpoint import bind_server


def _server(address: tuple[str, int]) -> ThreadingHTTPServer:
    return ThreadingHTTPServer(address, BaseHTTPRequestHandler)


def test_a_free_port_binds() -> None:
    server = bind_server(_server, "127.0.0.1", 0, what="test server")
    try:
        assert server.server_address[1] > 0
    finally:
        server.server_close()


def test_a_busy_port_is_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError) as err:
            bind_server(_server, "127.0.0.1", port, what="sidecar HTTP server")
    assert str(err.value) == (
        f"sidecar HTTP server: port {port} on 127.0.0.1 is in use "
        "(another process listens there: stop it or pick another port)"
    )


@pytest.mark.parametrize(("code", "expected"), [
    (errno.EACCES, "x: port 80 on 0.0.0.0 needs privileges to bind (ports below 1024: pick another port)"),
    (errno.EADDRNOTAVAIL, "x: 0.0.0.0 is not an address of this machine (port 80)"),
    (errno.EMFILE, "x: port 80 on 0.0.0.0 cannot be bound: Too many open files"),
])
def test_every_bind_error_maps(code: int, expected: str) -> None:
    def fail(address: tuple[str, int]) -> NoReturn:
        raise OSError(code, os.strerror(code))

    with pytest.raises(ConfigError) as err:
        bind_server(fail, "0.0.0.0", 80, what="x")
    assert str(err.value) == expected


def test_an_address_of_another_machine() -> None:
    with pytest.raises(ConfigError, match=r"203\.0\.113\.7 is not an address of this machine \(port 0\)"):
        bind_server(_server, "203.0.113.7", 0, what="functions dashboard")

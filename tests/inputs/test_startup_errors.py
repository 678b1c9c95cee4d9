"""Services and files a user gets wrong at start-up, run as the console script runs (a subprocess):
one line on stderr, exit code 2, no traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import OrgWorld
from tests.cvat_standin import CvatStandIn

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "docker" / "sidecar.example.yaml"


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port on 127.0.0.1 another socket listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def run_cli(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CVAT_EXT_")}
    return subprocess.run(
        [sys.executable, "-m", "cvat_ext", *args], cwd=REPO, env={**base, **(env or {})},
        capture_output=True, text=True, timeout=120,
    )


def assert_one_line(done: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_functions_serve_on_a_busy_port(busy_port: int) -> None:
    done = run_cli(["functions", "serve", "--port", str(busy_port), "--only", "opencv-people-face"])
    assert_one_line(done, f"functions dashboard: port {busy_port} on 127.0.0.1 is in use")


def test_sidecar_on_a_busy_port(
    busy_port: int, cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, tmp_path: Path
) -> None:
    env = {
        "CVAT_EXT_CVAT__URL": cvat_standin.url,
        "CVAT_EXT_CVAT__ACCESS_TOKEN": cvat_org_world.bot_token,
        "CVAT_EXT_CVAT__ORG": cvat_org_world.org_slug,
        "CVAT_EXT_STATE__URL": f"sqlite:///{tmp_path}/state.db",
        "CVAT_EXT_SERVER__HOST": "127.0.0.1",
        "CVAT_EXT_SERVER__PORT": str(busy_port),
    }
    done = run_cli(["sidecar", "run", "--config", str(EXAMPLE)], env)
    # the sidecar logs its start to stderr; the error is the last line, and the only error
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    assert errors == [
        f"cvat-ext: error: sidecar HTTP server: port {busy_port} on 127.0.0.1 is in use "
        "(another process listens there: stop it or pick another port)"
    ], done.stderr


def _latin1(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("latin-1"))
    return path


FILES: list[tuple[str, Callable[[Path], list[str]], str]] = [
    ("sidecar settings", lambda tmp: ["sidecar", "check-config", "--config",
                                      str(_latin1(tmp / "s.yaml", "cvat:\n  url: http://cvat # caf\xe9\n"))],
     "s.yaml:2:25: not UTF-8 text (byte 0xe9); save the file as UTF-8"),
    ("rule pack", lambda tmp: ["rules", "check", "--rules",
                               str(_latin1(tmp / "r.yaml", "version: 1\nname: d\xe9faut\n")),
                               "--annotations", "a.json", "--labels", "labels.json", "--meta", "meta.json"],
     "r.yaml:2:8: not UTF-8 text (byte 0xe9)"),
]


@pytest.mark.parametrize(("argv", "expected"), [c[1:] for c in FILES], ids=[c[0] for c in FILES])
def test_non_utf8_file(tmp_path: Path, argv: Callable[[Path], list[str]], expected: str) -> None:
    assert_one_line(run_cli(argv(tmp_path)), expected)

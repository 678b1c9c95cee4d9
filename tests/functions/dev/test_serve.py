"""``cvat-ext functions serve`` as ops run it: per-function env, numWorkers, load failures, drain.

Real HTTP against the real gateway, real nuclio-sdk contexts, the repository's real SAM function
folders with a tiny real SAM saved to two checkpoint files. Orders of completion are observed with
gates (threading Events, FIFOs across processes), never with timings.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cvat_ext.errors import ConfigError
from cvat_ext.functions.dev.environment import EnvOverrides
from cvat_ext.functions.dev.gateway import FunctionGateway
from tests.functions.dev.serve_helpers import CVAT_HEADERS, ECHO_MAIN, GATES, http, invoke, write_function
from tests.functions.images import b64, gradient

REPO = Path(__file__).resolve().parents[3]
SERVERLESS = REPO / "serverless"
DROP_IN = "pth-facebookresearch-sam-vit-h"
INTERACTOR = "pth-cvat-ext-sam-vit-b-interactor"


# ----------------------------------------------------------------------------------------------
# env per function


def test_each_function_inits_with_its_own_yaml_env_and_overrides(tmp_path: Path) -> None:
    a_yaml = write_function(tmp_path, "fn-a", ECHO_MAIN, env={"SERVE_TEST_A": "from-a-yaml", "SERVE_TEST_B": "a"})
    write_function(tmp_path, "fn-b", ECHO_MAIN, env={"SERVE_TEST_A": "from-b-yaml"})
    os.environ.pop("SERVE_TEST_B", None)
    overrides = ["SERVE_TEST_B=everyone", "fn-b:SERVE_TEST_A=b-override"]
    with FunctionGateway([tmp_path], direct_ports=False, env=overrides) as gw:
        _, a = invoke(gw.url, "fn-a", {})
        _, b = invoke(gw.url, "fn-b", {})
    # a command-line value beats the yaml; a per-function one beats both, for that function only
    assert a["env"] == {
        "SERVE_TEST_A": "from-a-yaml",
        "SERVE_TEST_B": "everyone",
        "CVAT_EXT_FUNCTION_YAML": str(a_yaml),
    }
    assert b["env"]["SERVE_TEST_A"] == "b-override" and b["env"]["SERVE_TEST_B"] == "everyone"
    # the process environment is left as it was
    assert "SERVE_TEST_A" not in os.environ and "SERVE_TEST_B" not in os.environ


@pytest.mark.parametrize(
    ("items", "fragment"),
    [(["NOVALUE"], "NAME=VALUE"), (["1BAD=x"], "NAME=VALUE"), (["bad fn:X=1"], "NAME=VALUE")],
)
def test_bad_env_overrides_are_one_clear_error(items: list[str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        EnvOverrides.parse(items)


def test_env_override_for_an_unknown_function_is_an_error(tmp_path: Path) -> None:
    write_function(tmp_path, "fn-a", ECHO_MAIN)
    with pytest.raises(ConfigError, match="fn-typo"):
        FunctionGateway([tmp_path], env=["fn-typo:X=1"])


def test_value_from_env_is_refused_with_the_function_named(tmp_path: Path) -> None:
    path = write_function(tmp_path, "fn-k8s", ECHO_MAIN)
    path.write_text(path.read_text().replace("env: []", "env: [{name: X, valueFrom: {secretKeyRef: {name: s}}}]"))
    gw = FunctionGateway([tmp_path])
    assert "valueFrom" in gw.failures["fn-k8s"] and not gw.functions


# ----------------------------------------------------------------------------------------------
# workers


def test_num_workers_answer_while_another_call_is_blocked(tmp_path: Path) -> None:
    write_function(tmp_path, "fn-two", ECHO_MAIN, workers=2)
    done: list[str] = []
    with FunctionGateway([tmp_path], direct_ports=False) as gw:
        assert gw.functions["fn-two"].pool.size == 2 and len(gw.functions["fn-two"].pool.contexts()) == 2
        slow = threading.Thread(target=lambda: (invoke(gw.url, "fn-two", {"gate": "two-slow"}), done.append("slow")))
        slow.start()
        assert GATES["two-slow:started"].wait(30)
        status, _ = invoke(gw.url, "fn-two", {})
        done.append("fast")
        GATES["two-slow"].set()
        slow.join(30)
    assert status == 200 and done == ["fast", "slow"]


def test_one_worker_busy_past_the_availability_timeout_is_503(tmp_path: Path) -> None:
    write_function(tmp_path, "fn-one", ECHO_MAIN, workers=1, availability_ms=50)
    with FunctionGateway([tmp_path], direct_ports=False) as gw:
        slow = threading.Thread(target=invoke, args=(gw.url, "fn-one", {"gate": "one-slow"}))
        slow.start()
        assert GATES["one-slow:started"].wait(30)
        status, answer = invoke(gw.url, "fn-one", {})
        GATES["one-slow"].set()
        slow.join(30)
    assert status == 503 and "no free worker" in answer["error"] and "numWorkers" in answer["error"]


# ----------------------------------------------------------------------------------------------
# load failures, no functions


MISSING_DEPENDENCY_MAIN = "import cvat_ext_no_such_dependency  # noqa: F401\n"
MISSING_WEIGHTS_MAIN = """\
from cvat_ext.errors import ConfigError
from cvat_ext.functions.handler import make_handler


def build_model(context):
    raise ConfigError("weights /opt/weights/missing.pth: no such file")


init_context, handler = make_handler(build_model, parse=lambda body: body)
"""


def test_functions_that_cannot_load_are_reported_and_not_advertised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_function(tmp_path, "fn-ok", ECHO_MAIN)
    write_function(tmp_path, "fn-nodep", MISSING_DEPENDENCY_MAIN)
    write_function(tmp_path, "fn-noweights", MISSING_WEIGHTS_MAIN)
    with caplog.at_level(logging.ERROR), FunctionGateway([tmp_path], direct_ports=False) as gw:
        _, listing = http(gw.url + "/api/functions", headers=CVAT_HEADERS)
        one = http(gw.url + "/api/functions/fn-noweights", headers=CVAT_HEADERS)
        call = invoke(gw.url, "fn-nodep", {})
        health = http(gw.url + "/api/healthz")
    assert set(listing) == {"fn-ok"}
    assert one[0] == 404 and "missing.pth" in one[1]["error"]
    assert call[0] == 503 and "cvat_ext_no_such_dependency" in call[1]["error"]
    assert health[0] == 200 and set(health[1]["failed"]) == {"fn-nodep", "fn-noweights"}
    logged = caplog.text
    assert "fn-nodep" in logged and "cvat_ext_no_such_dependency" in logged and "missing.pth" in logged


def test_lazy_function_that_fails_on_its_first_call_is_withdrawn(tmp_path: Path) -> None:
    write_function(tmp_path, "fn-noweights", MISSING_WEIGHTS_MAIN)
    with FunctionGateway([tmp_path], direct_ports=False, eager=False) as gw:
        assert set(http(gw.url + "/api/functions", headers=CVAT_HEADERS)[1]) == {"fn-noweights"}
        first = invoke(gw.url, "fn-noweights", {})
        listing = http(gw.url + "/api/functions", headers=CVAT_HEADERS)[1]
        second = invoke(gw.url, "fn-noweights", {})
    assert first[0] == 500 and listing == {} and second[0] == 503


def test_no_function_found_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no function\.yaml under"):
        FunctionGateway([tmp_path])
    with pytest.raises(ConfigError, match="does not exist"):
        FunctionGateway([tmp_path / "nope"])


def test_cli_serve_from_another_directory_exits_2_with_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cvat_ext", "functions", "serve", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "run from the repository root or pass --root" in proc.stderr


def test_cli_serve_with_nothing_loadable_exits_2(tmp_path: Path) -> None:
    write_function(tmp_path, "fn-nodep", MISSING_DEPENDENCY_MAIN)
    proc = subprocess.run(
        [sys.executable, "-m", "cvat_ext", "functions", "serve", "--root", str(tmp_path), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert proc.returncode == 2
    assert "function fn-nodep cannot load, not served" in proc.stderr and "no function could be loaded" in proc.stderr


# ----------------------------------------------------------------------------------------------
# errors logged with the field


def test_function_errors_are_logged_with_the_field(caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("cv2")
    with caplog.at_level(logging.WARNING), FunctionGateway([SERVERLESS / "opencv"], direct_ports=False) as gw:
        status, answer = invoke(gw.url, "opencv-people-face", {"image": "not base64!", "threshold": 0.5})
    assert status == 400 and answer["field"]
    lines = [r.getMessage() for r in caplog.records if r.name == "cvat_ext.functions.dev.gateway"]
    assert any("answered 400" in line and f"(field {answer['field']})" in line for line in lines), lines


# ----------------------------------------------------------------------------------------------
# SIGTERM drain (a real process: the signal handler is the CLI's)


DRAIN_MAIN = """\
import os

from cvat_ext.functions.handler import make_handler


def build_model(context):
    started, release = os.environ["DRAIN_STARTED_FIFO"], os.environ["DRAIN_RELEASE_FIFO"]

    def model(body):
        with open(started, "w") as f:
            f.write("started\\n")
        with open(release) as f:
            f.read()
        return {"finished": True}

    return model


init_context, handler = make_handler(build_model, parse=lambda body: body)
"""


def test_sigterm_drains_calls_in_flight_and_refuses_new_ones(tmp_path: Path) -> None:
    started, release = tmp_path / "started.fifo", tmp_path / "release.fifo"
    os.mkfifo(started)
    os.mkfifo(release)
    write_function(
        tmp_path / "fns",
        "fn-drain",
        DRAIN_MAIN,
        env={"DRAIN_STARTED_FIFO": str(started), "DRAIN_RELEASE_FIFO": str(release)},
        workers=2,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "cvat_ext", "functions", "serve", "--root", str(tmp_path / "fns"), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "serving 1 functions at http://127.0.0.1:PORT: ..."
        assert "serving 1 functions" in line, line + (proc.stderr.read() if proc.stderr else "")
        url = line.split(" at ", 1)[1].split(": ", 1)[0]
        answers: list[tuple[int, Any]] = []
        inflight = threading.Thread(target=lambda: answers.append(invoke(url, "fn-drain", {})))
        inflight.start()
        with open(started) as f:  # blocks until the call is inside the function
            assert f.readline() == "started\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.stderr is not None
        for line in proc.stderr:  # blocks until the server says it drains (no polling)
            if "draining" in line:
                break
        refused = invoke(url, "fn-drain", {})
        with open(release, "w") as f:
            f.write("go\n")
        inflight.join(60)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert answers == [(200, {"finished": True})]
    assert refused[0] == 503 and "shutting down" in refused[1]["error"]


# ----------------------------------------------------------------------------------------------
# the two SAM functions, each with its own checkpoint; a cached click while another frame embeds


class GatedEmbedder:
    """Wraps a worker's real SamEmbedder: embedding a frame of ``slow_hw`` waits for ``release``."""

    def __init__(self, inner: Any, slow_hw: tuple[int, int], started: threading.Event, release: threading.Event):
        self.inner, self.slow_hw, self.started, self.release = inner, slow_hw, started, release
        self.model_key = inner.model_key

    def embed(self, rgb: np.ndarray) -> Any:
        if rgb.shape[:2] == self.slow_hw:
            self.started.set()
            assert self.release.wait(60)
        return self.inner.embed(rgb)

    def embed_numpy(self, rgb: np.ndarray) -> np.ndarray:
        return self.inner.embed_numpy(rgb)

    def from_bytes(self, raw: bytes) -> Any:
        return self.inner.from_bytes(raw)


@pytest.mark.models
def test_two_sam_checkpoints_and_a_cached_click_answered_while_another_frame_embeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("segment_anything")
    from cvat_ext.models.sam import EMBEDDING_SHAPE, SamEmbedder, build_sam

    monkeypatch.delenv("CVAT_FUNCTIONS_REDIS_HOST", raising=False)
    ckpt_h, ckpt_b = tmp_path / "sam_h_test.pth", tmp_path / "sam_b_test.pth"
    torch.save(build_sam("tiny", seed=1).state_dict(), ckpt_h)
    torch.save(build_sam("tiny", seed=2).state_dict(), ckpt_b)
    env = [
        "CVAT_EXT_SAM_MODEL_TYPE=tiny",
        "CVAT_EXT_DEVICE=cpu",
        "CVAT_EXT_SAM_CACHE_MB=64",
        f"{DROP_IN}:CVAT_EXT_WEIGHTS={ckpt_h}",
        f"{INTERACTOR}:CVAT_EXT_WEIGHTS={ckpt_b}",
    ]
    roots = [SERVERLESS / "pytorch" / "facebookresearch", SERVERLESS / "pytorch" / "cvat_ext"]
    frame_a, frame_b = gradient(96, 128), gradient(80, 100)
    with FunctionGateway(roots, direct_ports=False, env=env) as gw:
        assert {name: fn.pool.size for name, fn in gw.ready_functions().items()} == {DROP_IN: 2, INTERACTOR: 2}

        # the drop-in answers with the embedding of its own checkpoint, not the interactor's
        status, answer = invoke(gw.url, DROP_IN, {"image": b64(frame_a)})
        import base64

        blob = np.frombuffer(base64.b64decode(answer["blob"]), dtype="<f4").reshape(EMBEDDING_SHAPE)
        own = SamEmbedder(build_sam("tiny", ckpt_h)).embed_numpy(frame_a)
        other = SamEmbedder(build_sam("tiny", ckpt_b)).embed_numpy(frame_a)
        assert status == 200 and np.allclose(blob, own, atol=1e-4) and not np.allclose(blob, other, atol=1e-2)

        # frame B's embedding blocks inside whichever interactor worker takes it
        started, release = threading.Event(), threading.Event()
        models = [ctx.user_data.model for ctx in gw.functions[INTERACTOR].pool.contexts()]
        inner = [m.embedder for m in models]
        for m in models:
            m.embedder = GatedEmbedder(m.embedder, frame_b.shape[:2], started, release)
        click_a = {"image": b64(frame_a), "pos_points": [[60, 45]], "neg_points": [], "obj_bbox": []}
        click_b = {"image": b64(frame_b), "pos_points": [[50, 40]], "neg_points": [], "obj_bbox": []}
        assert invoke(gw.url, INTERACTOR, click_a)[0] == 200  # frame A embedded and cached

        done: list[str] = []
        results: dict[str, Any] = {}

        def call_b() -> None:
            results["b"] = invoke(gw.url, INTERACTOR, click_b)
            done.append("b")

        thread_b = threading.Thread(target=call_b)
        thread_b.start()
        assert started.wait(60)  # B is embedding now
        results["a"] = invoke(gw.url, INTERACTOR, click_a)
        done.append("a")
        release.set()
        thread_b.join(60)
    assert done == ["a", "b"]
    assert results["a"][0] == 200 and results["b"][0] == 200
    assert results["a"][1]["shapes"] and results["a"][1]["shapes"][0]["type"] == "mask"
    # A embedded once (its second click was a hit on the workers' shared cache), B once
    assert sum(e.encoder_calls for e in inner) == 2


def test_listing_json_is_what_cvat_parses(tmp_path: Path) -> None:
    write_function(tmp_path, "fn-a", ECHO_MAIN, workers=3)
    with FunctionGateway([tmp_path]) as gw:
        _, listing = http(gw.url + "/api/functions", headers=CVAT_HEADERS)
    config = listing["fn-a"]
    assert config["status"]["state"] == "ready" and config["status"]["httpPort"] > 0
    assert json.loads(config["metadata"]["annotations"]["spec"]) == [{"id": 0, "name": "thing"}]

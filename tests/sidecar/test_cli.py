"""The sidecar and audit CLIs as a user runs them: the README's first command against the stand-in,
clear startup errors, secrets kept out of every log line, audit export as JSONL and CSV."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cvat_ext.cli import main
from cvat_ext.sidecar.state import open_store
from tests.conftest import OrgWorld
from tests.cvat_standin import CvatStandIn
from tests.sidecar.scenario import seed_sloppy_consensus

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "docker" / "sidecar.example.yaml"


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CVAT_EXT_")}
    return subprocess.run(
        [sys.executable, "-m", "cvat_ext", *args],
        cwd=REPO,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_readme_first_screen_command(cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, tmp_path: Path) -> None:
    seed_sloppy_consensus(cvat_standin, cvat_org_world)
    env = {
        "CVAT_EXT_CVAT__URL": cvat_standin.url,
        "CVAT_EXT_CVAT__ACCESS_TOKEN": cvat_org_world.bot_token,
        "CVAT_EXT_CVAT__ORG": cvat_org_world.org_slug,
        # the example's relative sqlite path would land in the repository; the rest is the example as is
        "CVAT_EXT_STATE__URL": f"sqlite:///{tmp_path}/state.db",
    }
    done = run_cli(["-v", "sidecar", "run", "--config", str(EXAMPLE), "--once", "-v"], env)
    assert done.returncode == 0, done.stderr
    assert "cycle:" in done.stdout and "0 failed" in done.stdout
    # with the example's default thresholds (0.9) ann3's replica (F1 0.93) passes: both parents move on
    p1, p2 = cvat_org_world.parent_job_ids
    jobs = {j["id"]: j for j in cvat_standin.jobs()}
    assert jobs[p1]["stage"] == jobs[p2]["stage"] == "validation"
    # DEBUG logging on, and still no secret in any output
    assert cvat_org_world.bot_token not in done.stdout + done.stderr
    assert "connected to CVAT" in done.stderr

    # the audit log of that run, exported both ways
    out = tmp_path / "audit.csv"
    code = main(["audit", "export", "--state-url", env["CVAT_EXT_STATE__URL"], "--format", "csv", "-o", str(out)])
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert {r["action"] for r in rows} >= {"job.pass", "quality.report", "guide.update"}
    assert all(r["replica"] and r["at"].endswith("Z") for r in rows)


def test_startup_errors_are_one_clear_line(cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, tmp_path: Path) -> None:
    common = {
        "CVAT_EXT_CVAT__ORG": cvat_org_world.org_slug,
        "CVAT_EXT_STATE__URL": f"sqlite:///{tmp_path}/s.db",
        "CVAT_EXT_CVAT__RETRY_MAX_ATTEMPTS": "1",
    }
    bad_token = run_cli(
        ["sidecar", "run", "--config", str(EXAMPLE), "--once"],
        {**common, "CVAT_EXT_CVAT__URL": cvat_standin.url, "CVAT_EXT_CVAT__ACCESS_TOKEN": "nope-123"},
    )
    assert bad_token.returncode == 2
    assert "rejected the credentials (401)" in bad_token.stderr and "Traceback" not in bad_token.stderr
    assert "nope-123" not in bad_token.stderr
    unreachable = run_cli(
        ["sidecar", "run", "--config", str(EXAMPLE), "--once"],
        {**common, "CVAT_EXT_CVAT__URL": "http://127.0.0.1:1", "CVAT_EXT_CVAT__ACCESS_TOKEN": "t-1"},
    )
    assert unreachable.returncode == 2
    assert "cannot reach CVAT at http://127.0.0.1:1" in unreachable.stderr and "Traceback" not in unreachable.stderr
    missing = run_cli(["sidecar", "run", "--config", str(EXAMPLE), "--once"], common)
    assert missing.returncode == 2 and "CVAT_EXT_CVAT__URL" in missing.stderr and "Traceback" not in missing.stderr


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("consensus: {min_agreement: 1.5}", "consensus.min_agreement: Input should be less than or equal to 1"),
        ("consensu: {}", "consensu: Extra inputs are not permitted"),
        ("reviewers: {roles: [boss]}", "unknown org role(s) ['boss']"),
        ("webhooks: {enabled: true}", "webhooks.enabled needs webhooks.secret"),
        ("state: {url: 'mysql://u:pw@h/db'}", "value hidden"),
        ("[1, 2]", "expected a mapping"),
        ("a: [", "not valid YAML"),
    ],
)
def test_bad_config_is_named(tmp_path: Path, yaml_text: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    done = run_cli(
        ["sidecar", "check-config", "--config", str(path)],
        {"CVAT_EXT_CVAT__URL": "http://cvat:8080", "CVAT_EXT_CVAT__ACCESS_TOKEN": "tok-abc"},
    )
    assert done.returncode == 2
    assert expected in done.stderr and str(path) in done.stderr
    assert "Traceback" not in done.stderr and "u:pw" not in done.stderr


def test_check_config_hides_secrets() -> None:
    done = run_cli(
        ["sidecar", "check-config", "--config", str(EXAMPLE)],
        {
            "CVAT_EXT_CVAT__URL": "http://cvat:8080",
            "CVAT_EXT_CVAT__ACCESS_TOKEN": "tok-very-secret",
            "CVAT_EXT_CVAT__ORG": "acme",
            "CVAT_EXT_CONSENSUS__MIN_AGREEMENT": "0.8",
        },
    )
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["cvat"]["org"] == "acme" and shown["consensus"]["min_agreement"] == 0.8  # env beats the file
    assert shown["rules"]["packs"] == ["qa_rules/default.yaml"]
    assert "tok-very-secret" not in done.stdout


def test_audit_export_jsonl(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/a.db"
    with open_store(url) as store:
        store.append_audit(
            replica="r1",
            action="issue.open",
            reason="consensus missing (error)",
            job_id=4,
            frame=2,
            user_id=13,
            after={"issue_id": 9},
        )
        store.append_audit(
            replica="r1",
            action="job.reassign",
            reason="agreement 0.81 < 0.90",
            job_id=1,
            before={"assignee_id": None},
            after={"assignee_id": 6},
        )
    assert main(["audit", "export", "--state-url", url, "--format", "jsonl"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(x["seq"], x["action"], x["job_id"]) for x in lines] == [(1, "issue.open", 4), (2, "job.reassign", 1)]
    assert lines[1]["before"] == {"assignee_id": None} and lines[1]["after"] == {"assignee_id": 6}
    assert main(["audit", "export", "--state-url", url, "--since-seq", "1"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


def test_long_running_service_serves_wakes_on_webhook_and_stops_on_sigterm(
    cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, tmp_path: Path
) -> None:
    import queue
    import signal
    import socket
    import threading
    import urllib.request

    from cvat_ext.cvat.signature import sign

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    secret = "whsec-cli-test-42"
    env = {
        "CVAT_EXT_CVAT__URL": cvat_standin.url,
        "CVAT_EXT_CVAT__ACCESS_TOKEN": cvat_org_world.bot_token,
        "CVAT_EXT_CVAT__ORG": cvat_org_world.org_slug,
        "CVAT_EXT_STATE__URL": f"sqlite:///{tmp_path}/state.db",
        "CVAT_EXT_WEBHOOKS__ENABLED": "true",
        "CVAT_EXT_WEBHOOKS__SECRET": secret,
        "CVAT_EXT_SERVER__HOST": "127.0.0.1",
        "CVAT_EXT_SERVER__PORT": str(port),
        "CVAT_EXT_SERVICE__POLL_INTERVAL_S": "3600",  # only the webhook can start the second cycle
    }
    base = {k: v for k, v in os.environ.items() if not k.startswith("CVAT_EXT_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cvat_ext", "sidecar", "run", "--config", str(EXAMPLE), "--log-format", "json"],
        cwd=REPO,
        env={**base, **env},
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    seen: list[str] = []
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr or []], daemon=True).start()

    def wait_for(text: str) -> dict[str, str]:
        while True:
            line = lines.get(timeout=60)
            seen.append(line)
            entry = json.loads(line)
            if text in entry["msg"]:
                return dict(entry)

    try:
        assert wait_for("serving /healthz")["level"] == "INFO"
        wait_for("cycle:")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            assert json.loads(resp.read())["ok"] is True
        job_id = cvat_org_world.replica_of(cvat_org_world.parent_job_ids[0], "ann1")
        body = json.dumps({"event": "update:job", "webhook_id": 1, "job": {"id": job_id}}).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/webhooks/cvat",
            data=body,
            method="POST",
            headers={"X-Signature-256": sign(secret, body)},
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert json.loads(resp.read())["queued"] == [job_id]
        wait_for("cycle:")  # woken long before the hour-long poll interval
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = "".join(seen)
    assert cvat_org_world.bot_token not in text and secret not in text

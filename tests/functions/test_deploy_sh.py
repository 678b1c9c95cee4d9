"""deploy.sh in --dry-run mode: what it would run, and that it refuses what lint rejects."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def deploy(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, CVAT_EXT=f"{sys.executable} -m cvat_ext", PYTHON=sys.executable, PYTHONPATH=str(REPO))
    return subprocess.run(
        ["bash", str(DEPLOY), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def deployed_files(output: str) -> list[str]:
    lines = [line for line in output.splitlines() if line.startswith("+ nuctl deploy")]
    return [line.split(" --file ")[1].split(" ")[0].rsplit("/", 2)[-2:][1] for line in lines]


def test_help() -> None:
    result = deploy("--help")
    assert result.returncode == 0 and "--gpu" in result.stdout and "sidecar" in result.stdout


FOLDERS = sorted(p.parent for p in (REPO / "serverless").rglob("function.yaml"))


def test_dry_run_deploys_every_function_into_project_cvat() -> None:
    result = deploy("--dry-run")
    assert result.returncode == 0, result.stderr
    deploys = [line for line in result.stdout.splitlines() if line.startswith("+ nuctl deploy")]
    assert len(deploys) == len(FOLDERS) >= 3
    assert all("--project-name cvat" in d and "--platform local" in d for d in deploys)
    assert all("CVAT_FUNCTIONS_REDIS_HOST=cvat_redis_ondisk" in d for d in deploys)
    assert deployed_files(result.stdout) == ["function.yaml"] * len(FOLDERS)
    assert "+ nuctl create project cvat --platform local" in result.stdout


def test_gpu_uses_gpu_yaml_where_present() -> None:
    result = deploy("--dry-run", "--gpu")
    assert result.returncode == 0, result.stderr
    expected = sorted(
        "function-gpu.yaml" if (folder / "function-gpu.yaml").is_file() else "function.yaml" for folder in FOLDERS
    )
    assert sorted(deployed_files(result.stdout)) == expected
    assert expected.count("function-gpu.yaml") >= 2
    assert "opencv-people-face has no function-gpu.yaml" in result.stderr


def test_named_functions_only() -> None:
    result = deploy("--dry-run", "opencv-people-face")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("+ nuctl deploy") == 1 and "opencv-people-face" in result.stdout
    unknown = deploy("--dry-run", "no-such-function")
    assert unknown.returncode == 2 and "no function named no-such-function" in unknown.stderr


def test_refuses_to_deploy_what_lint_rejects(tmp_path: Path) -> None:
    bad = tmp_path / "x" / "y" / "z" / "nuclio"
    shutil.copytree(REPO / "serverless" / "opencv" / "opencv" / "people-face" / "nuclio", bad)
    original = (bad / "function.yaml").read_text()
    text = original.replace('    version: "1"\n', '    version: "1"\n    startswith_box: false\n')
    assert text != original
    (bad / "function.yaml").write_text(text)
    result = deploy("--dry-run", "--functions-dir", str(tmp_path))
    assert result.returncode == 1
    assert "refusing to deploy" in result.stderr and "startswith_box" in result.stderr + result.stdout
    assert "nuctl deploy" not in result.stdout

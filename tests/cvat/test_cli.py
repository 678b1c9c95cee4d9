"""``cvat-ext cvat ...`` against the stand-in, settings from the environment and options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cvat_ext.cli import main
from tests.conftest import OrgWorld
from tests.cvat_standin import CvatStandIn


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, cvat_standin: CvatStandIn, cvat_org_world: OrgWorld) -> OrgWorld:
    monkeypatch.setenv("CVAT_EXT_CVAT__URL", cvat_standin.url)
    monkeypatch.setenv("CVAT_EXT_CVAT__ACCESS_TOKEN", cvat_org_world.bot_token)
    monkeypatch.setenv("CVAT_EXT_CVAT__ORG", cvat_org_world.org_slug)
    return cvat_org_world


def test_about(env: OrgWorld, capsys: pytest.CaptureFixture[str]):
    assert main(["cvat", "about"]) == 0
    out = capsys.readouterr().out
    assert "2.73.0" in out and "qabot" in out and "qa-eval" in out


def test_jobs_table_and_filters(env: OrgWorld, capsys: pytest.CaptureFixture[str]):
    assert main(["cvat", "jobs", "--task", str(env.task_id)]) == 0
    captured = capsys.readouterr()
    rows = captured.out.strip().splitlines()[1:]
    assert len(rows) == 9 and "9 jobs" in captured.err
    parent = env.parent_job_ids[0]
    assert main(["cvat", "jobs", "--type", "consensus_replica", "--parent", str(parent), "--json"]) == 0
    found = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(j["id"] for j in found) == sorted(env.replica_job_ids[parent])
    assert all(j["type"] == "consensus_replica" for j in found)


def test_jobs_updated_after(env: OrgWorld, capsys: pytest.CaptureFixture[str]):
    assert main(["cvat", "jobs", "--task", str(env.task_id), "--updated-after", "2999-01-01T00:00:00Z"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[1:] == []
    assert main(["cvat", "jobs", "--updated-after", "2000-01-01", "--json"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 9


def test_annotations_to_file(
    env: OrgWorld, cvat_standin: CvatStandIn, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    job_id = env.replica_of(env.parent_job_ids[0], "ann1")
    body = {
        "version": 0,
        "tags": [],
        "tracks": [],
        "shapes": [
            {
                "type": "rectangle",
                "frame": 1,
                "label_id": env.label_ids["car"],
                "points": [1, 2, 30, 40],
                "occluded": False,
                "outside": False,
                "z_order": 0,
                "rotation": 0.0,
                "group": 0,
                "source": "manual",
                "attributes": [],
                "elements": [],
            }
        ],
    }
    cvat_standin.set_annotations(job_id, body)
    out = tmp_path / "ann.json"
    assert main(["cvat", "annotations", str(job_id), "-o", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert saved == cvat_standin.get_annotations(job_id)
    assert f"job {job_id}: 1 shapes, 0 tracks, 0 tags" in capsys.readouterr().out


def test_options_override_env(env: OrgWorld, cvat_standin: CvatStandIn, capsys: pytest.CaptureFixture[str]):
    assert main(["cvat", "--token", "wrong", "about"]) == 2
    assert "401 Unauthorized" in capsys.readouterr().err


def test_missing_settings(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    for name in ("URL", "ACCESS_TOKEN", "ORG", "USERNAME", "PASSWORD"):
        monkeypatch.delenv(f"CVAT_EXT_CVAT__{name}", raising=False)
    assert main(["cvat", "about"]) == 2
    assert "no CVAT url" in capsys.readouterr().err
    assert main(["cvat", "--url", "http://127.0.0.1:9", "about"]) == 2
    assert "no CVAT credentials" in capsys.readouterr().err


def test_unknown_job_is_one_line_error(env: OrgWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["cvat", "annotations", "999999", "-o", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cvat-ext: error: job 999999 annotations: GET /api/jobs/999999/annotations -> 404")
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize("command", [["cvat"], ["cvat", "about"], ["cvat", "jobs"], ["cvat", "annotations"]])
def test_help(command: list[str], capsys: pytest.CaptureFixture[str]):
    assert main([*command, "--help"]) == 0
    assert "Usage:" in capsys.readouterr().out

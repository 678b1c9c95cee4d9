"""``cvat-ext al rank`` end to end on files, the ground-truth job, and ``al round``/``al rounds`` over real HTTP."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from cvat_ext import cli
from cvat_ext.cvat.client import CvatClient
from cvat_ext.errors import ConfigError, CvatConflictError
from tests.active_learning.detector_server import detector_function, url_of
from tests.active_learning.helpers import meta_json, predictions_json, write
from tests.active_learning.pool import pool_images
from tests.conftest import OrgWorld
from tests.cvat_standin import CvatStandIn


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    # frames 0..29; detections: 13 at 0.5 (uncertainty 1), 12 next to it nearly as ambiguous, 25 mildly
    # uncertain, the rest confident. Scores (weights 1, 1, 0.5 -> / 2.5): 13 0.400, 12 0.3995,
    # 20 (disagreement 0.583 + confident 0.094) 0.271, 7 (findings 0.75) 0.188, 25 0.163
    pred = predictions_json([(12, 0.5), (12, 0.45), (13, 0.5), (25, 0.85), (3, 0.99)] +
                            [(f, 0.98) for f in range(30) if f not in (3, 12, 13, 25)])
    report = {
        "summary": {"annotators": ["a", "b", "c"]},
        "frames": [
            {"frame": 20, "clusters": 2, "kept": 1, "mean_iou": 0.7, "f1": 0.5, "missing": 2, "extra": 1,
             "label_disagreements": 1, "findings": 3},
            {"frame": 3, "clusters": 1, "kept": 1, "mean_iou": 0.9, "f1": 1.0, "missing": 0, "extra": 0,
             "label_disagreements": 0, "findings": 0},
        ],
    }
    findings = {"summary": {}, "findings": [
        {"frame": 7, "severity": "error", "rule_id": "r"}, {"frame": 7, "severity": "error", "rule_id": "r"}]}
    return {
        "pred": write(tmp_path / "pred.json", pred),
        "report": write(tmp_path / "report.json", report),
        "findings": write(tmp_path / "findings.json", findings),
        "meta": write(tmp_path / "meta.json", meta_json(0, 29)),
    }


def _args(files: dict[str, Path], *extra: str) -> list[str]:
    return ["al", "rank", "--predictions", str(files["pred"]), "--consensus-report", str(files["report"]),
            "--findings", str(files["findings"]), "--meta", f"job7={files['meta']}", *extra]


def test_rank_json(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(_args(files, "--top", "4", "--format", "json")) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["frames"] == 30 and out["jobs"] == ["job7"]
    assert out["signals"] == ["uncertainty", "disagreement", "findings"]
    assert out["weights"] == {"uncertainty": 1.0, "disagreement": 1.0, "findings": 0.5}
    picked = out["picked"]
    assert [p["frame"] for p in picked] == [13, 12, 20, 7]
    top = picked[0]
    assert top["rank"] == 1 and top["job"] == "job7"
    assert top["signals"] == {"uncertainty": 1.0, "disagreement": 0.0, "findings": 0.0}
    assert top["score"] == pytest.approx(0.4)
    assert top["details"]["uncertainty.detections"] == 1 and picked[1]["details"]["uncertainty.detections"] == 2
    assert picked[2]["signals"]["disagreement"] == pytest.approx((0.5 + 3 / 4 + 1 / 2) / 3, abs=1e-6)
    assert sum(top["contributions"].values()) == pytest.approx(top["score"], abs=1e-5)
    assert picked[2]["why"].startswith("disagreement")
    assert picked[3]["details"]["findings.errors"] == 2


def test_rank_nms_table_and_output_file(files: dict[str, Path], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out_path = tmp_path / "out" / "rank.txt"
    assert cli.main(_args(files, "--top", "3", "--nms-window", "2", "-o", str(out_path))) == 0
    assert capsys.readouterr().out == ""
    lines = out_path.read_text().splitlines()
    assert lines[0].split()[:7] == ["rank", "frame", "job", "score", "uncertainty", "disagreement", "findings"]
    assert [line.split()[1] for line in lines[1:4]] == ["13", "20", "7"]  # 12 suppressed by 13
    assert lines[-1] == "3 of 30 frame(s) picked; weights uncertainty=1, disagreement=1, findings=0.5"


def test_rank_csv_with_weights(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(_args(files, "--format", "csv", "--top", "0", "--weights", "uncertainty=0,findings=3")) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 30
    assert rows[0]["frame"] == "7" and rows[1]["frame"] == "20"
    assert float(rows[0]["score"]) == pytest.approx(3 * 0.75 / 4)
    assert "uncertainty.entropy_max" in rows[0]


def test_rank_predictions_only_uses_empty_prior(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pred = write(tmp_path / "p.json", predictions_json([(0, 0.99), (1, 0.9), (5, 0.9)]))
    meta = write(tmp_path / "m.json", meta_json(0, 3))
    assert cli.main(["al", "rank", "--predictions", str(pred), "--meta", str(meta), "--empty-prior", "0.9",
                     "--format", "json"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert [p["frame"] for p in out["picked"]] == [2, 3, 1, 0]
    assert out["jobs"] == ["m"]
    assert "1 detections on frames outside the --meta jobs were ignored" in captured.err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--weights", "entropy=1"], "--weights: unknown signal 'entropy'"),
        (["--weights", "uncertainty=x"], "--weights: uncertainty='x' is not a number"),
        (["--ambiguous-band", "0.3"], "--ambiguous-band '0.3': expected LOW,HIGH"),
        (["--ambiguous-band", "0.8,0.2"], "ambiguous band: need 0 <= low <= high <= 1"),
        (["--nms-window", "-3"], "NMS window: need >= 0"),
        (["--top", "-1"], "--top -1: need >= 0"),
    ],
)
def test_rank_bad_options_exit_2(files: dict[str, Path], capsys: pytest.CaptureFixture[str],
                                 extra: list[str], message: str) -> None:
    assert cli.main(_args(files, *extra)) == 2
    assert f"cvat-ext: error: {message}" in capsys.readouterr().err


def test_rank_bad_files_name_the_file(files: dict[str, Path], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    bad = write(tmp_path / "bad_pred.json", {"shapes": [{"type": "rectangle", "frame": 1, "label_id": 1,
                                                         "points": [0, 0, 5, 5], "score": 1.5}]})
    assert cli.main(["al", "rank", "--predictions", str(bad), "--meta", str(files["meta"])]) == 2
    assert f"cvat-ext: error: {bad}: shapes[0]: score 1.5 is not a number in [0, 1]\n" in capsys.readouterr().err
    missing = tmp_path / "nope.json"
    assert cli.main(["al", "rank", "--consensus-report", str(missing), "--meta", str(files["meta"])]) == 2
    assert f"{missing}: cannot read" in capsys.readouterr().err
    assert cli.main(["al", "rank", "--meta", str(files["meta"])]) == 2
    assert "nothing to rank by" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# ground-truth job over real HTTP (cvat-sdk against the CVAT stand-in)


def _seed(standin: CvatStandIn) -> tuple[str, int]:
    standin.add_user("admin", is_superuser=False)
    standin.add_org("lab", owner="admin")
    token = standin.add_token("admin")
    task_id = standin.add_task("video", org="lab", labels=[{"name": "car", "type": "rectangle"}], frames=30,
                               segment_size=30, owner="admin")
    return token, task_id


def test_create_gt_job_client(cvat_standin: CvatStandIn) -> None:
    token, task_id = _seed(cvat_standin)
    with CvatClient(cvat_standin.url, access_token=token, org="lab") as client:
        job = client.create_gt_job(task_id, [20, 3, 12, 3])
        assert (job.type, job.task_id) == ("ground_truth", task_id)
        assert client.get_job_meta(job.id).included_frames == (3, 12, 20)
        with pytest.raises(CvatConflictError, match=f"task {task_id}: .*already has ground-truth job {job.id}"):
            client.create_gt_job(task_id, [1])
        with pytest.raises(ConfigError, match="need at least one frame"):
            client.create_gt_job(task_id, [])
    assert ("POST", "/api/jobs", 201) in cvat_standin.request_log
    assert sum(1 for m, p, _ in cvat_standin.request_log if (m, p) == ("POST", "/api/jobs")) == 1


def test_rank_create_gt_job(files: dict[str, Path], cvat_standin: CvatStandIn,
                            capsys: pytest.CaptureFixture[str]) -> None:
    token, task_id = _seed(cvat_standin)
    conn = ["--url", cvat_standin.url, "--token", token, "--org", "lab"]
    args = _args(files, "--top", "3", "--nms-window", "2", "--format", "csv", "--create-gt-job", str(task_id), *conn)
    assert cli.main(args) == 0
    captured = capsys.readouterr()
    gt = cvat_standin.jobs(task_id=task_id, type="ground_truth")
    assert len(gt) == 1
    assert f"created ground-truth job {gt[0]['id']} in task {task_id} over 3 frame(s)" in captured.err
    with CvatClient(cvat_standin.url, access_token=token, org="lab") as client:
        assert client.get_job_meta(gt[0]["id"]).included_frames == (7, 13, 20)
    # a second run: CVAT allows one GT job per task
    assert cli.main(args) == 2
    assert f"already has ground-truth job {gt[0]['id']}" in capsys.readouterr().err


# --- al round / al rounds against the stand-in ------------------------------------------------------
def _round_args(standin: CvatStandIn, world: OrgWorld, pool: int, state: Path, *extra: str) -> list[str]:
    return ["al", "round", "--project", str(world.project_id), "--pool-task", str(pool), "--state",
            f"sqlite:///{state}", "--url", standin.url, "--token", world.bot_token, "--org", world.org_slug, *extra]


@pytest.fixture
def pool(cvat_standin: CvatStandIn, cvat_org_world: OrgWorld) -> int:
    with CvatClient(cvat_standin.url, access_token=cvat_org_world.bot_token, org=cvat_org_world.org_slug) as c:
        return c.create_task_from_images("pool", project_id=cvat_org_world.project_id,
                                         images=pool_images([[0.5, 0.4, 0.9], [0.45, 0.2, 0.99]])).id


def test_round_and_rounds_commands(cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, pool: int, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state.db"
    with detector_function() as server:
        args = _round_args(cvat_standin, cvat_org_world, pool, state, "--batch", "2", "--function-url",
                           url_of(server), "--assignee", "ann2", "--format", "json")
        assert cli.main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["round"] == 1 and out["status"] == "done" and len(out["picks"]) == 2
    assert out["prelabels"] == 2 and out["picks"][0]["why"].startswith("uncertainty")
    jobs = cvat_standin.jobs(task_id=out["task_id"])
    assert [j["assignee"]["username"] for j in jobs] == ["ann2"]
    assert cli.main(["al", "rounds", "--project", str(cvat_org_world.project_id), "--state", f"sqlite:///{state}",
                     "--org", cvat_org_world.org_slug]) == 0
    table = capsys.readouterr().out
    assert "round 1 of pool task" in table and f"task {out['task_id']}: jobs" in table


@pytest.mark.parametrize(("extra", "message"), [
    (["--batch", "2"], "give exactly one of --function-url"),
    (["--batch", "2", "--function-url", "http://127.0.0.1:9", "--predictions-from-task"], "give exactly one of"),
    (["--batch", "0", "--predictions-from-task"], "batch must be >= 1"),
    (["--batch", "2", "--predictions-from-task", "--replicas", "1"], "consensus_replicas must be 0 or >= 2"),
    (["--batch", "2", "--predictions-from-task", "--assignee", "nobody"], "no CVAT user 'nobody'"),
    (["--batch", "2", "--function-url", "http://127.0.0.1:9", "--label-map", "auto=truck"],
     "--label-map 'auto=truck': expected MODEL=PROJECT_LABEL"),
    (["--batch", "2", "--function-url", "http://127.0.0.1:9"], "cannot connect to function"),
])
def test_round_careless_input_one_line_exit_2(cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, pool: int,
                                              tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              extra: list[str], message: str) -> None:
    assert cli.main(_round_args(cvat_standin, cvat_org_world, pool, tmp_path / "s.db", *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert cvat_standin.jobs(task_id=pool + 1) == []  # nothing was created

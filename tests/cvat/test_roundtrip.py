"""The offline tools' round trip against the stand-in, through the console script's entry point:
fetch the replicas of a parent job, run the printed ``qa consensus`` command, write the merge back
(confirmation, backup first), and the refusals that keep a job intact."""

from __future__ import annotations

import io
import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from cvat_ext.cli import main
from tests.conftest import OrgWorld
from tests.cvat_standin import CvatStandIn
from tests.sidecar.scenario import seed_sloppy_consensus


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch, cvat_standin: CvatStandIn, cvat_org_world: OrgWorld) -> OrgWorld:
    monkeypatch.setenv("CVAT_EXT_CVAT__URL", cvat_standin.url)
    monkeypatch.setenv("CVAT_EXT_CVAT__ACCESS_TOKEN", cvat_org_world.bot_token)
    monkeypatch.setenv("CVAT_EXT_CVAT__ORG", cvat_org_world.org_slug)
    seed_sloppy_consensus(cvat_standin, cvat_org_world)
    return cvat_org_world


def printed_command(out: str, prefix: str) -> list[str]:
    """The arguments of the ``<prefix> cvat-ext ...`` line a command printed."""
    line = next(line for line in out.splitlines() if line.startswith(f"{prefix} cvat-ext "))
    return shlex.split(line.removeprefix(f"{prefix} cvat-ext "))


def geometry(data: dict[str, Any]) -> list[tuple[Any, ...]]:
    """What a write must keep of each shape, in a stable order (ids and CVAT's defaults aside)."""
    return sorted((s["frame"], s["label_id"], s["type"], tuple(round(p, 3) for p in s["points"]))
                  for s in data["shapes"])


def test_fetch_replicas_consensus_write_back(
    world: OrgWorld, cvat_standin: CvatStandIn, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parent = world.parent_job_ids[0]
    before = {"version": 0, "tags": [], "tracks": [], "shapes": [
        {"type": "rectangle", "frame": 2, "label_id": world.label_ids["car"], "points": [5.0, 5.0, 50.0, 40.0],
         "occluded": False, "outside": False, "z_order": 0, "rotation": 0.0, "group": 0, "source": "manual",
         "attributes": [], "elements": []}]}
    cvat_standin.set_annotations(parent, before)
    held_before = cvat_standin.get_annotations(parent)

    # 1. fetch: one file per replica, named after its assignee, exactly as CVAT serves it
    assert main(["cvat", "fetch-replicas", str(parent), "-o", str(tmp_path / "in")]) == 0
    out = capsys.readouterr().out
    for annotator in ("ann1", "ann2", "ann3"):
        saved = json.loads((tmp_path / "in" / f"{annotator}.json").read_text())
        assert saved == cvat_standin.get_annotations(world.replica_of(parent, annotator))
    assert json.loads((tmp_path / "in" / "labels.json").read_text()) == cvat_standin.labels(task_id=world.task_id)
    assert json.loads((tmp_path / "in" / "meta.json").read_text())["stop_frame"] == 9

    # 2. the printed consensus command, as printed
    assert main([*printed_command(out, "next:"), "--quorum", "2", "--no-progress"]) == 0
    merged_path = tmp_path / "in" / "merged.json"
    merged = json.loads(merged_path.read_text())
    assert merged["shapes"], "the replicas agree on objects: the merge is not empty"
    capsys.readouterr()

    # 3. write back, printed command + --yes; the backup is what the job held
    backup = tmp_path / "backup.json"
    write_back = printed_command(out, "then:")
    assert write_back == ["cvat", "write-back", str(parent), str(merged_path)]
    assert main([*write_back, "--yes", "--backup", str(backup)]) == 0
    said = capsys.readouterr().out
    assert f"backup of job {parent}'s annotations: {backup}" in said
    assert json.loads(backup.read_text()) == held_before
    held = cvat_standin.get_annotations(parent)
    assert geometry(held) == geometry(merged)
    assert {s["source"] for s in held["shapes"]} == {s["source"] for s in merged["shapes"]}

    # 4. the undo the command printed puts the old annotations back
    assert main(["cvat", "write-back", str(parent), str(backup), "--yes", "--backup", str(tmp_path / "b2.json")]) == 0
    assert geometry(cvat_standin.get_annotations(parent)) == geometry(held_before)


def test_write_back_asks_first_and_keeps_the_job_on_no(
    world: OrgWorld, cvat_standin: CvatStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    parent = world.parent_job_ids[0]
    replica = world.replica_of(parent, "ann1")
    src = tmp_path / "ann1.json"
    assert main(["cvat", "annotations", str(replica), "-o", str(src)]) == 0
    held = cvat_standin.get_annotations(parent)
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    assert main(["cvat", "write-back", str(parent), str(src), "--backup", str(tmp_path / "bk.json")]) == 130
    assert "replace its 0 shapes, 0 tracks, 0 tags with the" in capsys.readouterr().out
    assert cvat_standin.get_annotations(parent) == held
    assert not (tmp_path / "bk.json").exists()
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    assert main(["cvat", "write-back", str(parent), str(src), "--backup", str(tmp_path / "bk.json")]) == 0
    assert geometry(cvat_standin.get_annotations(parent)) == geometry(json.loads(src.read_text()))


@pytest.mark.parametrize(("case", "expected"), [
    ("frames of the other parent",
     "is on frame 10, outside the job's frames 0..9 (10 frames) of job {parent}'s frame meta"),
    ("labels file", "this is a labels file (GET /api/labels), not job annotations"),
])
def test_write_back_refuses_what_does_not_fit(
    world: OrgWorld, cvat_standin: CvatStandIn, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    case: str, expected: str,
) -> None:
    parent, other = world.parent_job_ids
    if case == "labels file":
        assert main(["cvat", "fetch", str(parent), "-o", str(tmp_path)]) == 0
        src = tmp_path / "labels.json"
    else:
        src = tmp_path / "other.json"
        assert main(["cvat", "annotations", str(world.replica_of(other, "ann1")), "-o", str(src)]) == 0
    held = cvat_standin.get_annotations(parent)
    capsys.readouterr()
    assert main(["cvat", "write-back", str(parent), str(src), "--yes", "--backup", str(tmp_path / "bk.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected.format(parent=parent) in err
    assert cvat_standin.get_annotations(parent) == held and not (tmp_path / "bk.json").exists()


def test_fetch_job_for_rules_check(world: OrgWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    replica = world.replica_of(world.parent_job_ids[0], "ann3")
    assert main(["cvat", "fetch", str(replica), "-o", str(tmp_path)]) == 0
    args = printed_command(capsys.readouterr().out, "next:")
    assert main([*args, "--format", "json", "--fail-on", "never", "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["summary"]["pack"] == "default"


def test_fetch_replicas_of_a_job_without_replicas(world: OrgWorld, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cvat", "fetch-replicas", str(world.gt_job_id), "-o", str(tmp_path)]) == 2
    assert f"job {world.gt_job_id} (ground_truth job of task {world.task_id}) has no consensus replicas" in (
        capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


def test_fetch_replicas_names_one_person_with_two_replicas_and_the_unassigned(
    world: OrgWorld, cvat_standin: CvatStandIn, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The sidecar's naming rule (cvat_ext.cvat.annotators): ``ann1 (job<ID>)`` twice when ann1 holds
    two replicas, ``job<ID>`` unassigned; the file names have no spaces and the printed command runs."""
    parent = world.parent_job_ids[0]
    r1, r2, r3 = (world.replica_of(parent, a) for a in ("ann1", "ann2", "ann3"))
    cvat_standin.set_job(r2, assignee="ann1")
    cvat_standin.set_job(r3, assignee=None)
    assert main(["cvat", "fetch-replicas", str(parent), "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"replica job {r1} (ann1 (job{r1}))" in out and f"replica job {r3} (job{r3})" in out
    assert {p.name for p in tmp_path.glob("*.json")} >= {f"ann1-job{r1}.json", f"ann1-job{r2}.json", f"job{r3}.json"}
    command = printed_command(out, "next:")
    assert f"ann1 (job{r2})={tmp_path / f'ann1-job{r2}.json'}" in command
    assert main([*command, "--no-progress"]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert {a["annotator"] for a in report["annotators"]} == {f"ann1 (job{r1})", f"ann1 (job{r2})", f"job{r3}"}

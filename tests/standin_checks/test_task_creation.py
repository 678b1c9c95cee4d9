"""Task creation through the real cvat-sdk (``tasks.create_from_data``) against the stand-in (recording T01)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from cvat_sdk import make_client
from cvat_sdk.api_client.exceptions import ApiException
from PIL import Image

from tests.conftest import OrgWorld
from tests.cvat_standin import CvatStandIn


def _write_images(folder: Path, sizes: list[tuple[int, int]]) -> list[Path]:
    paths = []
    for i, (width, height) in enumerate(sizes):
        path = folder / f"img_{i + 1}.png"  # natural order differs from lexicographic from 10 on
        Image.new("RGB", (width, height), (10 * i, 40, 200 - 10 * i)).save(path)
        paths.append(path)
    return paths


@pytest.mark.parametrize(("count", "segment_size", "replicas"), [(3, 2, 0), (11, 4, 2), (1, 0, 0)])
def test_create_from_data_makes_jobs_and_serves_the_uploaded_frames(
        tmp_path: Path, cvat_standin: CvatStandIn, cvat_org_world: OrgWorld,
        count: int, segment_size: int, replicas: int) -> None:
    sizes = [(32 + 4 * i, 24 + 2 * i) for i in range(count)]
    paths = _write_images(tmp_path, sizes)
    spec = {"name": "created over HTTP", "project_id": cvat_org_world.project_id, "consensus_replicas": replicas}
    if segment_size:
        spec["segment_size"] = segment_size
    with make_client(cvat_standin.url, credentials=("admin", cvat_org_world.password)) as client:
        client.organization_slug = cvat_org_world.org_slug
        task = client.tasks.create_from_data(spec, resources=paths, data_params={"sorting_method": "natural"})
        assert task.size == count
        jobs = cvat_standin.jobs(task_id=task.id)
        segment = segment_size or count
        parents = [j for j in jobs if j["type"] == "annotation"]
        assert [(j["start_frame"], j["stop_frame"]) for j in parents] == [
            (s, min(s + segment, count) - 1) for s in range(0, count, segment)]
        assert sum(j["type"] == "consensus_replica" for j in jobs) == replicas * len(parents)
        meta = task.get_meta()
        assert [(f.width, f.height) for f in meta.frames] == sizes  # natural order: img_2 before img_10
        assert [f.name for f in meta.frames] == [p.name for p in paths]
        for number in (0, count - 1):
            frame = Image.open(io.BytesIO(task.get_frame(number, quality="original").read()))
            assert frame.size == sizes[number]
            assert frame.getpixel((0, 0)) == (10 * number, 40, 200 - 10 * number)


def test_non_image_upload_is_refused(tmp_path: Path, cvat_standin: CvatStandIn, cvat_org_world: OrgWorld) -> None:
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"not an image")
    with make_client(cvat_standin.url, credentials=("admin", cvat_org_world.password)) as client:
        client.organization_slug = cvat_org_world.org_slug
        with pytest.raises(ApiException) as err:
            client.tasks.create_from_data({"name": "bad", "project_id": cvat_org_world.project_id}, resources=[bad])
    assert err.value.status == 400
    assert b"not an image" in (err.value.body or b"")


def test_a_worker_cannot_create_tasks(tmp_path: Path, cvat_standin: CvatStandIn, cvat_org_world: OrgWorld) -> None:
    with make_client(cvat_standin.url, credentials=("ann1", cvat_org_world.password)) as client:
        client.organization_slug = cvat_org_world.org_slug
        with pytest.raises(ApiException) as err:
            client.tasks.create_from_data({"name": "w", "project_id": cvat_org_world.project_id},
                                          resources=_write_images(tmp_path, [(8, 8)]))
    assert err.value.status == 403

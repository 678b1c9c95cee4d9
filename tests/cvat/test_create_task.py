"""CvatClient.create_task_from_images against the stand-in: the task, its jobs and frames are exactly the bytes sent."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from cvat_ext.cvat.client import CvatClient
from cvat_ext.errors import ConfigError, CvatBadRequestError
from tests.conftest import OrgWorld
from tests.cvat_standin import CvatStandIn
from tests.functions.images import encode, gradient


@pytest.mark.parametrize(("n_files", "segment_size", "n_jobs"), [(1, None, 1), (5, 2, 3), (4, 4, 1)])
def test_create_task_uploads_exactly_the_files_given(
    cvat_standin: CvatStandIn,
    cvat_org_world: OrgWorld,
    make_client: Callable[..., CvatClient],
    n_files: int,
    segment_size: int | None,
    n_jobs: int,
) -> None:
    client = make_client(cvat_standin.url, access_token=cvat_org_world.bot_token, org=cvat_org_world.org_slug)
    files = [(f"img_{i}.png", encode(np.roll(gradient(30, 40), i, axis=1))) for i in range(n_files)]
    task = client.create_task_from_images("blurred", project_id=cvat_org_world.project_id, images=files,
                                         segment_size=segment_size)
    assert task.name == "blurred" and task.project_id == cvat_org_world.project_id and task.size == n_files
    jobs = client.list_jobs(task_id=task.id)
    assert len(jobs) == n_jobs
    for job in jobs:
        for frame in range(job.start_frame, job.stop_frame + 1):
            assert client.get_frame(job.id, frame) == files[frame][1]


def test_create_task_refuses_bad_input(
    cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, make_client: Callable[..., CvatClient]
) -> None:
    client = make_client(cvat_standin.url, access_token=cvat_org_world.bot_token, org=cvat_org_world.org_slug)
    with pytest.raises(ConfigError, match="no images"):
        client.create_task_from_images("x", project_id=cvat_org_world.project_id, images=[])
    with pytest.raises(CvatBadRequestError, match="project"):
        client.create_task_from_images("x", project_id=999, images=[("a.png", encode(gradient()))])

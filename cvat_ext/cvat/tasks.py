"""CvatClient methods that create tasks from image bytes and read a task's frames (contracts §6.4).

Task creation is CVAT's three-step upload (recording T01): ``POST /api/tasks`` (the task, no data),
then ``POST /api/tasks/{id}/data/`` with ``Upload-Start``, one or more ``Upload-Multiple`` multipart
bodies of ``client_files[i]`` (each below ``MAX_REQUEST_BYTES``), and ``Upload-Finish`` with the
data fields, which answers an ``rq_id`` to wait on. Frames keep the given order
(``sorting_method: predefined`` with ``upload_file_order``), so frame ``i`` of the new task is
``images[i]``.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from cvat_sdk.api_client import models

from cvat_ext.cvat import wire
from cvat_ext.cvat.records import Task
from cvat_ext.cvat.transport import ClientBase
from cvat_ext.errors import ConfigError, CvatError

#: what one Upload-Multiple request carries at most (cvat-sdk uses the same order of magnitude)
MAX_REQUEST_BYTES = 8 * 1024 * 1024


class _NamedUpload(io.BytesIO):
    """An in-memory file with the name its multipart part gets."""

    def __init__(self, data: bytes, name: str) -> None:
        super().__init__(data)
        self.name = name


def _batches(images: Sequence[tuple[str, bytes]], limit: int) -> list[list[tuple[str, bytes]]]:
    """Consecutive groups of at most ``limit`` bytes (a larger single file gets a group of its own)."""
    out: list[list[tuple[str, bytes]]] = []
    size = 0
    for item in images:
        if not out or size + len(item[1]) > limit:
            out.append([])
            size = 0
        out[-1].append(item)
        size += len(item[1])
    return out


def _check_images(what: str, images: Sequence[tuple[str, bytes]]) -> list[str]:
    names = [n for n, _ in images]
    if not images:
        raise ConfigError(f"{what}: no images to upload")
    if len(set(names)) != len(names):
        raise ConfigError(f"{what}: image file names must be unique")
    return names


class TaskCalls(ClientBase):
    def find_tasks(self, *, project_id: int, name: str) -> list[Task]:
        """Tasks of the project with exactly this name (CVAT's ``name`` filter is a substring match)."""
        what = f"project {project_id}: tasks named {name!r}"
        rows = self._t.pages(
            what,
            lambda p: self._api.tasks_api.list(
                page=p, page_size=100, project_id=project_id, name=name, **self._t.opts
            ),
        )
        return [wire.task_from_json(r, where=what) for r in rows if r.get("name") == name]

    def create_task_from_images(
        self,
        name: str,
        *,
        project_id: int,
        images: Sequence[tuple[str, bytes]],
        segment_size: int | None = None,
        consensus_replicas: int = 0,
        image_quality: int = 95,
        timeout_s: float = 600.0,
    ) -> Task:
        """A new task in the project whose frame ``i`` is ``images[i]`` (``(file name, bytes)``).

        Returns the task once CVAT has made its jobs. File names must be unique (CVAT orders and
        names frames by them).
        """
        what = f"project {project_id}: new task {name!r}"
        _check_images(what, images)  # before the task exists: a bad list leaves nothing behind
        if not 1 <= image_quality <= 100:
            raise ConfigError(f"{what}: image_quality must be 1..100, got {image_quality}")
        fields: dict[str, Any] = {"name": name, "project_id": project_id}
        if segment_size:
            fields["segment_size"] = segment_size
        if consensus_replicas:
            fields["consensus_replicas"] = consensus_replicas
        request = models.TaskWriteRequest(**fields)
        created = self._t.object(what, lambda: self._api.tasks_api.create(request, **self._t.opts))
        task_id = created.get("id")
        if not isinstance(task_id, int):
            raise CvatError(f"{what}: unexpected CVAT response: no task id")
        return self.upload_task_images(task_id, images, image_quality=image_quality, timeout_s=timeout_s)

    def upload_task_images(
        self, task_id: int, images: Sequence[tuple[str, bytes]], *, image_quality: int = 95, timeout_s: float = 600.0
    ) -> Task:
        """Attach ``images`` (frame ``i`` = ``images[i]``) to a task that has no data yet; waits for CVAT."""
        names = _check_images(f"task {task_id}", images)
        self._upload_images(task_id, images, image_quality=image_quality)
        finish = models.DataRequest(
            image_quality=image_quality, sorting_method="predefined", upload_file_order=names
        )
        data = self._t.object(
            f"task {task_id}: finish upload",
            lambda: self._api.tasks_api.create_data(task_id, upload_finish=True, data_request=finish, **self._t.opts),
        )
        rq_id = data.get("rq_id")
        if not isinstance(rq_id, str):
            raise CvatError(f"task {task_id}: unexpected CVAT response to Upload-Finish: no 'rq_id'")
        self.wait_request(rq_id, timeout_s=timeout_s)  # type: ignore[attr-defined]  # QualityCalls
        return self.get_task(task_id)  # type: ignore[attr-defined]  # CvatClient

    def _upload_images(self, task_id: int, images: Sequence[tuple[str, bytes]], *, image_quality: int) -> None:
        what = f"task {task_id}: upload"
        self._t.request(what, lambda: self._api.tasks_api.create_data(task_id, upload_start=True, **self._t.opts))
        for batch in _batches(images, MAX_REQUEST_BYTES):

            def send(batch: list[tuple[str, bytes]] = batch) -> Any:
                # fresh file objects per attempt: the SDK closes what it has read
                files = [_NamedUpload(data, file_name) for file_name, data in batch]
                request = models.DataRequest(image_quality=image_quality, client_files=files)
                return self._api.tasks_api.create_data(
                    task_id, upload_multiple=True, data_request=request,
                    _content_type="multipart/form-data", **self._t.opts,
                )

            self._t.request(f"{what} of {len(batch)} files", send)

    def get_task_frame(self, task_id: int, frame_idx: int) -> bytes:
        """``GET /api/tasks/{id}/data?type=frame&number=N&quality=original``: the frame's file bytes."""
        what = f"task {task_id} frame {frame_idx}"
        resp = self._t.request(
            what,
            lambda: self._api.tasks_api.retrieve_data(
                task_id, type="frame", number=frame_idx, quality="original", **self._t.opts
            ),
        )
        data: bytes = resp.data
        return data

    def get_task_meta(self, task_id: int) -> dict[str, Any]:
        """``GET /api/tasks/{id}/data/meta``: the raw frame meta of the whole task."""
        what = f"task {task_id} frame meta"
        return self._t.object(what, lambda: self._api.tasks_api.retrieve_data_meta(task_id, **self._t.opts))

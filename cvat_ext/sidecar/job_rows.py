"""The state store's rows of CVAT jobs: a client :class:`~cvat_ext.cvat.records.Job` as a
:class:`~cvat_ext.sidecar.state.JobRow`."""

from __future__ import annotations

from cvat_ext.cvat.records import Job
from cvat_ext.sidecar.state import JobRow


def job_row(job: Job) -> JobRow:
    """The state store's projection of a client :class:`Job`."""
    return JobRow(
        id=job.id,
        task_id=job.task_id,
        parent_job_id=job.parent_job_id,
        type=job.type,
        stage=job.stage,
        state=job.state,
        assignee_id=job.assignee_id,
        updated_date=iso_utc(job),
        project_id=job.project_id,
        assignee_username=job.assignee_username,
    )


def iso_utc(job: Job) -> str:
    """``updated_date`` as a fixed-width ISO string (these compare in time order)."""
    return job.updated_date.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

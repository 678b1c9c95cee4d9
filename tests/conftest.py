"""Shared fixtures: ``cvat_standin`` (a running CVAT 2.73 stand-in) and ``cvat_org_world`` (the recorded org).

Other test packages add their own fixtures in their subfolder conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.cvat_standin import CvatStandIn

ORG_SLUG = "qa-eval"
# username -> (first_name, last_name, org role or None); creation order gives the recorded user ids 1..7
ORG_USERS: dict[str, tuple[str, str, str | None]] = {
    "admin": ("", "", "owner"),
    "annotator1": ("Anna", "Outsider", None),
    "ann1": ("Ann", "Precise", "worker"),
    "ann2": ("Ann", "Moderate", "worker"),
    "ann3": ("Ann", "Sloppy", "worker"),
    "rev1": ("Rev", "Expert", "supervisor"),
    "qabot": ("QA", "Bot", "maintainer"),
}
ANNOTATORS = ("ann1", "ann2", "ann3")
PROJECT_LABELS: list[dict[str, object]] = [
    {"name": "car", "type": "rectangle", "color": "#fa3253"},
    {"name": "person", "type": "any", "color": "#34d1b7"},
    {"name": "sign", "type": "rectangle", "color": "#ff6a4d", "attributes": [
        {"name": "kind", "mutable": False, "input_type": "select", "default_value": "other",
         "values": ["stop", "yield", "other"]},
        {"name": "occluded_flag", "mutable": False, "input_type": "checkbox", "default_value": "false",
         "values": ["false"]},
    ]},
    {"name": "pose", "type": "skeleton", "color": "#b83df5", "sublabels": [
        {"name": n, "type": "points"} for n in ("head", "l_hand", "r_hand", "l_foot", "r_foot")]},
    {"name": "blurry", "type": "tag", "color": "#aaaaaa"},
]
GT_FRAMES = (1, 7, 8, 11, 15)


@dataclass(frozen=True)
class OrgWorld:
    """Ids of the seeded org (as in tests/data/cvat-2.73/recorded, README "The scenario")."""

    org_slug: str
    org_id: int
    user_ids: dict[str, int]  # username -> id (annotator1 is not a member)
    bot_username: str
    bot_token: str  # qabot's PAT (Bearer)
    password: str  # every user's password
    project_id: int
    task_id: int
    label_ids: dict[str, int]  # label or skeleton-node name -> id
    attribute_ids: dict[str, int]  # "sign.kind" -> spec id
    parent_job_ids: tuple[int, ...]  # annotation jobs, frames 0-9 and 10-19
    replica_job_ids: dict[int, tuple[int, ...]]  # parent id -> replicas (assigned ann1, ann2, ann3)
    gt_job_id: int  # frames GT_FRAMES, acceptance/completed, assignee rev1
    gt_frames: tuple[int, ...] = field(default=GT_FRAMES)

    def replica_of(self, parent_job_id: int, username: str) -> int:
        return self.replica_job_ids[parent_job_id][ANNOTATORS.index(username)]


@pytest.fixture
def cvat_standin() -> Iterator[CvatStandIn]:
    """A started stand-in; the test fails if any response broke the CVAT schema."""
    with CvatStandIn() as standin:
        yield standin
        standin.flush_webhooks()
    assert not standin.schema_errors, "stand-in responses violate the CVAT schema:\n" + "\n".join(
        standin.schema_errors)


def seed_org_world(standin: CvatStandIn, *, password: str = "password") -> OrgWorld:
    """Seed the recorded org into ``standin`` (usable without the fixture, e.g. module-scoped servers)."""
    user_ids = {}
    for name, (first, last, _) in ORG_USERS.items():
        user_ids[name] = standin.add_user(name, password=password, first_name=first, last_name=last)
    org_id = standin.add_org(ORG_SLUG, owner="admin")
    for name, (_, _, role) in ORG_USERS.items():
        if role is not None and role != "owner":
            standin.add_membership(ORG_SLUG, name, role)
    token = standin.add_token("qabot")
    project_id = standin.add_project("qa-eval project", org=ORG_SLUG, labels=PROJECT_LABELS, owner="admin")
    task_id = standin.add_task("qa-eval consensus task", project_id=project_id, frames=20, frame_size=(640, 480),
                               segment_size=10, consensus_replicas=3, owner="admin")
    parents = [j["id"] for j in standin.jobs(task_id=task_id, type="annotation")]
    replicas: dict[int, tuple[int, ...]] = {}
    for parent in parents:
        ids = tuple(j["id"] for j in standin.jobs(parent_job_id=parent))
        replicas[parent] = ids
        for job_id, annotator in zip(ids, ANNOTATORS):
            standin.set_job(job_id, stage="annotation", state="completed", assignee=annotator)
    gt = standin.add_gt_job(task_id, GT_FRAMES, assignee="rev1")
    label_ids: dict[str, int] = {}
    attribute_ids: dict[str, int] = {}
    for lb in standin.labels(task_id=task_id):
        label_ids[lb["name"]] = lb["id"]
        for sub in lb["sublabels"]:
            label_ids[sub["name"]] = sub["id"]
        for attr in lb["attributes"]:
            attribute_ids[f"{lb['name']}.{attr['name']}"] = attr["id"]
    return OrgWorld(ORG_SLUG, org_id, user_ids, "qabot", token, password, project_id, task_id, label_ids,
                    attribute_ids, tuple(parents), replicas, gt)


@pytest.fixture
def cvat_org_world(cvat_standin: CvatStandIn) -> OrgWorld:
    return seed_org_world(cvat_standin)

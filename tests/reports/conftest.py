"""A sidecar that has run one cycle on the sloppy-annotator scenario, serving its report pages."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cvat_ext.sidecar.server import SidecarHttpServer
from cvat_ext.sidecar.service import SidecarService
from tests.conftest import OrgWorld
from tests.cvat_standin import CvatStandIn
from tests.sidecar.scenario import seed_sloppy_consensus
from tests.sidecar.test_e2e_standin import Clock, make_service, make_settings

PUBLIC_URL = "http://qa.example:9000"


@dataclass
class Served:
    standin: CvatStandIn
    world: OrgWorld
    service: SidecarService
    server: SidecarHttpServer
    clock: Clock

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture
def served(cvat_standin: CvatStandIn, cvat_org_world: OrgWorld, tmp_path: Path) -> Iterator[Served]:
    seed_sloppy_consensus(cvat_standin, cvat_org_world)
    cfg = make_settings(cvat_standin, cvat_org_world, f"sqlite:///{tmp_path}/state.db",
                        reports={"session_ttl_s": 600, "public_url": PUBLIC_URL})
    clock = Clock()
    with make_service(cvat_standin, cvat_org_world, cfg, clock) as svc:
        report = svc.run_once()
        assert report.failed_units == 0, report.errors
        with svc.http_server() as server:
            yield Served(cvat_standin, cvat_org_world, svc, server, clock)

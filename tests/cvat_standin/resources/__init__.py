"""HTTP handlers of the stand-in, one module per CVAT endpoint family; :func:`build_router` wires them."""

from tests.cvat_standin.resources import (
    annotations,
    consensus,
    guides,
    issues,
    jobs,
    quality,
    task_data,
    users,
    webhooks,
)
from tests.cvat_standin.routing import Router


def build_router() -> Router:
    router = Router()
    for module in (users, jobs, task_data, annotations, issues, consensus, quality, guides, webhooks):
        module.register(router)
    return router

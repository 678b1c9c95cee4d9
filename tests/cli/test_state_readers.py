"""Commands that read the sidecar's state store: a wrong path is one clear error, never a new empty store."""

from __future__ import annotations

from pathlib import Path

import pytest

from cvat_ext import cli
from cvat_ext.sidecar.state import open_store


@pytest.mark.parametrize("command", [["report", "annotators"], ["al", "rounds", "--project", "1"]])
def test_a_missing_store_is_an_error_and_is_not_created(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        command: list[str]) -> None:
    missing = tmp_path / "nowhere" / "state.db"
    assert cli.main([*command, "--state", f"sqlite:///{missing}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"cvat-ext: error: state store {missing} does not exist: pass --state with the sidecar's state.url"
    assert not missing.parent.exists()


@pytest.mark.parametrize(("command", "empty"), [
    (["report", "annotators"], "no completed annotator jobs recorded"),
    (["al", "rounds", "--project", "1"], "no active-learning rounds for project 1"),
])
def test_an_existing_empty_store_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str],
                                         empty: str) -> None:
    path = tmp_path / "state.db"
    open_store(f"sqlite:///{path}").close()
    assert cli.main([*command, "--state", f"sqlite:///{path}"]) == 0
    assert capsys.readouterr().out.strip() == empty

"""The console script's shell: lazy subcommands, exit codes, one-line errors."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from cvat_ext import cli
from cvat_ext.errors import ConfigError


def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli.SUBCOMMANDS:
        assert name in out


@pytest.mark.parametrize("name", sorted(cli.SUBCOMMANDS))
def test_every_subcommand_imports_and_has_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([name, "--help"]) == 0
    assert "Usage:" in capsys.readouterr().out


@pytest.fixture
def extra_command() -> click.Group:
    @click.group()
    def group() -> None:
        """test group"""

    @group.command()
    @click.argument("code", type=int)
    def exit_with(code: int) -> None:
        click.get_current_context().exit(code)

    @group.command()
    def fail() -> None:
        raise ConfigError("job 812: bad setting 'x'")

    return group


@pytest.mark.parametrize(("args", "code", "stderr"), [
    (["exit-with", "0"], 0, ""),
    (["exit-with", "1"], 1, ""),
    (["exit-with", "3"], 3, ""),
    (["fail"], 2, "cvat-ext: error: job 812: bad setting 'x'"),
    (["nope"], 2, "No such command"),
])
def test_exit_codes(
    extra_command: click.Group, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    args: list[str], code: int, stderr: str,
) -> None:
    module = type(sys)("fake_cli_module")
    module.group = extra_command  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_cli_module", module)
    monkeypatch.setitem(cli.SUBCOMMANDS, "fake", ("fake_cli_module", "test"))
    assert cli.main(["fake", *args]) == code
    assert stderr in capsys.readouterr().err


def test_core_cli_never_imports_torch() -> None:
    code = (
        "import sys; from cvat_ext import cli\n"
        "for name in cli.SUBCOMMANDS: cli.main([name, '--help'])\n"
        "import cvat_ext.consensus, cvat_ext.geometry, cvat_ext.rules, cvat_ext.sidecar, cvat_ext.functions\n"
        "assert 'torch' not in sys.modules, 'torch imported by the core'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr

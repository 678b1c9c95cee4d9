"""The ``cvat-ext`` console script.

Each subcommand group lives in its own module ``cvat_ext/cli/<name>.py`` exposing a click group
called ``group``; it is imported only when used, so ``cvat-ext --help`` stays fast and the core
never imports model code.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from cvat_ext import __version__
from cvat_ext.errors import CvatExtError

#: subcommand name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "cvat": ("cvat_ext.cli.cvat", "Talk to a CVAT server: jobs, fetch the offline tools' inputs, write a merge back."),
    "qa": ("cvat_ext.cli.qa", "Offline consensus QA on CVAT JSON files: agreement report and merge."),
    "rules": ("cvat_ext.cli.rules", "Validation rule packs: lint, check annotations, export the schema."),
    "sidecar": ("cvat_ext.cli.sidecar", "The QA sidecar service that watches CVAT."),
    "audit": ("cvat_ext.cli.audit", "Export the sidecar's append-only audit log."),
    "functions": ("cvat_ext.cli.functions", "Serverless functions: lint function.yaml, local gateway."),
    "al": ("cvat_ext.cli.al", "Active learning: rank frames, run rounds against CVAT."),
    "lf": ("cvat_ext.cli.lf", "Programmatic labeling: labeling functions, label model, LF analysis."),
    "privacy": ("cvat_ext.cli.privacy", "Blur faces and plates before annotation; scan tasks for visible ones."),
    "report": ("cvat_ext.cli.report", "Reports from the sidecar's state: annotator scorecards."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = SUBCOMMANDS.get(cmd_name)
        if entry is None:
            return None
        module = importlib.import_module(entry[0])
        command: click.Command = module.group
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SUBCOMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cvat-ext")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """cvat-ext: consensus QA, validation rules, model functions and active learning for CVAT."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main(argv: list[str] | None = None) -> int:
    """Entry point: every :class:`CvatExtError` becomes one line on stderr and exit code 2."""
    try:
        # standalone_mode=False: click returns ctx.exit(code)'s code (or the command's return value)
        result = cli.main(args=argv, prog_name="cvat-ext", standalone_mode=False)
    except CvatExtError as exc:
        click.echo(f"cvat-ext: error: {exc}", err=True)
        return 2
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

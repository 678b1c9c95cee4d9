"""``cvat-ext functions``: lint function.yaml files, list functions, serve them to CVAT locally."""

from __future__ import annotations

import json
from pathlib import Path

import click

from cvat_ext.errors import ConfigError

DEFAULT_ROOT = "serverless"


class LintFailed(click.ClickException):
    """Exit code 1 with a one-line reason (a ClickException: ``cvat_ext.cli.main`` ignores the
    return code of ``cli.main`` under standalone_mode=False, so ``Exit(1)`` would end as 0)."""

    exit_code = 1


@click.group("functions")
def group() -> None:
    """Serverless functions: lint function.yaml, list, local gateway."""


@group.command("lint")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--strict", is_flag=True, help="Fail on warnings too.")
def lint_cmd(paths: tuple[Path, ...], strict: bool) -> None:
    """Check every function*.yaml under PATHS (default: serverless/) for what CVAT 2.73 mis-parses.

    Exit code 1 when any error (or, with --strict, any warning) was found.
    """
    from cvat_ext.functions.dev.lint import find_function_yamls, lint_paths

    roots = list(paths) or [Path(DEFAULT_ROOT)]
    files = sorted({f for r in roots for f in find_function_yamls(r)})
    if not files:
        raise ConfigError(f"no function*.yaml found under {', '.join(map(str, roots))}")
    issues = lint_paths(files)
    for issue in issues:
        click.echo(str(issue), err=issue.severity == "error")
    errors = sum(i.severity == "error" for i in issues)
    warnings = len(issues) - errors
    click.echo(f"{len(files)} files: {errors} errors, {warnings} warnings")
    if errors or (strict and warnings):
        raise LintFailed(f"lint failed: {errors} errors, {warnings} warnings")


@group.command("list")
@click.option("--root", "roots", multiple=True, type=click.Path(exists=True, path_type=Path), help="Folder to scan.")
@click.option("--json", "as_json", is_flag=True, help="Print the dashboard listing CVAT would receive.")
def list_cmd(roots: tuple[Path, ...], as_json: bool) -> None:
    """List the functions under --root (default: serverless/): name, kind, labels, folder."""
    from cvat_ext.functions.dev.lint import find_function_yamls
    from cvat_ext.functions.spec import load_function_config

    files = [f for r in (roots or (Path(DEFAULT_ROOT),)) for f in find_function_yamls(r) if f.name == "function.yaml"]
    rows = []
    for f in files:
        cfg = load_function_config(f)
        gpu = f.with_name("function-gpu.yaml").is_file()
        rows.append({"name": cfg.name, "kind": cfg.kind, "labels": len(cfg.labels), "gpu": gpu, "path": str(f.parent)})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        gpu_mark = "cpu+gpu" if row["gpu"] else "cpu"
        click.echo(f"{row['name']:<32} {row['kind']:<11} {row['labels']:>3} labels  {gpu_mark:<7}  {row['path']}")


@group.command("serve")
@click.option("--root", "roots", multiple=True, type=click.Path(path_type=Path), help="Folder to scan.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (0.0.0.0 for CVAT in docker).")
@click.option("--port", default=8070, show_default=True, help="Dashboard port (CVAT_NUCLIO_PORT).")
@click.option("--only", "names", multiple=True, help="Serve only these function names.")
@click.option(
    "--env",
    "env",
    multiple=True,
    envvar="CVAT_EXT_FUNCTIONS_ENV",
    metavar="[FUNCTION:]NAME=VALUE",
    help="Set a variable over the yamls' spec.env, for every function or one (repeatable; "
    "from the environment: CVAT_EXT_FUNCTIONS_ENV, space-separated).",
)
@click.option("--workers", type=click.IntRange(min=1), help="Workers per function instead of each yaml's numWorkers.")
@click.option("--lazy", is_flag=True, help="Load each worker's model on its first call instead of at start.")
@click.option("--drain-timeout", default=300.0, show_default=True, help="Seconds SIGTERM waits for calls in flight.")
@click.option("--no-direct-ports", is_flag=True, help="Do not open a port per function (direct invoke method).")
def serve_cmd(
    roots: tuple[Path, ...],
    host: str,
    port: int,
    names: tuple[str, ...],
    env: tuple[str, ...],
    workers: int | None,
    lazy: bool,
    drain_timeout: float,
    no_direct_ports: bool,
) -> None:
    """Answer CVAT's Nuclio dashboard calls with the functions under --root, run in-process.

    Each function runs with its yaml's spec.env (plus --env) and numWorkers workers. Functions that
    cannot load are reported and not listed to CVAT. SIGTERM drains: calls in flight finish, new
    ones get 503. Point CVAT at it: CVAT_NUCLIO_HOST=<this host>, CVAT_NUCLIO_PORT=<port>,
    CVAT_NUCLIO_INVOKE_METHOD=dashboard. For development and CPU-only installs; production uses Nuclio.
    """
    from cvat_ext.functions.dev.gateway import FunctionGateway

    gateway = FunctionGateway(
        roots or (Path(DEFAULT_ROOT),),
        host=host,
        port=port,
        names=names or None,
        eager=not lazy,
        direct_ports=not no_direct_ports,
        env=env,
        workers=workers,
    )
    gateway.start()
    ready = gateway.ready_functions()
    if not ready:
        gateway.stop()
        raise ConfigError(f"no function could be loaded ({len(gateway.failures)} failed, see above)")
    served = ", ".join(f"{name} ({fn.pool.size} workers)" for name, fn in sorted(ready.items()))
    click.echo(f"serving {len(ready)} functions at {gateway.url}: {served}")
    drained = gateway.serve_forever(drain_timeout_s=drain_timeout)
    click.echo("stopped" if drained else "stopped with calls still in flight", err=not drained)

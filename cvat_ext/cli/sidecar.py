"""``cvat-ext sidecar``: run the QA sidecar, or check its configuration."""

from __future__ import annotations

import logging
import signal

import click

from cvat_ext.sidecar.config import load_settings, secret_values
from cvat_ext.sidecar.logs import configure


@click.group("sidecar")
def group() -> None:
    """The QA sidecar service that watches CVAT."""


def _setup_logging(settings_secrets: list[str], log_format: str, verbose: int) -> None:
    current = logging.getLogger().getEffectiveLevel()
    level = min(logging.INFO, current) if verbose == 0 else logging.DEBUG
    configure(level=level, json_lines=log_format == "json", secrets=settings_secrets)


@group.command("run")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML settings file.")
@click.option("--once", is_flag=True, help="Run one cycle and exit (no HTTP server).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("-v", "--verbose", count=True, help="Debug logging.")
def run_cmd(config_path: str | None, once: bool, log_format: str, verbose: int) -> None:
    """Watch CVAT: score changed jobs, publish issues, route work, update task guides."""
    from cvat_ext.sidecar.service import SidecarService

    settings = load_settings(config_path)
    _setup_logging(secret_values(settings), log_format, verbose)
    with SidecarService(settings) as service:
        service.startup_check()
        # docker stop sends SIGTERM: finish the current cycle, then leave (a kill would be safe too)
        signal.signal(signal.SIGTERM, lambda signum, frame: service.stop())
        report = service.run(once=once)
    if once and report is not None:
        click.echo(
            f"cycle: {report.changed_jobs} changed jobs, {report.units} units, {report.jobs_scored} jobs scored, "
            f"{report.issues_opened} issues opened, {report.issues_resolved} resolved, "
            f"{report.failed_units} failed, {report.cvat_calls} CVAT calls in {report.seconds:.2f} s"
        )
        for job_id, decision in sorted(report.decisions.items()):
            click.echo(f"  job {job_id}: {decision}")
        for error in report.errors:
            click.echo(f"  error: {error}", err=True)


@group.command("check-config")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML settings file.")
@click.option("--connect", is_flag=True, help="Also log in to CVAT and open the state store.")
def check_config_cmd(config_path: str | None, connect: bool) -> None:
    """Validate the settings (secrets shown as ********) and optionally the connections."""
    settings = load_settings(config_path)
    click.echo(settings.model_dump_json(indent=2))
    if connect:
        from cvat_ext.sidecar.service import SidecarService

        with SidecarService(settings) as service:
            user = service.startup_check()
        click.echo(f"ok: CVAT {settings.cvat.url} as '{user.username}', state store reachable")


@group.command("register-webhook")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML settings file.")
@click.option(
    "--target-url",
    required=True,
    help="Where CVAT reaches the sidecar, e.g. http://cvat_ext_sidecar:9000/webhooks/cvat",
)
@click.option("--project-id", type=int, help="A project webhook instead of an organization webhook.")
@click.option("--ping/--no-ping", default=True, show_default=True, help="Ask CVAT to deliver a ping.")
@click.option("--org", "only_org", help="Only this organization (default: every configured one).")
def register_webhook_cmd(
    config_path: str | None, target_url: str, project_id: int | None, ping: bool, only_org: str | None
) -> None:
    """Create the CVAT webhook the sidecar listens to (with webhooks.secret) in each configured
    organization; skips an existing one."""
    from cvat_ext.errors import ConfigError
    from cvat_ext.sidecar.service import make_client
    from cvat_ext.sidecar.webhooks import EVENTS

    settings = load_settings(config_path)
    secret = settings.webhooks.secret
    if secret is None or not secret.get_secret_value():
        raise ConfigError("register-webhook: set webhooks.secret (CVAT_EXT_WEBHOOKS__SECRET) first")
    orgs = settings.cvat.org_slugs
    if only_org is not None:
        if only_org not in orgs:
            raise ConfigError(f"register-webhook: --org {only_org!r} is not configured (cvat.org/cvat.orgs: {orgs})")
        orgs = (only_org,)
    if project_id is not None and len(orgs) > 1:
        raise ConfigError("register-webhook: --project-id with several organizations needs --org")
    for org in orgs:
        where = f"org {org!r}: " if len(orgs) > 1 else ""
        with make_client(settings, org=org) as client:
            existing = [
                w for w in client.list_webhooks() if w.target_url == target_url and w.project_id == project_id
            ]
            if existing:
                click.echo(f"{where}webhook {existing[0].id} already posts to {target_url}")
                continue
            hook = client.create_webhook(
                target_url=target_url,
                events=EVENTS,
                secret=secret.get_secret_value(),
                project_id=project_id,
                description="cvat-ext QA sidecar",
            )
            click.echo(f"{where}created {hook.type} webhook {hook.id} -> {target_url} ({', '.join(hook.events)})")
            if ping:
                client.ping_webhook(hook.id)
                click.echo(f"{where}ping sent: the sidecar logs 'webhook ping'")

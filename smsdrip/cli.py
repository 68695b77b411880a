"""The `smsdrip` command: run the web server, workers and tools."""

from __future__ import annotations

import logging
import os
import sys
import uuid
from urllib.error import HTTPError, URLError
from urllib.parse import urlencode
from urllib.request import Request, urlopen

import click

from engine.config import ConfigError, get_settings
from smsdrip.logs import LEVELS, configure_logging

logger = logging.getLogger(__name__)


class SmsdripGroup(click.Group):
    """Turns start-up errors (settings, schema, sequence files) into a readable message and exit code 2."""

    def invoke(self, ctx: click.Context):  # type: ignore[no-untyped-def]
        from engine.schema import SchemaOutOfDate
        from engine.sequence_files import SequenceFileError

        try:
            return super().invoke(ctx)
        except ConfigError as error:
            click.echo(f"smsdrip: configuration error: {error}", err=True)
        except SchemaOutOfDate as error:
            click.echo(f"smsdrip: {error}", err=True)
        except SequenceFileError as error:
            click.echo(f"smsdrip: invalid sequence files; fix these and start again:\n{error}", err=True)
        sys.exit(2)


@click.group(cls=SmsdripGroup)
@click.option("--log-level", envvar="SMSDRIP_LOG_LEVEL", default="INFO", show_default=True,
              type=click.Choice(LEVELS, case_sensitive=False), help="Logging level (or SMSDRIP_LOG_LEVEL).")
def main(log_level: str) -> None:
    """SMS keyword and sequence automation."""
    configure_logging(log_level)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, type=int, help="TCP port to listen on.")
@click.option("--workers", "web_workers", default=lambda: int(os.environ.get("WEB_CONCURRENCY", "2")), show_default="2",
              type=int, help="Number of gunicorn worker processes (or WEB_CONCURRENCY).")
def serve(host: str, port: int, web_workers: int) -> None:
    """Run the webhook server under gunicorn."""
    from smsdrip.server import run_gunicorn

    run_gunicorn(host, port, web_workers)


@main.command()
@click.option("--burst", is_flag=True, help="Exit once the queue is empty instead of waiting for more work.")
@click.option("--no-scheduler", is_flag=True, help="Do not move scheduled jobs to the queue in this worker.")
@click.option("--processes", default=lambda: int(os.environ.get("SMSDRIP_WORKER_PROCESSES", "1")), show_default="1",
              type=click.IntRange(min=1), help="Number of worker processes, each sending one text at a time (or SMSDRIP_WORKER_PROCESSES).")
@click.option("--threads", default=lambda: int(os.environ.get("SMSDRIP_WORKER_THREADS", "1")), show_default="1",
              type=click.IntRange(min=1), help="Number of worker threads in one process, each sending one text at a time "
              "(or SMSDRIP_WORKER_THREADS); cannot be combined with --processes.")
@click.option("--worker-class", type=click.Choice(["simple", "fork"]), default="simple", show_default=True,
              help="simple: run jobs in the worker process (keeps connections open); fork: RQ's default, a new process per job.")
def worker(burst: bool, no_scheduler: bool, processes: int, threads: int, worker_class: str) -> None:
    """Run RQ workers that send due steps."""
    from smsdrip.worker import run_worker

    if processes > 1 and threads > 1:
        raise click.UsageError(f"--processes {processes} and --threads {threads} cannot be combined: "
                               "choose several processes or several threads in one process")
    if threads > 1 and worker_class != "simple":
        raise click.UsageError("--threads runs simple workers; leave out --worker-class fork")
    run_worker(burst=burst, with_scheduler=not no_scheduler, processes=processes, worker_class=worker_class, threads=threads)


@main.command()
def cron() -> None:
    """Run RQ's cron scheduler with the periodic sweep that re-enqueues sends from the database."""
    from smsdrip.worker import run_cron

    run_cron()


@main.group()
def db() -> None:
    """Database schema commands."""


@db.command()
def upgrade() -> None:
    """Create or migrate the database schema to the version this code needs."""
    from engine.schema import upgrade_database

    upgrade_database()
    click.echo("database schema is up to date")


@main.command()
@click.option("--port", default=5000, show_default=True, type=int, help="TCP port for the webhook server.")
def dev(port: int) -> None:
    """Run everything locally: SQLite, embedded Redis, web server, worker, cron, console transport."""
    from smsdrip.devserver import run_dev

    run_dev(port)


@main.command()
@click.argument("from_number", metavar="FROM")
@click.argument("body")
@click.option("--to", "to_number", default=None, help="Our number the text goes to (default TWILIO_FROM_NUMBER or +15550100000).")
@click.option("--url", default=None, help="Inbound webhook URL (default SMSDRIP_PUBLIC_URL + /twilio/sms).")
def text(from_number: str, body: str, to_number: str | None, url: str | None) -> None:
    """Post a signed inbound-message webhook, as Twilio would when FROM texts BODY."""
    from twilio.request_validator import RequestValidator

    settings = get_settings()
    url = url or f"{settings.public_url}/twilio/sms"
    to_number = to_number or settings.twilio_from_number or "+15550100000"
    params = {
        "MessageSid": "SM" + uuid.uuid4().hex,
        "AccountSid": settings.twilio_account_sid or "AC" + "0" * 32,
        "From": from_number,
        "To": to_number,
        "Body": body,
        "NumMedia": "0",
    }
    # Without a real token the server must run with SMSDRIP_VERIFY_SIGNATURES=false, as `smsdrip dev` does.
    signature = RequestValidator(settings.twilio_auth_token or "dev-token").compute_signature(url, params)
    request = Request(url, data=urlencode(params).encode(), headers={"X-Twilio-Signature": signature}, method="POST")
    try:
        with urlopen(request, timeout=10) as response:
            click.echo(f"{response.status} {response.read().decode()}")
    except HTTPError as error:
        click.echo(f"{error.code} {error.read().decode()}", err=True)
        sys.exit(1)
    except URLError as error:
        click.echo(f"cannot reach {url}: {error.reason}. Is `smsdrip dev` or `smsdrip serve` running?", err=True)
        sys.exit(1)


from smsdrip.authoring import apply_edits, check, simulate  # noqa: E402  (commands registered after the group exists)

main.add_command(check)
main.add_command(simulate)
main.add_command(apply_edits)
from smsdrip.leads_cli import apikey, broadcast, contacts, report  # noqa: E402 - registered after main is defined

main.add_command(apikey)
main.add_command(contacts)
main.add_command(report)
main.add_command(broadcast)


if __name__ == "__main__":
    main()

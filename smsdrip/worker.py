"""Running RQ workers and the cron scheduler from the `smsdrip worker` and `smsdrip cron` commands."""

from __future__ import annotations

import logging

from rq import Queue, Worker
from rq.cron import CronScheduler

from engine.config import get_settings
from engine.library import get_library
from engine.schema import check_schema
from workers.connection import get_redis

logger = logging.getLogger(__name__)


def run_worker(burst: bool = False, with_scheduler: bool = True) -> None:
    settings = get_settings()
    check_schema()
    # Load the sequences and the job module once here, so each forked work horse inherits them.
    get_library(settings.sequences_dir)
    import workers.jobs  # noqa: F401

    connection = get_redis()
    queue = Queue(settings.queue_name, connection=connection)
    worker = Worker([queue], connection=connection)
    logger.info("worker %s on queue %s (transport %s, scheduler %s)", worker.name, settings.queue_name, settings.transport,
                "on" if with_scheduler else "off")
    worker.work(burst=burst, with_scheduler=with_scheduler, logging_level=logging.getLevelName(logging.getLogger().level))


def run_cron() -> None:
    get_settings()
    check_schema()
    scheduler = CronScheduler(connection=get_redis(), logging_level=logging.getLogger().level)
    scheduler.load_config_from_file("workers.cron_config")
    scheduler.start()

"""Running RQ workers and the cron scheduler from the `smsdrip worker` and `smsdrip cron` commands."""

from __future__ import annotations

import logging

from rq import Queue, SimpleWorker, Worker
from rq.cron import CronScheduler
from rq.exceptions import StopRequested
from rq.worker_pool import WorkerPool

from engine.config import get_settings
from engine.db import get_engine, reserve_connections
from engine.library import get_library
from engine.schema import check_schema
from workers.connection import get_redis

logger = logging.getLogger(__name__)

# RQ's default Worker forks a work horse per job, so each send pays for a fork, a new database
# connection and a new HTTPS connection to the carrier. SimpleWorker runs jobs in the worker process,
# keeping both connections open across jobs; a send job is I/O-bound and short, and RQ still enforces
# its timeout with SIGALRM. Concurrency comes from several worker processes, or from several worker
# threads in one process (smsdrip.worker_threads).
WORKER_CLASSES: dict[str, type[Worker] | type[SimpleWorker]] = {"simple": SimpleWorker, "fork": Worker}


def run_worker(burst: bool = False, with_scheduler: bool = True, processes: int = 1, worker_class: str = "simple",
               threads: int = 1) -> None:
    """Run one worker, a pool of `processes` workers under RQ's WorkerPool (which restarts any that die),
    or `threads` workers in this process."""
    settings = get_settings()
    check_schema()
    # Load the sequences and the job module once here, so forked workers and work horses inherit them.
    get_library(settings.sequences_dir)
    import workers.jobs  # noqa: F401

    connection = get_redis()
    queue = Queue(settings.queue_name, connection=connection)
    level = logging.getLevelName(logging.getLogger().level)
    if threads > 1:
        from smsdrip.worker_threads import run_threads

        reserve_connections(threads)
        get_engine()  # made once here, before the threads share it
        run_threads(queue, connection, threads, burst=burst, with_scheduler=with_scheduler, logging_level=level)
        return
    if processes > 1:
        # Every pool worker runs RQ's scheduler loop; one holds the lock and moves due jobs at a time.
        pool = WorkerPool([queue], connection=connection, num_workers=processes, worker_class=WORKER_CLASSES[worker_class])
        logger.info("worker pool %s: %d %s workers on queue %s (transport %s)", pool.name, processes, worker_class,
                    settings.queue_name, settings.transport)
        pool.start(burst=burst, logging_level=level)
        return
    worker = WORKER_CLASSES[worker_class]([queue], connection=connection)
    logger.info("worker %s (%s) on queue %s (transport %s, scheduler %s)", worker.name, worker_class, settings.queue_name,
                settings.transport, "on" if with_scheduler else "off")
    worker.work(burst=burst, with_scheduler=with_scheduler, logging_level=level)


def run_cron() -> None:
    get_settings()
    check_schema()
    scheduler = CronScheduler(connection=get_redis(), logging_level=logging.getLogger().level)
    scheduler.load_config_from_file("workers.cron_config")
    try:
        scheduler.start()
    except StopRequested:
        # A second SIGINT or SIGTERM while the scheduler was already shutting down (Ctrl-C under
        # `smsdrip dev` sends two); the first one has stopped it.
        logger.info("cron scheduler stopped")

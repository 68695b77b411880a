"""Several RQ workers as threads of one process, for `smsdrip worker --threads N`.

A send job spends most of its time waiting for the carrier's response, so threads let one process keep
several texts in flight for the memory of one: each worker process has its own interpreter, ORM and
HTTP client. Each thread runs an RQ `SimpleWorker`, registered in Redis like any other
worker. Four things differ from a worker running alone:

- Only the main thread may handle signals, so the threads install none. The main thread runs RQ's
  scheduler loop (or just waits) and, on SIGINT or SIGTERM, tells every worker to stop after its job.
- RQ times jobs out with SIGALRM by default, which works in the main thread only; these workers use
  RQ's `TimerDeathPenalty`, which raises the timeout inside the job's own thread.
- RQ's command channel (`rq.command.send_shutdown_command` and the like) is left out: its handlers
  install signal handlers, which fails outside the main thread. Stop the process with SIGTERM.
- A worker waits for a job in turns of DEQUEUE_TURN seconds, so it sees a stop request soon after it
  is made instead of at the end of RQ's default wait of 405 seconds.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import redis
from rq import Queue, SimpleWorker
from rq.exceptions import StopRequested
from rq.job import Job
from rq.scheduler import RQScheduler
from rq.timeouts import TimerDeathPenalty

logger = logging.getLogger(__name__)

DEQUEUE_TURN = 2  # seconds a thread waits for a job before it checks for a stop request again


class ThreadWorker(SimpleWorker):
    """A SimpleWorker that runs in a thread other than the main one."""

    death_penalty_class = TimerDeathPenalty

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.stop_event = threading.Event()

    def _install_signal_handlers(self) -> None:
        """Signals go to the main thread, which calls `request_stop_soon`."""

    def subscribe(self) -> None:
        """No command channel (see the module's docstring)."""

    def unsubscribe(self) -> None:
        pass

    def request_stop_soon(self) -> None:
        """Stop after the job in progress, or at the end of the current wait for one."""
        self.stop_event.set()
        # NOTE: a private RQ attribute (rq 3.0), which its work loop checks after each job; recheck on upgrades.
        self._stop_requested = True

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None) -> tuple[Job, Queue] | None:
        if timeout is None:  # burst mode: RQ does not block, and None means the queue is empty
            return super().dequeue_job_and_maintain_ttl(None, max_idle_time)
        while not self.stop_event.is_set():
            # max_idle_time makes RQ give up after one turn instead of waiting on in its own loop.
            result = super().dequeue_job_and_maintain_ttl(DEQUEUE_TURN, max_idle_time=DEQUEUE_TURN)
            if result is not None:
                return result
        raise StopRequested()


class ThreadScheduler(RQScheduler):
    """RQ's scheduler loop, run in the main thread, whose signal handlers `run_threads` installs instead."""

    def _install_signal_handlers(self) -> None:
        pass


def run_threads(queue: Queue, connection: redis.Redis, threads: int, burst: bool, with_scheduler: bool, logging_level: str) -> None:
    """Run `threads` ThreadWorkers on `queue` until SIGINT or SIGTERM (or until the queue is empty, in burst mode)."""
    workers = [ThreadWorker([queue], connection=connection) for _ in range(threads)]
    runners = [
        threading.Thread(target=worker.work, kwargs={"burst": burst, "logging_level": logging_level}, name=f"worker-{index}")
        for index, worker in enumerate(workers)
    ]
    stopping = threading.Event()
    scheduler = ThreadScheduler([queue], connection=connection, logging_level=logging_level) if with_scheduler else None

    def stop(signum: int, _frame: FrameType | None) -> None:
        if stopping.is_set():
            logger.warning("second %s: stopping without waiting for jobs in progress", signal.Signals(signum).name)
            raise SystemExit(1)
        logger.info("%s: stopping %d worker threads after their current jobs", signal.Signals(signum).name, threads)
        stopping.set()
        if scheduler is not None:
            scheduler.request_stop()
        for worker in workers:
            worker.request_stop_soon()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    logger.info("%d worker threads on queue %s (scheduler %s): %s", threads, queue.name, "on" if scheduler else "off",
                ", ".join(worker.name for worker in workers))

    if scheduler is not None and burst:
        # As a lone RQ worker does in burst mode: move the jobs that are due once, then work them off.
        if scheduler.acquire_locks():
            try:
                scheduler.enqueue_scheduled_jobs()
            finally:
                scheduler.release_locks()
        scheduler = None
    for runner in runners:
        runner.start()
    if scheduler is not None:
        # RQ's scheduler loop: take the lock when it is free, move due jobs every second, release the lock on stop.
        scheduler.work()
    for runner in runners:
        # join() with a timeout keeps the main thread able to run the signal handler.
        while runner.is_alive():
            runner.join(timeout=0.5)
    logger.info("worker threads stopped")

"""`smsdrip worker --threads N`: several RQ workers as threads of one real process, sending to the local Twilio API."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

from click.testing import CliRunner

from smsdrip.cli import main
from tests.conftest import inbound_params, signed_post, wait_until
from tests.sequence_helpers import TWO_QUICK_STEPS, use_sequences


def test_threads_keep_several_texts_in_flight(client, start_worker, twilio_api, sequences_dir: Path):
    use_sequences(sequences_dir, demo=TWO_QUICK_STEPS)
    twilio_api.hold("before_accept")  # the API keeps every request waiting until released
    phones = [f"+155508100{number:02d}" for number in range(6)]
    for phone in phones:
        signed_post(client, "/twilio/sms", inbound_params(phone, "DEMO"))
    worker = start_worker("--threads", "3")

    # Three requests wait at the API at once, from one process: one per thread.
    assert twilio_api.wait_held(3, timeout=30), worker.log()
    time.sleep(0.5)
    assert twilio_api.state.held == 3, worker.log()
    twilio_api.release()

    messages = twilio_api.wait_for(12, timeout=30)  # welcome and tips for each number
    sent = sorted((message.to, message.body) for message in messages)
    assert sent == sorted([(phone, "Welcome!") for phone in phones] + [(phone, "Tips.") for phone in phones]), worker.log()
    time.sleep(1)
    assert len(twilio_api.messages) == 12  # nothing went twice
    job_workers = set(re.findall(r"Worker (\w+): smsdrip-test: send-", worker.log()))
    assert len(job_workers) >= 2, worker.log()


def test_threads_run_scheduled_steps(client, start_worker, twilio_api, sequences_dir: Path):
    """The main thread runs RQ's scheduler, which moves the step due in 2 seconds to the queue."""
    use_sequences(sequences_dir, demo=TWO_QUICK_STEPS)
    worker = start_worker("--threads", "2")
    signed_post(client, "/twilio/sms", inbound_params("+15550810100", "DEMO"))

    messages = twilio_api.wait_for(2, timeout=30)
    assert [message.body for message in messages] == ["Welcome!", "Tips."], worker.log()
    assert "Acquired scheduler lock" in worker.log()


def test_threads_stop_soon_after_sigterm(start_worker, twilio_api):
    worker = start_worker("--threads", "4")
    assert wait_until(lambda: "4 worker threads on queue" in worker.log(), timeout=30), worker.log()
    time.sleep(0.5)

    started = time.monotonic()
    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(timeout=60) == 0, worker.log()
    # A dequeue turn is 2 s; RQ's own wait for a job is 405 s. The bound leaves room for a busy machine.
    assert time.monotonic() - started < 60
    assert "worker threads stopped" in worker.log()


def test_threads_and_processes_cannot_be_combined():
    result = CliRunner().invoke(main, ["worker", "--threads", "4", "--processes", "2"])
    assert result.exit_code == 2
    assert "--processes 2 and --threads 4 cannot be combined" in result.output


def test_threads_refuse_forking_worker_class():
    result = CliRunner().invoke(main, ["worker", "--threads", "4", "--worker-class", "fork"])
    assert result.exit_code == 2
    assert "--threads runs simple workers" in result.output

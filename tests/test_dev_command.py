"""`smsdrip dev` and `smsdrip text` as a new user runs them: embedded defaults, console transport."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

from tests.conftest import REPO, child_pids, wait_until

SMSDRIP = [sys.executable, "-m", "smsdrip.cli"]
CONFIG_VARIABLES = ("DATABASE_URL", "REDIS_URL", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM_NUMBER",
                    "TWILIO_MESSAGING_SERVICE_SID", "SMSDRIP_TRANSPORT", "SMSDRIP_PUBLIC_URL", "SMSDRIP_SEQUENCES")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _healthy(port: int) -> bool:
    try:
        with urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
            return response.status == 200
    except (URLError, OSError):
        return False


def _start_dev(tmp_path: Path, new_session: bool = False) -> tuple[subprocess.Popen[bytes], int, Path, dict[str, str]]:
    """Start `smsdrip dev` on a free port in `tmp_path` with no configuration; returns it, its port, its log and its environment."""
    shutil.copytree(REPO / "sequences", tmp_path / "sequences")
    env = {name: value for name, value in os.environ.items() if name not in CONFIG_VARIABLES}
    port = _free_port()
    log_path = tmp_path / "dev.log"
    with open(log_path, "wb") as log:
        dev = subprocess.Popen([*SMSDRIP, "dev", "--port", str(port)], cwd=tmp_path, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=new_session)
    return dev, port, log_path, env


def test_dev_then_text_logs_welcome(tmp_path: Path):
    dev, port, log_path, env = _start_dev(tmp_path)
    try:
        assert wait_until(lambda: _healthy(port), timeout=60), log_path.read_text()

        texted = subprocess.run([*SMSDRIP, "text", "+15550100001", "DEMO", "--url", f"http://127.0.0.1:{port}/twilio/sms"],
                                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
        assert texted.returncode == 0, texted.stderr
        assert texted.stdout.strip() == '200 <?xml version="1.0" encoding="UTF-8"?><Response />'

        welcome = "Hi there! Thanks for your interest in a demo. We'll send a few tips over the next few days. Reply STOP to opt out."
        assert wait_until(lambda: welcome in log_path.read_text(), timeout=30), log_path.read_text()
        output = log_path.read_text()
        assert "console transport: text SM" in output
        unmasked = [line for line in output.splitlines() if "+15550100001" in line and "Try: smsdrip text" not in line]
        assert unmasked == []  # numbers are masked in logs; only the usage hint shows the example number
        assert "*******0001" in output
        assert (tmp_path / "smsdrip.db").exists()
    finally:
        dev.send_signal(signal.SIGINT)
        dev.wait(timeout=30)
    assert dev.returncode == 0, log_path.read_text()


def test_dev_ctrl_c_stops_every_process(tmp_path: Path):
    """Ctrl-C in a terminal sends SIGINT to the whole process group: dev, web server, worker and cron."""
    dev, port, log_path, _env = _start_dev(tmp_path, new_session=True)
    children: list[int] = []
    try:
        assert wait_until(lambda: _healthy(port), timeout=60), log_path.read_text()
        assert wait_until(lambda: "Listening on" in log_path.read_text(), timeout=30), log_path.read_text()
        children = child_pids(dev.pid)
        assert len(children) == 3

        os.killpg(dev.pid, signal.SIGINT)
        assert dev.wait(timeout=30) == 0, log_path.read_text()
    finally:
        if dev.poll() is None:
            os.killpg(dev.pid, signal.SIGKILL)
    assert wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in children), timeout=10)
    output = log_path.read_text()
    assert "smsdrip dev: Ctrl-C, stopping" in output
    assert "cold shut down" not in output  # the worker finished warm: the second SIGINT counted as the first
    assert "StopRequested" not in output, output  # cron took the second SIGINT without a traceback
    # gunicorn's quick shutdown on SIGINT may log a traceback for a request it drops; that is its own behaviour.


def test_text_without_server_says_what_to_do(tmp_path: Path):
    shutil.copytree(REPO / "sequences", tmp_path / "sequences")
    env = {name: value for name, value in os.environ.items() if name not in CONFIG_VARIABLES}
    result = subprocess.run([*SMSDRIP, "text", "+15550100001", "DEMO", "--url", f"http://127.0.0.1:{_free_port()}/twilio/sms"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "Is `smsdrip dev` or `smsdrip serve` running?" in result.stderr

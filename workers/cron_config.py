"""Periodic jobs for RQ's cron scheduler: `rq cron workers.cron_config` or `smsdrip cron`."""

from rq import cron

from engine.config import get_settings
from workers.jobs import enqueue_due_sends
from workers.notifications import enqueue_pending_notifications

# Seconds between sweeps (SMSDRIP_SWEEP_INTERVAL, default 30): at most this long after Redis lost a job, the send is enqueued again.
SWEEP_INTERVAL = get_settings().sweep_interval

cron.register(enqueue_due_sends, queue_name=get_settings().queue_name, interval=SWEEP_INTERVAL, job_timeout=300)
cron.register(enqueue_pending_notifications, queue_name=get_settings().queue_name, interval=SWEEP_INTERVAL, job_timeout=300)

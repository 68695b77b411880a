"""Jobs used only as benchmark baselines."""


def noop(send_id: int) -> str:
    """Do nothing, with the same signature and result size as workers.jobs.send_scheduled."""
    return "sent"

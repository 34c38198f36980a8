"""What fires jobs: the time scheduler (interval jobs).

Public API: JobScheduler (fires scheduled jobs, each fire a task written by the ledger) and the
TimeScheduler under it (with Fire, one due fire).
"""

from gateway.triggers.scheduler import JobScheduler
from gateway.triggers.time import Fire, TimeScheduler

__all__ = [
    "Fire",
    "JobScheduler",
    "TimeScheduler",
]

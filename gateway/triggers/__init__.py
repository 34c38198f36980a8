"""What fires jobs: the time scheduler (every time kind) and the chains' log followers (events).

Public API: JobScheduler (fires scheduled jobs, each fire a task written by the ledger) and the
TimeScheduler under it (with Fire, one due fire); EventTriggers (fires event jobs from the
WatchedChains) and the LogFollower under it (one chain's logs for every event job,
reorg-safe) with LogMatch, a log that fires a job.
"""

from gateway.triggers.events import EventTriggers, WatchedChain
from gateway.triggers.logs import LogFollower, LogMatch
from gateway.triggers.scheduler import JobScheduler
from gateway.triggers.time import Fire, TimeScheduler

__all__ = [
    "EventTriggers",
    "Fire",
    "JobScheduler",
    "LogFollower",
    "LogMatch",
    "TimeScheduler",
    "WatchedChain",
]

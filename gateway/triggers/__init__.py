"""What fires jobs: the time scheduler (every time kind), the chains' log followers (events) and
the condition readers (conditions).

Public API: JobScheduler (fires scheduled jobs, each fire a task written by the ledger) and the
TimeScheduler under it (with Fire, one due fire); EventTriggers (fires event jobs from the
WatchedChains) and the LogFollower under it (one chain's logs for every event job,
reorg-safe) with LogMatch, a log that fires a job; ConditionTriggers (fires condition jobs on
rising edges, each chain read at every new block in one batch) and the WebPoller under it
(condition jobs' HTTP values); AfterTriggers (fires a job after each completed task of the
job it follows: linked chains); HeadSignal, a chain's new heads as a hint to poll at once.
"""

from gateway.triggers.after import AfterTriggers
from gateway.triggers.chains import HeadSignal, WatchedChain
from gateway.triggers.conditions import ConditionTriggers
from gateway.triggers.events import EventTriggers
from gateway.triggers.logs import LogFollower, LogMatch
from gateway.triggers.scheduler import JobScheduler
from gateway.triggers.time import Fire, TimeScheduler
from gateway.triggers.web import WebPoller

__all__ = [
    "AfterTriggers",
    "ConditionTriggers",
    "EventTriggers",
    "Fire",
    "HeadSignal",
    "JobScheduler",
    "LogFollower",
    "LogMatch",
    "TimeScheduler",
    "WatchedChain",
    "WebPoller",
]

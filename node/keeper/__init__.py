"""The keeper: executes the tasks assigned to it and checks the tasks its peers executed.

Public API: TaskExecutor (runs an assignment; AssignmentRefused when it will not), ResultChecker
(checks a peer's result, with report_problem for one check), ScriptRunner (a job's script's
calldata, fetched by CID and run in the sandbox; ScriptError when there is none), and
VoteSender (sends the keeper's votes to the aggregators, keyed by VoteKey).
"""

from node.keeper.attester import ResultChecker, report_problem
from node.keeper.executor import AssignmentRefused, TaskExecutor
from node.keeper.scripts import ScriptError, ScriptRunner
from node.keeper.votes import VoteKey, VoteSender

__all__ = [
    "AssignmentRefused",
    "ResultChecker",
    "ScriptError",
    "ScriptRunner",
    "TaskExecutor",
    "VoteKey",
    "VoteSender",
    "report_problem",
]

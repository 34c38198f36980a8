"""The gateway: the HTTP API for dApp developers, and the services that turn jobs into tasks.

Public API: the job spec (JobSpec with ScriptSpec, sign_job, parse_create_request, trigger_kind, with
JobSpecError), the storage (GatewayStorage) and its records, the services (JobIntake with
ScriptCheck, a new job's script's dry run; TaskLedger, Dispatcher, ExecutionRelay, TaskMonitor
with follow_decisions, KeeperWatch and its HealthTracker, Alerts with its channels and
alert_channels) and the HTTP limits (HttpLimits, BoundedBodies, server_config). The API
(gateway.api) and the schedulers (gateway.triggers) are packages of their own.
"""

from gateway.alerts import (
    Alert,
    AlertChannel,
    Alerts,
    ChannelStats,
    DeliveryError,
    EmailChannel,
    WebhookChannel,
    alert_channels,
)
from gateway.dispatch import Dispatcher
from gateway.health import HealthTracker, KeeperWatch, heartbeat_peer, listen_addrs
from gateway.http import BoundedBodies, HttpLimits, server_config
from gateway.intake import JobConflictError, JobIntake
from gateway.jobs import (
    JobSpec,
    JobSpecError,
    ScriptSpec,
    ValidJob,
    parse_create_request,
    sign_job,
    trigger_kind,
)
from gateway.ledger import TaskEvent, TaskLedger
from gateway.monitor import TaskDecision, TaskMonitor, follow_decisions
from gateway.records import (
    AttemptRecord,
    ConditionState,
    FiredLog,
    FireTimes,
    JobRecord,
    StoredScript,
    TaskRecord,
)
from gateway.relay import ExecutionRelay
from gateway.script_check import ScriptCheck
from gateway.storage import GatewayStorage

__all__ = [
    "Alert",
    "AlertChannel",
    "Alerts",
    "AttemptRecord",
    "BoundedBodies",
    "ChannelStats",
    "ConditionState",
    "DeliveryError",
    "Dispatcher",
    "EmailChannel",
    "ExecutionRelay",
    "FireTimes",
    "FiredLog",
    "GatewayStorage",
    "HealthTracker",
    "HttpLimits",
    "JobConflictError",
    "JobIntake",
    "JobRecord",
    "JobSpec",
    "JobSpecError",
    "KeeperWatch",
    "ScriptCheck",
    "ScriptSpec",
    "StoredScript",
    "TaskDecision",
    "TaskEvent",
    "TaskLedger",
    "TaskMonitor",
    "TaskRecord",
    "ValidJob",
    "WebhookChannel",
    "alert_channels",
    "follow_decisions",
    "heartbeat_peer",
    "listen_addrs",
    "parse_create_request",
    "server_config",
    "sign_job",
    "trigger_kind",
]

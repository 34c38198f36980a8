"""The gateway role: wires the gateway's services (gateway/) to one store, one chain client and
one mesh node (docs/architecture.md)."""

from __future__ import annotations

import gc
import logging
import os

import trio

from gateway import (
    Alerts,
    Dispatcher,
    GatewayStorage,
    JobIntake,
    KeeperWatch,
    ScriptCheck,
    TaskLedger,
    alert_channels,
    follow_decisions,
    server_config,
)
from gateway.actions import SignedActions
from gateway.api import AccessRules, create_app
from gateway.api.fast_lane import serve_api
from gateway.api.fast_reads import FastReads
from gateway.api.streams import StreamLimits
from gateway.api_keys import ApiKeys
from gateway.faucet import Faucet
from gateway.fees import FeeEstimator
from gateway.keeper_forms import KeeperForms
from gateway.metrics import GatewayMetrics
from gateway.points import Points
from gateway.service_health import ChainProbe, GatewayHealth, Services
from gateway.stats import TaskStats
from gateway.triggers import (
    AfterTriggers,
    ConditionTriggers,
    EventTriggers,
    HeadSignal,
    JobScheduler,
    WatchedChain,
    WebPoller,
)
from gateway.users import Users
from node.config import ConfigError, NodeSetup
from node.mesh import Metrics
from node.metrics import MESH_DROPS
from node.roles.runtime import (
    load_directory,
    open_chain,
    open_mesh,
    open_watched,
    scripts_web,
    working_sandbox,
)
from node.store import Store
from node.web import JsonValues, WebLimits

log = logging.getLogger("triggerx.gateway")


async def run_gateway(setup: NodeSetup) -> None:
    """Run the gateway role until cancelled."""
    settings = setup.config.settings
    if setup.genesis.dispatcher != setup.operator.address:
        raise ConfigError(
            f"keys: the genesis names dispatcher {setup.genesis.dispatcher}, not this node's operator "
            f"{setup.operator.address}"
        )
    alert_to = alert_channels(setup.config)  # a bad [alerts] stops the gateway now, not at its first alert
    admin_token = setup.config.secret("gateway.admin_token_file", "gateway.admin_token_env", os.environ)
    settings.node.data_dir.mkdir(parents=True, exist_ok=True)
    with Store.open(settings.node.data_dir / "gateway.db") as store:
        storage = GatewayStorage(store)
        users = Users(store)
        ledger = TaskLedger(storage)
        web_limits = WebLimits(allow_private=settings.node.private_http_sources)
        async with (
            open_chain(setup) as chain,
            open_watched(setup, chain) as others,
            JsonValues(web_limits) as web,
            scripts_web(setup) as script_web,
        ):
            directory = await load_directory(setup, chain)
            # Dry-runs new jobs' scripts (docs/protocol.md, Jobs with scripts).
            scripts_on = settings.gateway.script_jobs
            sandbox = await working_sandbox("gateway", settings.node.sandbox) if scripts_on else None
            async with open_mesh(setup, directory) as mesh, trio.open_nursery() as nursery:
                keepers = KeeperWatch(directory, mesh, setup.genesis.protocol.offline_after_seconds)
                metrics = GatewayMetrics(keepers_online=lambda: len(keepers.online_accounts()))
                metrics.node.export_counts(mesh.metrics, MESH_DROPS)
                await nursery.start(metrics.count_tasks, ledger, storage)  # before any task changes
                services = Services()
                if alert_to:  # subscribed to the ledger here, before any task can fail
                    alerts = Alerts(
                        alert_to,
                        ledger,
                        keepers.tracker,
                        keeper_offline_after=settings.alerts.keeper_offline_after_seconds,
                        job_alert_every=settings.alerts.job_alert_every_seconds,
                        expected_keepers=lambda: [op.account for op in directory.operators.active],
                    )
                    nursery.start_soon(alerts.run)
                # Fired tasks go to the dispatcher, which is built below (it needs the intake).
                scheduler = JobScheduler(
                    storage,
                    ledger,
                    lambda task_id: nursery.start_soon(dispatcher.dispatch, task_id),
                    lead=settings.gateway.dispatch_lead_ms / 1000,
                )
                gateway = settings.gateway
                watched = [
                    WatchedChain(
                        chain.chain_id,
                        chain.hub.rpc,
                        gateway.event_confirmations,
                        gateway.event_poll_ms / 1000,
                        HeadSignal(settings.chain.ws_url),
                    ),
                    *(
                        WatchedChain(
                            other.endpoint.chain_id,
                            other.rpc,
                            _or(other.endpoint.confirmations, gateway.event_confirmations),
                            _or(other.endpoint.poll_ms, gateway.event_poll_ms) / 1000,
                            HeadSignal(other.endpoint.ws_url),
                        )
                        for other in others
                    ),
                ]
                events = EventTriggers(
                    storage, ledger, lambda task_id: nursery.start_soon(dispatcher.dispatch, task_id), watched
                )
                conditions = ConditionTriggers(
                    storage,
                    ledger,
                    lambda task_id: nursery.start_soon(dispatcher.dispatch, task_id),
                    watched,
                    WebPoller(web, Metrics()),
                )
                after = AfterTriggers(
                    storage,
                    ledger,
                    lambda task_id: nursery.start_soon(dispatcher.dispatch, task_id),
                    chain.hub.rpc,
                )
                triggers = (scheduler, events, conditions, after)
                intake = JobIntake(
                    storage,
                    chain.hub,
                    chain.sender,
                    chain.chain_id,
                    on_created=lambda job: [
                        metrics.job_created(job),
                        users.ensure(job.owner, job.created_at),
                        *(each.schedule(job) for each in triggers),
                    ],
                    on_cancelled=lambda job: [each.unschedule(job) for each in triggers],
                    on_resumed=lambda job: [each.schedule(job) for each in triggers],
                    watched_chains=frozenset(events.chains),
                    scripts=None
                    if sandbox is None
                    else ScriptCheck(storage, sandbox, chain.chain_id, chain.hub.rpc, script_web),
                )
                dispatcher = Dispatcher(
                    ledger=ledger,
                    storage=storage,
                    hub=chain.hub,
                    chain_id=chain.chain_id,
                    sender=chain.sender,
                    mesh=mesh,
                    directory=directory,
                    keepers=keepers,
                    intake=intake,
                    protocol=setup.genesis.protocol,
                    escrow_timeout=float(await chain.hub.call("ESCROW_TIMEOUT")),
                )
                dispatcher.resume(nursery)
                for job in storage.jobs.records():
                    for each in triggers:
                        each.schedule(job)
                # Long-lived from here on (jobs, schedules, the operator set): out of the collector's
                # scans, which otherwise tripled the scheduler's time per fire at 100,000 jobs.
                gc.freeze()
                stats = TaskStats(ledger, keepers_online=lambda: len(keepers.online_accounts()))
                nursery.start_soon(stats.run)
                access = AccessRules(
                    ApiKeys(store),
                    admin_token=admin_token,
                    anonymous_per_minute=gateway.anonymous_requests_per_minute,
                    keys_required=gateway.api_keys_required,
                )
                actions = SignedActions(store, chain.chain_id, chain.hub.address)  # one per store
                probe = ChainProbe(chain.rpc, chain.chain_id)
                await nursery.start(probe.run)  # the first reading is in before the API serves
                health = GatewayHealth(storage, probe, services, keepers.status)
                points = Points(storage, users, ledger, directory)
                nursery.start_soon(services.run, "points", points.run)
                app = create_app(
                    storage,
                    keepers.status,
                    intake=intake,
                    access=access,
                    key_requests_per_minute=gateway.key_requests_per_minute,
                    fees=FeeEstimator(chain.hub),
                    ledger=ledger,
                    stats=stats,
                    stream_limits=StreamLimits(connections_per_ip=gateway.websockets_per_address),
                    health=health.snapshot,
                    actions=actions,
                    users=users,
                    points=points,
                    keeper_forms=KeeperForms(store, actions),
                    faucet=Faucet(store, chain.sender, gateway.faucet_wei, gateway.faucet_period_seconds),
                    metrics=metrics,
                )
                reads = FastReads(storage, access, metrics)
                nursery.start_soon(serve_api, app, server_config(str(settings.gateway.http_listen)), reads)
                nursery.start_soon(directory.keep_fresh, 30.0)
                nursery.start_soon(services.run, "keepers", keepers.run)
                nursery.start_soon(
                    services.run, "decisions", follow_decisions, chain.center, ledger, dispatcher.decided
                )
                nursery.start_soon(services.run, "scheduler", scheduler.run)
                nursery.start_soon(services.run, "events", events.run)
                nursery.start_soon(services.run, "conditions", conditions.run)
                nursery.start_soon(services.run, "after", after.run)
                for each_chain in watched:
                    nursery.start_soon(each_chain.heads.run)
                log.info("gateway up: http://%s, mesh %s", settings.gateway.http_listen, mesh.peer_id)


def _or(value: int | None, default: int) -> int:
    """`value`, or `default` when it is None."""
    return default if value is None else value

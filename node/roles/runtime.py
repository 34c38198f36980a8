"""What every role needs: the chain and its contracts, the other chains it reads, the operator
directory, the mesh."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from node.chain import Contract, RpcClient, TransactionSender, load_artifact, revert_decoder
from node.config import ConfigError, Endpoint, NodeSetup
from node.content import ScriptCache, ScriptFetcher
from node.keeper import ScriptRunner
from node.mesh import MeshConfig, MeshNode, parse_peer_addr
from node.sandbox import (
    BwrapSandbox,
    DockerSandbox,
    DockerUnavailableError,
    Sandbox,
    Script,
    UnsupportedArchitectureError,
)
from node.web import WebFetcher, WebLimits
from protocol import OperatorDirectory

log = logging.getLogger(__name__)


@dataclass
class Chain:
    """The chain client and the network's contracts, from the genesis."""

    rpc: RpcClient
    chain_id: int
    sender: TransactionSender
    hub: Contract
    registry: Contract
    center: Contract


async def load_directory(setup: NodeSetup, chain: Chain) -> OperatorDirectory:
    """The operator directory, read once: active operators plus the genesis's dispatcher and aggregators."""
    genesis = setup.genesis
    peers = {parse_peer_addr(address).peer_id.to_base58() for address in genesis.aggregator_bootstrap}
    if genesis.dispatcher_peer_id is not None:
        peers.add(genesis.dispatcher_peer_id)
    directory = OperatorDirectory(
        chain.registry, {genesis.dispatcher, *genesis.aggregators}, frozenset(peers)
    )
    await directory.refresh()
    return directory


@asynccontextmanager
async def open_chain(setup: NodeSetup) -> AsyncIterator[Chain]:
    """The chain client bound to the genesis's contracts, signing as this node's operator."""
    genesis, settings = setup.genesis, setup.config.settings
    contracts = genesis.contracts
    async with RpcClient(settings.chain.rpc_url, revert_decoder=revert_decoder()) as rpc:
        chain_id = int(await rpc.call("eth_chainId"), 16)
        if chain_id != genesis.chain_id:
            raise RuntimeError(f"chain.rpc_url serves chain {chain_id}, the genesis says {genesis.chain_id}")

        def bound(name: str, address: str | None) -> Contract:
            if address is None:
                raise RuntimeError(f"the genesis has no address for {name}: deploy the contracts first")
            return Contract(rpc, load_artifact(name), address)

        yield Chain(
            rpc=rpc,
            chain_id=chain_id,
            sender=TransactionSender(rpc, setup.operator, chain_id),
            hub=bound("TaskExecutionHub", contracts.task_execution_hub),
            registry=bound("OperatorRegistry", contracts.operator_registry),
            center=bound("AttestationCenter", contracts.attestation_center),
        )


@dataclass(frozen=True)
class OtherChain:
    """A chain of `[chain] watch`: where its node is, how to read it, and the client."""

    endpoint: Endpoint
    rpc: RpcClient


@asynccontextmanager
async def open_watched(setup: NodeSetup, home: Chain) -> AsyncIterator[list[OtherChain]]:
    """The clients of the chains in `[chain] watch`, each node checked to serve the chain it is
    listed for; ConfigError for a chain listed twice, the home chain, or a node of another."""
    endpoints = [entry.endpoint for entry in setup.config.settings.chain.watch]
    listed = [home.chain_id]
    async with AsyncExitStack() as stack:
        chains = []
        for endpoint in endpoints:
            if endpoint.chain_id in listed:
                raise ConfigError(
                    f"chain.watch: chain {endpoint.chain_id} is listed twice, or is this node's own"
                )
            listed.append(endpoint.chain_id)
            rpc = await stack.enter_async_context(RpcClient(endpoint.rpc_url))
            served = int(await rpc.call("eth_chainId"), 16)
            if served != endpoint.chain_id:
                raise ConfigError(
                    f"chain.watch: {endpoint.rpc_url} serves chain {served}, not {endpoint.chain_id}"
                )
            chains.append(OtherChain(endpoint, rpc))
        yield chains


PROBE = b"import time; print(int(time.time()))"


async def working_sandbox(role: str, backend: str = "bwrap") -> Sandbox | None:
    """The sandbox `backend` names (`[node] sandbox`), if it runs a script on this machine;
    else None, said in one line."""
    try:
        sandbox = BwrapSandbox() if backend == "bwrap" else DockerSandbox()
        # A script that reads the clock: it must run, and read the time it is given.
        probe = await sandbox.run(Script("python", PROBE, env={"TRIGGERX_TIME": "1000000000"}))
        problem = None if probe.status == "ok" else f"a test script {probe.reason}"
        if problem is None and probe.stdout != b"1000000000\n":
            problem = f"a test script read the clock as {probe.stdout[:40]!r}, not as it was given"
    except (OSError, UnsupportedArchitectureError, DockerUnavailableError) as error:
        problem = str(error)
    if problem is not None:
        refused = "jobs with scripts are refused"
        log.warning("%s: the %s sandbox does not work here (%s): %s", role, backend, problem, refused)
        return None
    return sandbox


@asynccontextmanager
async def open_scripts(setup: NodeSetup) -> AsyncIterator[ScriptRunner | None]:
    """Runs jobs' scripts, fetched from `[node] script_sources` and cached in the data
    directory, their web requests through a fetcher of their own (a slow host of one script
    takes no slot of condition sources); None when the sandbox does not work here."""
    sandbox = await working_sandbox("keeper", setup.config.settings.node.sandbox)
    if sandbox is None:
        yield None
        return
    settings = setup.config.settings.node
    cache = ScriptCache(settings.data_dir / "scripts")
    fetcher = ScriptFetcher([str(source) for source in settings.script_sources], cache)
    try:
        async with scripts_web(setup) as web:
            yield ScriptRunner(fetcher, sandbox, web)
    finally:
        await fetcher.aclose()


def scripts_web(setup: NodeSetup) -> WebFetcher:
    """The fetcher of scripts' web requests (node/sandbox/proxy.py)."""
    return WebFetcher(WebLimits(allow_private=setup.config.settings.node.private_http_sources))


def chain_nodes(home: Chain, others: list[OtherChain]) -> dict[int, RpcClient]:
    """The node of every chain this node reads, by chain id."""
    return {home.chain_id: home.rpc, **{other.endpoint.chain_id: other.rpc for other in others}}


@asynccontextmanager
async def open_mesh(setup: NodeSetup, directory: OperatorDirectory) -> AsyncIterator[MeshNode]:
    """This node's mesh host, bootstrapped to the genesis's aggregators."""
    settings = setup.config.settings
    config = MeshConfig(
        chain_id=setup.genesis.chain_id,
        listen=settings.mesh.listen,
        bootstrap=tuple(settings.mesh.bootstrap or setup.genesis.aggregator_bootstrap),
    )
    # Peer admission needs every peer id of the network, the gateway's included (see Genesis).
    admits = directory.allows_peer if setup.genesis.dispatcher_peer_id is not None else None
    async with MeshNode(
        setup.identity, setup.operator, directory.is_active, config, allowed_peers=admits
    ) as mesh:
        yield mesh


def aggregator_peers(setup: NodeSetup) -> list[str]:
    """The peer ids of the aggregators (from the genesis's bootstrap multiaddrs)."""
    return [parse_peer_addr(address).peer_id.to_base58() for address in setup.genesis.aggregator_bootstrap]

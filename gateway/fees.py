"""What a job's tasks will cost: an estimate from the target's gas, the chain's fee history and
the hub's own cost of an execution (GET /api/jobs/fees).

    targetGas     = eth_estimateGas of the call, sent from the owner's forwarder (as the hub
                    sends it), at most the job's gasLimit
    gas           = targetGas + EXECUTION_OVERHEAD_GAS (the hub's admission, escrow and forward)
    price         = baseFee of the next block + the median priority fee of the last
                    FEE_HISTORY_BLOCKS blocks (eth_feeHistory, 50th percentile)
    feePerTask    = gas × price
    suggestedMaxFeePerTask = (gasLimit + EXECUTION_OVERHEAD_GAS) × (2 × baseFee + priority fee)

The suggested cap covers a call that uses all its gas limit while the base fee doubles (six
full blocks in a row): a job whose cap is below a task's real cost is refused by keepers.
The fee history is read at most once per FEE_HISTORY_SECONDS for all callers, and at most
MAX_ESTIMATES gas estimates run at once: a caller cannot make the gateway's node work harder
than one estimate per request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import msgspec
import trio

from gateway.intake import EXECUTION_OVERHEAD_GAS
from node.chain import ChainError, Contract, RevertError

FEE_HISTORY_BLOCKS = 20
FEE_HISTORY_SECONDS = 2.0
MAX_ESTIMATES = 4
ESTIMATE_TIMEOUT = 5.0


class FeeEstimate(msgspec.Struct, rename="camel", kw_only=True):
    """An estimate of one task's cost, in wei (decimal strings) and gas; see gateway.fees."""

    target_gas: int
    overhead_gas: int
    base_fee_per_gas: str
    priority_fee_per_gas: str
    fee_per_task: str
    suggested_max_fee_per_task: str
    tasks: int
    total: str
    block_number: int


class FeeEstimateError(Exception):
    """The call cannot be estimated (it reverts now, or the chain did not answer)."""


@dataclass
class FeeEstimator:
    """Estimates tasks' fees on the chain of `hub`."""

    hub: Contract
    _history: tuple[float, int, int, int] | None = None  # (read at, block, base fee, priority fee)
    _estimates: trio.CapacityLimiter = field(default_factory=lambda: trio.CapacityLimiter(MAX_ESTIMATES))

    async def estimate(
        self, owner: str, target: str, calldata: bytes, gas_limit: int, tasks: int
    ) -> FeeEstimate:
        """The cost of `tasks` tasks calling `target` with `calldata` for `owner`."""
        block, base_fee, priority = await self._fees()
        try:
            with trio.fail_after(ESTIMATE_TIMEOUT):
                async with self._estimates:
                    forwarder = await self.hub.call("forwarderOf", owner)
                    call = {
                        "from": forwarder,
                        "to": target,
                        "data": "0x" + calldata.hex(),
                        "gas": hex(gas_limit),
                    }
                    target_gas = int(await self.hub.rpc.call("eth_estimateGas", call), 16)
        except RevertError as error:
            raise FeeEstimateError(f"the call reverts now: {error}") from None
        except (ChainError, trio.TooSlowError) as error:
            raise FeeEstimateError(f"the chain did not estimate the call: {error}") from None
        target_gas = min(target_gas, gas_limit)
        per_task = (target_gas + EXECUTION_OVERHEAD_GAS) * (base_fee + priority)
        cap = (gas_limit + EXECUTION_OVERHEAD_GAS) * (2 * base_fee + priority)
        return FeeEstimate(
            target_gas=target_gas,
            overhead_gas=EXECUTION_OVERHEAD_GAS,
            base_fee_per_gas=str(base_fee),
            priority_fee_per_gas=str(priority),
            fee_per_task=str(per_task),
            suggested_max_fee_per_task=str(cap),
            tasks=tasks,
            total=str(per_task * tasks),
            block_number=block,
        )

    async def _fees(self) -> tuple[int, int, int]:
        """(latest block, next base fee, median priority fee), read at most every FEE_HISTORY_SECONDS."""
        now = time.monotonic()
        if self._history is not None and now - self._history[0] < FEE_HISTORY_SECONDS:
            return self._history[1:]
        try:
            with trio.fail_after(ESTIMATE_TIMEOUT):
                history = await self.hub.rpc.call("eth_feeHistory", hex(FEE_HISTORY_BLOCKS), "latest", [50])
        except (ChainError, trio.TooSlowError) as error:
            raise FeeEstimateError(f"the chain's fee history could not be read: {error}") from None
        rewards = sorted(int(block[0], 16) for block in history.get("reward") or [] if block)
        priority = rewards[len(rewards) // 2] if rewards else 0
        newest = int(history["oldestBlock"], 16) + len(history["baseFeePerGas"]) - 2
        self._history = (now, newest, int(history["baseFeePerGas"][-1], 16), priority)
        return self._history[1:]

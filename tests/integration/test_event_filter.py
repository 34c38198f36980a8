"""The `event` trigger's filter against real logs: ERC-20 transfers on anvil, matched by
address, event and conditions; logs that only look alike (another contract, an ERC-721
`Transfer`, undecodable data) never match."""

from __future__ import annotations

import pytest

from node.chain import deploy, load_artifact
from protocol.triggers import TriggerFire, TriggerSpecError
from protocol.triggers.event import KIND, MAX_LOG_DATA, EventFilter, LogEvidence

TRANSFER = "Transfer(address indexed from, address indexed to, uint256 value)"


def event_filter(addresses: list[str], *where: str, event: str = TRANSFER) -> EventFilter:
    spec = KIND.decode({"chainId": 31337, "addresses": addresses, "event": event, "where": list(where)})
    return EventFilter.of(spec)


@pytest.fixture
async def transfers(rpc, accounts, sender_for):
    """Two tokens; token A mints to accounts 1 and 2 (5 and 2,000,000) and account 1 sends
    account 2 1,500,000 after a mint to itself; token B mints 3,000,000 to account 2. Every
    log of the chain since, as eth_getLogs returns it."""
    minter = sender_for(accounts[0])
    token_a = await deploy(minter, load_artifact("TestToken"), "A", "A")
    token_b = await deploy(minter, load_artifact("TestToken"), "B", "B")
    await token_a.transact(minter, "mint", accounts[1].address, 5)
    await token_a.transact(minter, "mint", accounts[2].address, 2_000_000)
    await token_a.transact(minter, "mint", accounts[1].address, 1_500_000)
    await token_a.transact(sender_for(accounts[1]), "transfer", accounts[2].address, 1_500_000)
    await token_b.transact(minter, "mint", accounts[2].address, 3_000_000)
    logs = await rpc.call("eth_getLogs", {"fromBlock": "0x0", "toBlock": "latest"})
    return token_a.address, token_b.address, logs


async def test_filtered_transfers_match_and_the_others_do_not(transfers, accounts):
    token_a, token_b, logs = transfers
    assert len(logs) == 5
    big_to_2 = event_filter([token_a], f"to = {accounts[2].address.lower()}", "value >= 1000000")
    assert [int(log["data"], 16) for log in logs if big_to_2.matches(log)] == [2_000_000, 1_500_000]
    from_1_or_mints = event_filter(
        [token_a, token_b], f"from = {accounts[1].address}|0x0000000000000000000000000000000000000000"
    )
    assert sum(from_1_or_mints.matches(log) for log in logs) == 5
    not_mints = event_filter([token_a, token_b], "from != 0x0000000000000000000000000000000000000000")
    assert [int(log["data"], 16) for log in logs if not_mints.matches(log)] == [1_500_000]
    band = event_filter([token_b, token_a], "value > 5", "value < 3000000")
    assert sorted(int(log["data"], 16) for log in logs if band.matches(log)) == [
        1_500_000,
        1_500_000,
        2_000_000,
    ]
    approvals = event_filter(
        [token_a], event="Approval(address indexed owner, address indexed spender, uint256 value)"
    )
    assert not any(approvals.matches(log) for log in logs)


async def test_logs_that_only_look_alike_never_match(transfers):
    token_a, _, logs = transfers
    every_transfer = event_filter([token_a])
    log = next(log for log in logs if every_transfer.matches(log))
    erc721 = {**log, "topics": [*log["topics"], "0x" + "00" * 31 + "07"], "data": "0x"}  # tokenId indexed
    truncated = {**log, "data": log["data"][:20]}
    garbage = {**log, "topics": ["nonsense"]}
    assert not any(every_transfer.matches(other) for other in (erc721, truncated, garbage, {}))
    bomb = {**log, "data": "0x" + "00" * (MAX_LOG_DATA + 1)}  # longer than any log worth decoding
    assert not every_transfer.matches(bomb)
    as_erc721 = event_filter(
        [token_a], event="Transfer(address indexed from, address indexed to, uint256 indexed id)"
    )
    assert as_erc721.matches(erc721)
    assert not as_erc721.matches(log)


async def test_the_evidence_of_a_log_is_checked_against_the_spec(transfers):
    token_a, _, logs = transfers
    spec = KIND.decode({"chainId": 31337, "addresses": [token_a], "event": TRANSFER})
    log = logs[0]
    evidence = LogEvidence.of(31337, log)
    assert LogEvidence.decode(evidence.encode()) == evidence
    assert (evidence.block_number, evidence.log_index, evidence.address) == (
        int(log["blockNumber"], 16),
        int(log["logIndex"], 16),
        token_a,
    )
    fire = TriggerFire(
        "event", {"chainId": 31337, "addresses": [token_a], "event": TRANSFER}, 1.0, evidence.encode()
    )
    assert KIND.check_fire(spec, fire) is None
    elsewhere = LogEvidence.of(1, log).encode()
    assert "chain 1" in KIND.check_fire(spec, TriggerFire("event", fire.spec, 1.0, elsewhere))
    other_token = LogEvidence.of(31337, logs[-1]).encode()
    assert "not a contract the job watches" in KIND.check_fire(
        spec, TriggerFire("event", fire.spec, 1.0, other_token)
    )
    assert "not an event fire" in KIND.check_fire(spec, TriggerFire("event", fire.spec, 1.0, b"\x01" * 7))


@pytest.mark.parametrize(
    ("spec", "field", "problem"),
    [
        ({"event": "Transfer"}, "event", "expected a declaration"),
        (
            {"event": "Transfer(address indexed from, address to, uint7 value)"},
            "event",
            "uint7 is no Solidity type",
        ),
        ({"event": "Transfer((uint256,uint256) pair)"}, "event", "unsupported type"),
        (
            {"event": "E(uint a, uint indexed b, uint indexed c, uint indexed d, uint indexed e)"},
            "event",
            "at most 3",
        ),
        ({"event": "E(uint a, uint a)"}, "event", "same name"),
        # Review: eth_abi refuses these sizes when decoding (it crashed the follower), and nested
        # or dynamic-element arrays decode overlapping pointers into exponentially many values.
        ({"event": "E(uint8[0] x)"}, "event", "unsupported type 'uint8[0]'"),
        ({"event": "E(uint8[01] x)"}, "event", "unsupported type 'uint8[01]'"),
        ({"event": "E(uint8[][] x)"}, "event", "unsupported type 'uint8[][]'"),
        ({"event": "E(string[] x)"}, "event", "arrays of string are not supported"),
        ({"where": ["amount > 5"]}, "where[0]", "has no parameter 'amount'"),
        ({"where": ["value > 5", "to < 0x" + "11" * 20]}, "where[1]", "compares integers; to is address"),
        ({"where": ["value = 2**70"]}, "where[0]", "is not a uint256"),
        ({"where": ["value = -1"]}, "where[0]", "is not a uint256"),
        ({"where": ["to = 0x1234"]}, "where[0]", "is not an address"),
        ({"where": ["value"]}, "where[0]", "expected `<parameter> <op> <value>`"),
        ({"addresses": ["0x" + "11" * 20, "0x" + "11" * 20]}, "addresses", "listed twice"),
        ({"addresses": ["nowhere"]}, "addresses[0]", "is not an address"),
        ({"addresses": []}, "addresses", "length >= 1"),
        ({"chainId": 0}, "chainId", ">= 1"),
        ({"confirmations": 10**6}, "confirmations", "<= 10000"),
    ],
)
def test_a_bad_spec_is_refused_naming_its_field(spec, field, problem):
    raw = {"chainId": 1, "addresses": ["0x" + "11" * 20], "event": TRANSFER, **spec}
    with pytest.raises(TriggerSpecError) as refused:
        KIND.validate(KIND.decode(raw), 0.0)
    assert refused.value.field == field
    assert problem in refused.value.problem


def test_what_the_owner_signs_is_the_meaning_not_the_spelling():
    """The same event and conditions, however written, sign the same; any change of meaning
    changes the hash."""
    token = "0x" + "ab" * 20
    spelled = event_filter(
        [token.upper().replace("0X", "0x")], "value >= 0x10", event=TRANSFER.replace("uint256", "uint")
    )
    plain = event_filter([token], "value >= 16")
    assert spelled.trigger_hash == plain.trigger_hash
    for changed in (
        event_filter([token], "value > 16"),
        event_filter([token], "value >= 17"),
        event_filter([token]),
        event_filter([token], "value >= 16", event=TRANSFER.replace("address indexed to", "address to")),
    ):
        assert changed.trigger_hash != plain.trigger_hash

"""Our offline ABI codec agrees with web3.py's on our own contracts' calls, events and errors."""

from __future__ import annotations

import pytest
from eth_utils import keccak, to_checksum_address
from web3 import Web3

from node.chain import RevertDecoder, canonical_type, load_artifact, revert_decoder, signature

HUB = load_artifact("TaskExecutionHub")
ASSIGNMENT = {
    "taskId": 2**200 + 5,
    "jobId": 2**255 + 9,
    "attempt": 3,
    "performer": to_checksum_address("0x" + "ab" * 20),
    "deadline": 1_900_000_000,
    "termsHash": b"\x17" * 32,
    "triggerEvidence": b"\x42" * 32,
}
TERMS = {
    "target": to_checksum_address("0x" + "ef" * 20),
    "selector": b"\xd0\x9d\xe0\x8a",
    "argsMode": 0,
    "argsHash": b"\x21" * 32,
    "gasLimit": 2**63,
    "maxFeePerTask": 2**256 - 1,
    "trigger": b"\x33" * 32,
}


def test_struct_call_encoding_matches_web3():
    w3 = Web3()
    contract = w3.eth.contract(abi=HUB.abi.items)
    rest = (b"\xd0\x9d\xe0\x8a" + b"\x00" * 40, 12345, b"\x01" * 65)
    theirs = contract.encode_abi("execute", args=[tuple(ASSIGNMENT.values()), tuple(TERMS.values()), *rest])
    assert "0x" + HUB.abi.encode_call("execute", (ASSIGNMENT, TERMS, *rest)).hex() == theirs


def test_struct_given_as_tuple_or_dict_encodes_the_same():
    as_tuple = HUB.abi.encode_call("assignmentDigest", (tuple(ASSIGNMENT.values()),))
    assert as_tuple == HUB.abi.encode_call("assignmentDigest", (ASSIGNMENT,))
    with pytest.raises(ValueError, match="lacks deadline"):
        HUB.abi.encode_call("assignmentDigest", ({k: v for k, v in ASSIGNMENT.items() if k != "deadline"},))


def test_canonical_types_and_signatures():
    execute = HUB.abi.function("execute")
    assert canonical_type(execute["inputs"][0]) == "(uint256,uint256,uint32,address,uint64,bytes32,bytes32)"
    assert canonical_type(execute["inputs"][1]) == "(address,bytes4,uint8,bytes32,uint64,uint256,bytes32)"
    assert signature(execute).startswith("execute((uint256,")


def test_event_decoding_matches_web3():
    w3 = Web3()
    registry = HUB
    contract = w3.eth.contract(abi=registry.abi.items)
    performer = "0x" + "22" * 20
    log = {
        "address": "0x" + "33" * 20,
        "topics": [
            registry.abi.event_topic("FeeReleased"),
            "0x" + (77).to_bytes(32, "big").hex(),
            "0x" + "00" * 12 + performer[2:],
        ],
        "data": "0x" + (5 * 10**15).to_bytes(32, "big").hex() + (1).to_bytes(32, "big").hex(),
        "blockNumber": "0x10",
        "transactionHash": "0x" + "44" * 32,
        "logIndex": "0x2",
        "blockHash": "0x" + "55" * 32,
        "transactionIndex": "0x0",
        "removed": False,
    }
    ours = registry.abi.decode_log(log)
    theirs = contract.events.FeeReleased().process_log(log)
    assert ours.args == dict(theirs["args"])
    assert (ours.name, ours.block_number, ours.log_index) == ("FeeReleased", 16, 2)
    assert registry.abi.decode_log({**log, "topics": ["0x" + "00" * 32]}) is None


def test_revert_decoding_of_standard_and_custom_errors():
    decoder = revert_decoder()
    panic = keccak(text="Panic(uint256)")[:4] + (0x11).to_bytes(32, "big")
    assert decoder.decode(panic).reason == "panic 0x11: arithmetic overflow or underflow"
    assert decoder.decode(b"").reason == "no reason given"
    fee = keccak(text="FeeAboveMax(uint256,uint256)")[:4] + (5).to_bytes(32, "big") + (4).to_bytes(32, "big")
    assert decoder.decode(fee).reason == "FeeAboveMax(fee=5, maxFee=4)"
    assert RevertDecoder().decode(fee).reason.startswith("unrecognised revert data 0x")
    truncated = keccak(text="Error(string)")[:4] + b"\x00" * 5
    assert decoder.decode(truncated).reason.startswith("unrecognised revert data")

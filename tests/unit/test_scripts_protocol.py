"""Jobs with script arguments, without a chain: what the owner signs, what a script reads, and
what it must print."""

from __future__ import annotations

import re

import pytest

from node.content import script_cid
from protocol import encode_calldata
from protocol.scripts import (
    ChainBlock,
    ScriptCall,
    ScriptOutputError,
    decision_from_output,
    input_block,
    script_input,
)
from protocol.triggers import TriggerFire

CID = script_cid(b"print('[7]')")
CALL = ScriptCall(CID, "python", "incrementBy(uint256)")


def test_the_signed_hash_binds_the_script_its_language_and_its_function():
    assert len({CALL.args_hash,
                ScriptCall(script_cid(b"other"), "python", CALL.function).args_hash,
                ScriptCall(CID, "javascript", CALL.function).args_hash,
                ScriptCall(CID, "python", "incrementBy(uint128)").args_hash}) == 4  # fmt: skip


def test_a_script_input_names_its_block_and_nothing_is_read_twice_differently():
    fire = TriggerFire("interval", {"everySeconds": 5}, 1_767_225_600.5, b"\x01")
    block = ChainBlock(31337, 12, 1_767_225_601)
    document = script_input(2**200, "0x" + "ab" * 20, CALL, fire, block)
    assert input_block(document) == block
    assert b'"id":"' + str(2**200).encode() in document  # beyond 2**53: a string
    with pytest.raises(ValueError, match="not a script input"):
        input_block(b'{"chain": {"blockNumber": "12"}}')
    with pytest.raises(ValueError, match="at most"):
        input_block(b" " * 10_000)


@pytest.mark.parametrize(
    ("stdout", "problem"),
    [
        (b"seven", "not JSON"),
        (b"", "not JSON"),
        (b'{"args": [7]}', "neither an argument array nor a decision"),
        (b'{"shouldExecute": true, "args": [7], "extra": 1}', "neither an argument array nor a decision"),
        (b'{"shouldExecute": false, "reason": "' + b"x" * 201 + b'"}', "neither an argument array nor"),
        (b'{"shouldExecute": true}', "gives no args"),
        (b'["x"]', "do not fit incrementBy(uint256)"),
        (b"[7, 8]", "do not fit"),
        (b'{"shouldExecute": true, "args": [7, 8]}', "do not fit"),
        (b"[" * 40 + b"]" * 40, "nests deeper than 32"),
    ],
)
def test_an_output_that_is_neither_arguments_nor_a_decision_is_refused(stdout, problem):
    with pytest.raises(ScriptOutputError, match=re.escape(problem)):
        decision_from_output("incrementBy(uint256)", stdout)


def test_a_script_prints_its_arguments_or_a_custom_logic_decision():
    seven = encode_calldata("incrementBy(uint256)", [7])
    assert decision_from_output("incrementBy(uint256)", b" [7]\n") == (seven, "")
    decided = b'{"shouldExecute": true, "args": [7], "reason": "price above 3000"}'
    assert decision_from_output("incrementBy(uint256)", decided) == (seven, "price above 3000")
    declined = b'{"shouldExecute": false, "reason": "not yet"}'
    assert decision_from_output("incrementBy(uint256)", declined) == (b"", "not yet")
    assert decision_from_output("incrementBy(uint256)", b'{"shouldExecute": false}') == (b"", "")

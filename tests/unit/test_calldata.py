"""Calldata from untrusted signatures and JSON arguments: right selectors, bounded work, named errors."""

from __future__ import annotations

import sys

import eth_abi
import eth_account  # noqa: F401  (imports py_ecc, which raises the recursion limit as in production)
import pytest
from eth_utils import keccak

from protocol import CalldataError, canonical_signature, encode_calldata, parse_signature

# The module's limits, tested here (not the gateway's API).
from protocol.calldata import MAX_SIGNATURE_LENGTH, MAX_VALUE_BYTES, MAX_VALUES

ADDRESS = "0x" + "22" * 20


def refusal(signature: str, args: list | None = None) -> CalldataError:
    with pytest.raises(CalldataError) as caught:
        parse_signature(signature) if args is None else encode_calldata(signature, args)
    return caught.value


@pytest.mark.timeout(10)  # before the fix these took 39 s and 11 s; a hang must not stall the suite
@pytest.mark.parametrize(
    "signature",
    [
        "f" + "(" * 1000 + "uint256" + ")" * 1000,
        "f(uint256" + "[]" * 1000 + ")",
        "f(" + "(" * 1000 + ")" * 1000,  # unbalanced garbage of the same size
    ],
)
def test_finding5_nested_type_string_is_refused_fast(signature):
    assert sys.getrecursionlimit() >= 100_000  # the condition that made eth_abi's grammar so slow
    error = refusal(signature)
    assert error.field == "function"
    assert f"at most {MAX_SIGNATURE_LENGTH}" in error.problem
    assert signature not in str(error)  # the message quotes an excerpt, not 2 KB of parentheses


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("signature", "problem"),
    [
        ("f((((((uint256))))))", "tuples nested more than 4 deep"),
        ("f(uint256[][][][][])", "more than 4 array dimensions"),
        ("f(" + ",".join(["bool"] * 33) + ")", "more than 32 parameters in a function"),
        ("f((" + ",".join(["bool"] * 33) + "))", "more than 32 parameters in a tuple"),
        ("f(uint8[1025])", "a fixed array length must be 1 to 1024, not 1025"),
        ("f(uint8[0])", "a fixed array length must be 1 to 1024, not 0"),
        ("f(uint8[99999999999])", "length of at most 6 digits"),
        ("f(uint256[1024][1024])", f"would hold 1049601 values, at most {MAX_VALUES}"),
    ],
)
def test_finding5_short_hostile_types_hit_a_named_limit(signature, problem):
    error = refusal(signature)
    assert error.field == "function"
    assert problem in error.problem


@pytest.mark.parametrize(
    ("signature", "problem"),
    [
        ("increment", "expected name(type,...)"),
        ("1f()", "expected name(type,...)"),
        ("f(uint7)", "'uint7' is not an ABI type: uint sizes are 8 to 256 bits in steps of 8"),
        ("f(int264)", "int sizes are 8 to 256 bits"),
        ("f(uint08)", "'uint08' is not an ABI type"),
        ("f(bytes33)", "bytes sizes are 1 to 32 bytes"),
        ("f(bytes0)", "bytes sizes are 1 to 32 bytes"),
        ("f(fixed128x18)", "fixed-point types are not supported"),
        ("f(foo)", "'foo' is not an ABI type"),
        ("f(Uint256)", "expected a type at position 2"),
        ("f(())", "an empty tuple () is not an ABI type"),
        ("f(,)", "expected a type"),
        ("f(uint256", "expected ',' or ')'"),
        ("f()x", "unexpected text after the closing ')'"),
        ("f(uint[x])", "expected [] or [length]"),
    ],
)
def test_bad_signatures_say_what_is_wrong(signature, problem):
    assert problem in refusal(signature).problem


@pytest.mark.parametrize(
    ("signature", "canonical"),
    [
        ("transfer(address,uint)", "transfer(address,uint256)"),
        ("f(int, uint[2][] , (uint,bool)[])", "f(int256,uint256[2][],(uint256,bool)[])"),
        ("increment()", "increment()"),
        ("f(((((bytes32)))))", "f(((((bytes32)))))"),
        ("f(uint8[][][][])", "f(uint8[][][][])"),
    ],
)
def test_signatures_are_made_canonical(signature, canonical):
    assert canonical_signature(signature) == canonical


def test_the_selector_is_of_the_canonical_signature():
    calldata = encode_calldata("transfer(address,uint)", [ADDRESS, "1000"])
    assert calldata[:4] == keccak(text="transfer(address,uint256)")[:4] == bytes.fromhex("a9059cbb")
    assert calldata[4:] == eth_abi.encode(["address", "uint256"], [ADDRESS, 1000])


def test_nested_values_encode_like_eth_abi():
    signature = "f((uint8,bool,bytes)[],bytes4[2],string,int16)"
    args = [[["7", True, "0xbeef"], [8, False, "0x"]], ["0x01020304", "0x05"], "hé", "-0x10"]
    expected = eth_abi.encode(
        ["(uint8,bool,bytes)[]", "bytes4[2]", "string", "int16"],
        [[(7, True, b"\xbe\xef"), (8, False, b"")], [b"\x01\x02\x03\x04", b"\x05"], "hé", -16],
    )
    assert encode_calldata(signature, args) == keccak(text=signature)[:4] + expected


@pytest.mark.parametrize(
    ("signature", "args", "field", "problem"),
    [
        ("f(uint256)", ["five"], "args[0]", "'five' is not an integer"),
        ("f(uint256)", [True], "args[0]", "expected an integer"),
        ("f(uint8)", [256], "args[0]", "256 is outside the range of uint8 (0 to 255)"),
        ("f(int8)", ["-129"], "args[0]", "outside the range of int8 (-128 to 127)"),
        ("f(uint256)", ["9" * 100], "args[0]", "is too long for a uint256"),
        ("f(uint256)", [2**300], "args[0]", "an integer of 301 bits is outside the range"),
        ("f(address)", ["0x1234"], "args[0]", "is not an address"),
        ("f(bool)", [1], "args[0]", "expected true or false"),
        ("f(bytes2)", ["0x123456"], "args[0]", "3 bytes do not fit in bytes2"),
        ("f(bytes)", ["0xabc"], "args[0]", "expected 0x-hex bytes"),
        ("f(string)", [5], "args[0]", "expected a string"),
        ("f(uint256[2])", [[1]], "args[0]", "expected 2 values for uint256[2], got 1"),
        ("f((uint256,bool))", [{"a": 1}], "args[0]", "expected a list of 2 values for (uint256,bool)"),
        ("f(uint256[][])", [[[1], ["x"]]], "args[0][1][0]", "'x' is not an integer"),
        ("f(uint256)", [1, 2], "args", "f takes 1 argument, got 2"),
        ("f(uint256)", "1", "args", "expected a list of arguments"),
    ],
)
def test_bad_arguments_are_named_by_their_path(signature, args, field, problem):
    error = refusal(signature, args)
    assert (error.field, str(error).startswith(field)) == (field, True)
    assert problem in error.problem


@pytest.mark.timeout(10)
def test_argument_sizes_are_bounded_before_the_work():
    # A million-element list is refused on its length, before any element is looked at.
    error = refusal("f(uint256[])", [list(range(1_000_000))])
    assert (error.field, f"more than {MAX_VALUES} values" in error.problem) == ("args[0]", True)
    error = refusal("f(uint8[][])", [[[1] * 600, [1] * 600]])
    assert (error.field, f"more than {MAX_VALUES} values" in error.problem) == ("args[0][1]", True)
    error = refusal("f(bytes,bytes)", ["0x" + "ab" * MAX_VALUE_BYTES, "0x01"])
    assert (error.field, f"exceed {MAX_VALUE_BYTES} bytes" in error.problem) == ("args[1]", True)
    error = refusal("f(string)", ["x" * 10_000_000])
    assert f"exceed {MAX_VALUE_BYTES} bytes" in error.problem
    # Exactly at the limits still encodes.
    assert len(encode_calldata("f(uint8[])", [[1] * (MAX_VALUES - 2)])) > MAX_VALUES * 32
    assert len(encode_calldata("f(bytes)", ["0x" + "ab" * MAX_VALUE_BYTES])) > MAX_VALUE_BYTES

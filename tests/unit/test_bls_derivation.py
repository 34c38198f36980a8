"""EIP-2333 key derivation against the EIP's test cases, and EIP-2334 paths."""

from __future__ import annotations

import pytest

from node.bls import derive_child_secret, derive_master_secret, derive_path, signing_key_path

# The module's path template, tested here (not node.bls's API).
from node.bls.derivation import SIGNING_KEY_PATH

# The four test cases of EIP-2333 ("Test Cases"), copied from ERCS/erc-2333.md in ethereum/ERCs:
# seed, master_SK, child_index, child_SK (keys as the EIP's decimal integers).
EIP_2333_CASES = [
    pytest.param(
        "c55257c360c07c72029aebc1b53c05ed0362ada38ead3e3e9efa3708e53495531f09a6987599d18264c1e1c92f2cf141630c7a3c4ab7c81b2f001698e7463b04",
        6083874454709270928345386274498605044986640685124978867557563392430687146096,
        0,
        20397789859736650942317412262472558107875392172444076792671091975210932703118,
        id="case0",
    ),
    pytest.param(
        "3141592653589793238462643383279502884197169399375105820974944592",
        29757020647961307431480504535336562678282505419141012933316116377660817309383,
        3141592653,
        25457201688850691947727629385191704516744796114925897962676248250929345014287,
        id="case1",
    ),
    pytest.param(
        "0099FF991111002299DD7744EE3355BBDD8844115566CC55663355668888CC00",
        27580842291869792442942448775674722299803720648445448686099262467207037398656,
        4294967295,
        29358610794459428860402234341874281240803786294062035874021252734817515685787,
        id="case2",
    ),
    pytest.param(
        "d4e56740f876aef8c010b86a40d5f56745a118d0906a34e69aec8c0db1cb8fa3",
        19022158461524446591288038168518313374041767046816487870552872741050760015818,
        42,
        31372231650479070279774297061823572166496564838472787488249775572789064611981,
        id="case3",
    ),
]

SEED = bytes(range(32))


@pytest.mark.parametrize(("seed", "master", "index", "child"), EIP_2333_CASES)
def test_eip_2333_test_cases(seed, master, index, child):
    master_secret = derive_master_secret(bytes.fromhex(seed))
    assert master_secret == master.to_bytes(32, "big")
    assert derive_child_secret(master_secret, index) == child.to_bytes(32, "big")


def test_seed_shorter_than_32_bytes_is_rejected():
    with pytest.raises(ValueError, match="at least 32 bytes, not 31"):
        derive_master_secret(bytes(31))
    with pytest.raises(ValueError, match="at least 32 bytes"):
        derive_path(bytes(16), "m/0")


@pytest.mark.parametrize("index", [-1, 2**32])
def test_child_index_out_of_range_is_rejected(index):
    with pytest.raises(ValueError, match=r"\[0, 2\*\*32\)"):
        derive_child_secret(derive_master_secret(SEED), index)


def test_parent_of_wrong_length_is_rejected():
    with pytest.raises(ValueError, match="32 bytes, not 31"):
        derive_child_secret(bytes(31), 0)


def test_path_derives_child_by_child():
    master = derive_master_secret(SEED)
    assert derive_path(SEED, "m") == master
    assert derive_path(SEED, "m/0") == derive_child_secret(master, 0)
    expected = master
    for index in (12381, 3600, 7, 0, 0):
        expected = derive_child_secret(expected, index)
    assert derive_path(SEED, signing_key_path(7)) == expected


def test_signing_key_path():
    assert SIGNING_KEY_PATH == "m/12381/3600/{index}/0/0"
    assert signing_key_path(0) == "m/12381/3600/0/0/0"
    assert signing_key_path(4294967295) == "m/12381/3600/4294967295/0/0"
    with pytest.raises(ValueError, match="validator index"):
        signing_key_path(-1)


@pytest.mark.parametrize(
    ("path", "bad_part"),
    [
        ("", "''"),
        ("M/0", "'M'"),
        ("0/1", "'0'"),
        ("/m/0", "''"),
        ("m/", "''"),
        ("m//0", "''"),
        ("m/x", "'x'"),
        ("m/-1", "'-1'"),
        ("m/+1", "'\\+1'"),
        ("m/ 1", "' 1'"),
        ("m/0x10", "'0x10'"),
        ("m/01", "'01'"),
        ("m/4294967296", "'4294967296'"),
        ("m/12381/3600/0/0/٣", "'٣'"),
    ],
)
def test_malformed_path_is_rejected_naming_the_bad_part(path, bad_part):
    with pytest.raises(ValueError, match=f"key path .*: .*{bad_part}"):
        derive_path(SEED, path)

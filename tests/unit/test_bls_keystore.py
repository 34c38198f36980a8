"""EIP-2335 keystores: the EIP's test vectors, round trips, refusals and password input."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import stat

import pytest

from node.bls import (
    InvalidKeystoreError,
    Keystore,
    KeystoreError,
    WrongPasswordError,
    choose_backend,
    process_password,
    read_password,
)

# The EIP-2335 "Test Cases", copied from ERCS/erc-2335.md in ethereum/ERCs.
PASSWORD = "𝔱𝔢𝔰𝔱𝔭𝔞𝔰𝔰𝔴𝔬𝔯𝔡🔑"
ENCODED_PASSWORD = bytes.fromhex("7465737470617373776f7264f09f9491")
SECRET = bytes.fromhex("000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f")
SCRYPT_VECTOR = """
{
    "crypto": {
        "kdf": {
            "function": "scrypt",
            "params": {
                "dklen": 32,
                "n": 262144,
                "p": 1,
                "r": 8,
                "salt": "d4e56740f876aef8c010b86a40d5f56745a118d0906a34e69aec8c0db1cb8fa3"
            },
            "message": ""
        },
        "checksum": {
            "function": "sha256",
            "params": {},
            "message": "d2217fe5f3e9a1e34581ef8a78f7c9928e436d36dacc5e846690a5581e8ea484"
        },
        "cipher": {
            "function": "aes-128-ctr",
            "params": {
                "iv": "264daa3f303d7259501c93d997d84fe6"
            },
            "message": "06ae90d55fe0a6e9c5c3bc5b170827b2e5cce3929ed3f116c2811e6366dfe20f"
        }
    },
    "description": "This is a test keystore that uses scrypt to secure the secret.",
    "pubkey": "9612d7a727c9d0a22e185a1c768478dfe919cada9266988cb32359c11f2b7b27f4ae4040902382ae2910c15e2b420d07",
    "path": "m/12381/60/3141592653/589793238",
    "uuid": "1d85ae20-35c5-4611-98e8-aa14a633906f",
    "version": 4
}
"""  # noqa: E501 (the EIP's JSON, verbatim)
PBKDF2_VECTOR = """
{
    "crypto": {
        "kdf": {
            "function": "pbkdf2",
            "params": {
                "dklen": 32,
                "c": 262144,
                "prf": "hmac-sha256",
                "salt": "d4e56740f876aef8c010b86a40d5f56745a118d0906a34e69aec8c0db1cb8fa3"
            },
            "message": ""
        },
        "checksum": {
            "function": "sha256",
            "params": {},
            "message": "8a9f5d9912ed7e75ea794bc5a89bca5f193721d30868ade6f73043c6ea6febf1"
        },
        "cipher": {
            "function": "aes-128-ctr",
            "params": {
                "iv": "264daa3f303d7259501c93d997d84fe6"
            },
            "message": "cee03fde2af33149775b7223e7845e4fb2c8ae1792e5f99fe9ecf474cc8c16ad"
        }
    },
    "description": "This is a test keystore that uses PBKDF2 to secure the secret.",
    "pubkey": "9612d7a727c9d0a22e185a1c768478dfe919cada9266988cb32359c11f2b7b27f4ae4040902382ae2910c15e2b420d07",
    "path": "m/12381/60/0/0",
    "uuid": "64625def-3331-4eea-ab6f-782f3ed16a83",
    "version": 4
}
"""  # noqa: E501 (the EIP's JSON, verbatim)
SMALL_WORK = {"scrypt_n": 2**10, "pbkdf2_c": 2**10}


def small_keystore(kdf="scrypt", password="correct horse", **kwargs) -> Keystore:
    return Keystore.encrypt(SECRET, password, kdf=kdf, **SMALL_WORK, **kwargs)


@pytest.mark.parametrize("vector", [SCRYPT_VECTOR, PBKDF2_VECTOR], ids=["scrypt", "pbkdf2"])
def test_eip_2335_test_vectors_decrypt(vector):
    keystore = Keystore.from_json(vector)
    assert keystore.decrypt(PASSWORD) == SECRET
    assert keystore.pubkey == choose_backend().secret_to_public(SECRET).hex()
    # Nothing is lost or added in a parse and re-serialisation.
    assert json.loads(keystore.to_json()) == json.loads(vector)


def test_password_processing_matches_the_eip():
    assert process_password(PASSWORD) == ENCODED_PASSWORD


def test_password_processing_strips_control_codes_only():
    assert process_password("a\x00b\x1fc\x7fd\x80e\x9ff g\xa0") == b"abcdef g "
    # NFKD first: the ligature decomposes, the accent becomes a combining character.
    assert process_password("ﬁé") == "fie\u0301".encode()


@pytest.mark.parametrize("kdf", ["scrypt", "pbkdf2"])
def test_round_trip(kdf):
    keystore = small_keystore(kdf, path="m/12381/3600/0/0/0", description="operator 0")
    parsed = Keystore.from_json(keystore.to_json())
    assert parsed == keystore
    assert parsed.decrypt("correct horse") == SECRET
    assert parsed.crypto.kdf.salt != small_keystore(kdf).crypto.kdf.salt
    document = json.loads(keystore.to_json())
    assert document["crypto"]["kdf"]["function"] == kdf
    assert document["path"] == "m/12381/3600/0/0/0"
    assert document["version"] == 4


def test_encrypt_refuses_what_it_could_not_load_back():
    with pytest.raises(ValueError, match="32 bytes"):
        Keystore.encrypt(SECRET[1:], "pw", scrypt_n=2**10)
    with pytest.raises(InvalidKeystoreError, match=r"crypto\.kdf\.params\.n: expected a power of two"):
        Keystore.encrypt(SECRET, "pw", scrypt_n=1000)


def test_wrong_password_is_refused_clearly():
    keystore = small_keystore()
    with pytest.raises(WrongPasswordError, match=f"^wrong password for keystore 0x{keystore.pubkey}$"):
        keystore.decrypt("incorrect horse")


def test_tampered_cipher_message_is_refused():
    keystore = small_keystore("pbkdf2")
    message = bytearray(keystore.crypto.cipher_message)
    message[0] ^= 1
    tampered = dataclasses.replace(
        keystore, crypto=dataclasses.replace(keystore.crypto, cipher_message=bytes(message))
    )
    with pytest.raises(WrongPasswordError):
        tampered.decrypt("correct horse")


def test_pubkey_of_another_key_is_refused():
    other = choose_backend().secret_to_public((7).to_bytes(32, "big")).hex()
    keystore = dataclasses.replace(small_keystore(), pubkey=other)
    with pytest.raises(InvalidKeystoreError, match="pubkey: not the public key"):
        keystore.decrypt("correct horse")


def _delete(key):
    def edit(obj):
        del obj[key]

    return edit


def _set(key, value):
    def edit(obj):
        obj[key] = value

    return edit


@pytest.mark.parametrize(
    ("where", "edit", "message"),
    [
        ("kdf.params", _delete("salt"), "crypto.kdf.params.salt: missing"),
        ("kdf.params", _set("salt", 123), "crypto.kdf.params.salt: expected a hex string"),
        ("kdf.params", _set("salt", "0xd4e5"), "crypto.kdf.params.salt: expected a hex string"),
        ("kdf.params", _set("salt", "d4e"), "crypto.kdf.params.salt: expected a hex string"),
        ("kdf.params", _set("salt", "d4e5"), "crypto.kdf.params.salt: expected 16 to 1024 bytes, got 2"),
        ("kdf.params", _set("dklen", 64), "crypto.kdf.params.dklen: expected 32, got 64"),
        ("kdf.params", _set("dklen", "32"), "crypto.kdf.params.dklen: expected an integer"),
        ("kdf.params", _set("n", True), "crypto.kdf.params.n: expected an integer"),
        ("kdf.params", _set("n", 262143), "crypto.kdf.params.n: expected a power of two"),
        ("kdf.params", _set("n", 2**30), "crypto.kdf.params.n: expected a power of two"),
        ("kdf.params", _set("r", 1024), "crypto.kdf.params.r: expected an integer in"),
        ("kdf.params", _delete("p"), "crypto.kdf.params.p: missing"),
        ("kdf", _set("function", "argon2"), "crypto.kdf.function: expected 'pbkdf2' or 'scrypt'"),
        ("kdf", _set("params", []), "crypto.kdf.params: expected an object"),
        ("kdf", _delete("message"), "crypto.kdf.message: missing"),
        ("checksum", _set("function", "keccak256"), "crypto.checksum.function: expected 'sha256'"),
        ("checksum", _set("message", "d2"), "crypto.checksum.message: expected 32 bytes, got 1"),
        ("checksum", _set("params", {"x": 1}), "crypto.checksum.params: expected {}"),
        ("cipher", _set("function", "aes-256-gcm"), "crypto.cipher.function: expected 'aes-128-ctr'"),
        ("cipher.params", _set("iv", "264d"), "crypto.cipher.params.iv: expected 16 bytes, got 2"),
        ("cipher", _delete("message"), "crypto.cipher.message: missing"),
        ("", _delete("crypto"), "crypto: missing"),
        ("", _set("crypto", "{}"), "crypto: expected an object"),
        ("", _delete("path"), "path: missing"),
        ("", _set("path", 0), "path: expected a string"),
        ("", _set("uuid", "not-a-uuid"), "uuid: expected a UUID"),
        ("", _set("version", 3), "version: expected 4, got 3"),
        ("", _set("version", "4"), "version: expected an integer"),
        ("", _set("pubkey", "9612"), "pubkey: expected 48 bytes, got 2"),
        ("", _set("description", None), "description: expected a string"),
    ],
)
def test_malformed_keystore_names_the_field(where, edit, message):
    document = copy.deepcopy(json.loads(SCRYPT_VECTOR))
    target = document if not where else document["crypto"]
    for key in filter(None, where.split(".")):
        target = target[key]
    edit(target)
    with pytest.raises(InvalidKeystoreError, match="^" + re.escape(message)):
        Keystore.from_json(json.dumps(document))


def test_pbkdf2_parameters_are_checked():
    document = json.loads(PBKDF2_VECTOR)
    document["crypto"]["kdf"]["params"]["prf"] = "hmac-sha512"
    with pytest.raises(InvalidKeystoreError, match=r"crypto\.kdf\.params\.prf: expected 'hmac-sha256'"):
        Keystore.from_json(json.dumps(document))
    document["crypto"]["kdf"]["params"] |= {"prf": "hmac-sha256", "c": 2**40}
    with pytest.raises(InvalidKeystoreError, match=r"crypto\.kdf\.params\.c: expected an integer in"):
        Keystore.from_json(json.dumps(document))


@pytest.mark.parametrize("text", ["", "{", "[]", "null"])
def test_non_object_is_refused(text):
    with pytest.raises(InvalidKeystoreError):
        Keystore.from_json(text)


def test_optional_fields_default_to_empty():
    document = json.loads(PBKDF2_VECTOR)
    del document["description"], document["pubkey"]
    keystore = Keystore.from_json(json.dumps(document))
    assert (keystore.description, keystore.pubkey) == ("", "")
    assert keystore.decrypt(PASSWORD) == SECRET


def test_save_is_private_and_load_reads_it_back(tmp_path):
    keystore = small_keystore(path="m/12381/3600/1/0/0")
    target = tmp_path / "keystore-1.json"
    target.write_text("an older file")
    keystore.save(target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["keystore-1.json"]
    loaded = Keystore.load(target)
    assert loaded == keystore
    assert loaded.source == target
    assert loaded.decrypt("correct horse") == SECRET
    with pytest.raises(WrongPasswordError, match=f"wrong password for keystore {target}$"):
        loaded.decrypt("incorrect horse")


def test_load_names_the_file(tmp_path):
    with pytest.raises(KeystoreError, match=f"cannot read keystore {tmp_path / 'absent.json'}: No such file"):
        Keystore.load(tmp_path / "absent.json")
    broken = tmp_path / "broken.json"
    broken.write_text(SCRYPT_VECTOR.replace('"version": 4', '"version": 5'))
    with pytest.raises(InvalidKeystoreError, match=f"keystore {broken}: version: expected 4, got 5"):
        Keystore.load(broken)


def test_read_password_from_file(tmp_path):
    file = tmp_path / "password"
    file.write_bytes(b" pass word\t\n")
    assert read_password(file=file) == " pass word\t"
    file.write_bytes(b"pass\r\n")
    assert read_password(file=file) == "pass"
    file.write_bytes(b"pass\n\n")
    assert read_password(file=file) == "pass\n"
    file.write_bytes(PASSWORD.encode())
    assert read_password(file=file) == PASSWORD


def test_read_password_from_environment(monkeypatch):
    monkeypatch.setenv("TRIGGERX_TEST_KEYSTORE_PASSWORD", " secret\n")
    assert read_password(env="TRIGGERX_TEST_KEYSTORE_PASSWORD") == " secret\n"
    monkeypatch.delenv("TRIGGERX_TEST_KEYSTORE_PASSWORD")
    with pytest.raises(KeystoreError, match=r"TRIGGERX_TEST_KEYSTORE_PASSWORD \(.*\) is not set"):
        read_password(env="TRIGGERX_TEST_KEYSTORE_PASSWORD")


def test_read_password_failures_are_clear(tmp_path):
    with pytest.raises(KeystoreError, match="no keystore password"):
        read_password()
    with pytest.raises(KeystoreError, match="not both"):
        read_password(file=tmp_path / "password", env="HOME")
    absent = tmp_path / "absent"
    with pytest.raises(
        KeystoreError, match=f"^cannot read password file {absent}: No such file or directory$"
    ):
        read_password(file=absent)
    with pytest.raises(KeystoreError, match=f"^cannot read password file {tmp_path}: Is a directory$"):
        read_password(file=tmp_path)

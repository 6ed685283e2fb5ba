"""Keys: PEM round trips, what remote `publicKeyPem` strings we accept, FEP-521a Multikey.

Multikey known answers come from two did:key documents published by other projects (acapy's
test_dids.py and peer-did-python's test_vectors.py), each pairing a raw Ed25519 key in base58
with its `z6Mk…` multibase form; base58 known answers are the Bitcoin alphabet examples of
draft-msporny-base58.
"""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from fedblog.activitypub import keys

RFC9421_ED25519_PRIVATE = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n"
    "-----END PRIVATE KEY-----\n")
RFC9421_ED25519_PUBLIC = (
    "-----BEGIN PUBLIC KEY-----\n"
    "MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=\n"
    "-----END PUBLIC KEY-----\n")


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return keys.generate_rsa_private_key()


def test_rsa_keys_are_2048_bit_and_round_trip(rsa_key: rsa.RSAPrivateKey) -> None:
    assert rsa_key.key_size == 2048 and rsa_key.public_key().public_numbers().e == 65537
    pem = keys.private_key_to_pem(rsa_key)
    assert pem.startswith("-----BEGIN PRIVATE KEY-----\n")  # PKCS#8, unencrypted
    loaded = keys.load_private_key(pem)
    assert isinstance(loaded, rsa.RSAPrivateKey)
    assert loaded.private_numbers() == rsa_key.private_numbers()
    public_pem = keys.public_key_to_pem(rsa_key.public_key())
    assert public_pem.startswith("-----BEGIN PUBLIC KEY-----\n")  # SubjectPublicKeyInfo
    assert keys.public_key_to_pem(rsa_key) == public_pem  # a private key gives its public half
    assert keys.load_public_key(public_pem) == rsa_key.public_key()


def test_ed25519_keys_round_trip() -> None:
    key = keys.generate_ed25519_private_key()
    loaded = keys.load_private_key(keys.private_key_to_pem(key))
    assert isinstance(loaded, ed25519.Ed25519PrivateKey)
    assert loaded.public_key() == key.public_key()
    assert keys.load_public_key(keys.public_key_to_pem(key.public_key())) == key.public_key()


def test_rfc9421_test_key_pair_loads_and_matches() -> None:
    private = keys.load_private_key(RFC9421_ED25519_PRIVATE)
    assert keys.public_key_to_pem(private) == RFC9421_ED25519_PUBLIC


def test_load_public_key_accepts_what_remote_servers_publish(rsa_key: rsa.RSAPrivateKey) -> None:
    pkcs1 = rsa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.PKCS1).decode()
    assert pkcs1.startswith("-----BEGIN RSA PUBLIC KEY-----")
    assert keys.load_public_key(pkcs1) == rsa_key.public_key()
    padded = "\n  " + keys.public_key_to_pem(rsa_key) + "\n\n"
    assert keys.load_public_key(padded) == rsa_key.public_key()
    traditional = rsa_key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.TraditionalOpenSSL,
                                        serialization.NoEncryption()).decode()
    assert keys.load_private_key(traditional).private_numbers() == rsa_key.private_numbers()


def test_other_key_types_and_garbage_are_refused() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_public = ec_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    ec_private = ec_key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()).decode()
    truncated = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"
    for bad in [ec_public, "not a key", truncated, "clé"]:
        with pytest.raises(ValueError):
            keys.load_public_key(bad)
    encrypted = ec_key.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.BestAvailableEncryption(b"pw")).decode()
    for bad in [ec_private, encrypted, "not a key"]:
        with pytest.raises(ValueError):
            keys.load_private_key(bad)


@pytest.mark.parametrize(("raw_base58", "multibase"), [
    ("8HH5gYEeNc3z7PYXmd54d4x6qAfCNrqQqEB3nS7Zfu7K",
     "z6MkmjY8GnV5i9YTDtPETC2uUAW6ejw3nk5mXF5yci5ab7th"),  # acapy test_dids.py
    ("ByHnpUCFb1vAfh9CFZ8ZkmUZguURW8nSw889hy6rD8L7",
     "z6MkqRYqQiSgvZQdnBytw86Qbs2ZWUkGv22od935YF4s8M7V"),  # peer-did-python test_vectors.py
])
def test_multikey_known_answers(raw_base58: str, multibase: str) -> None:
    raw = keys.base58btc_decode(raw_base58)
    public = ed25519.Ed25519PublicKey.from_public_bytes(raw)
    assert keys.ed25519_public_key_to_multibase(public) == multibase
    assert keys.multibase_to_ed25519_public_key(multibase) == public


def test_multikey_matches_the_jwk_of_the_same_key() -> None:
    jwk_x = base64.urlsafe_b64decode("owBhCbktDjkfS6PdQddT0D3yjSitaSysP3YimJ_YgmA=")
    public = keys.multibase_to_ed25519_public_key(
        "z6MkqRYqQiSgvZQdnBytw86Qbs2ZWUkGv22od935YF4s8M7V")
    assert public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) == jwk_x


def test_multikey_round_trip_and_rejections() -> None:
    public = keys.generate_ed25519_private_key().public_key()
    encoded = keys.ed25519_public_key_to_multibase(public)
    assert encoded.startswith("z6Mk")  # every ed25519-pub multikey does
    assert keys.multibase_to_ed25519_public_key(encoded) == public
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    for bad in ["u" + encoded[1:],                                       # not base58btc
                "z" + keys.base58btc_encode(b"\xe7\x01" + raw),          # secp256k1 codec
                "z" + keys.base58btc_encode(b"\xed\x01" + raw[:31]),     # 31 bytes
                encoded[:-1] + "0"]:                                     # '0' is not base58
        with pytest.raises(ValueError):
            keys.multibase_to_ed25519_public_key(bad)


@pytest.mark.parametrize(("data", "encoded"), [
    (b"Hello World!", "2NEpo7TZRRrLZSi2U"),
    (b"The quick brown fox jumps over the lazy dog.",
     "USm3fpXnKG5EUBx2ndxBDMPVciP5hGey2Jh4NDv6gmeo1LkMeiKrLJUUBk6Z"),
    (b"\x00\x00\x01", "112"),
    (b"", ""),
    (b"\x00", "1"),
])
def test_base58btc_known_answers(data: bytes, encoded: str) -> None:
    assert keys.base58btc_encode(data) == encoded
    assert keys.base58btc_decode(encoded) == data

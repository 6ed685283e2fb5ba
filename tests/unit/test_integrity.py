"""FEP-8b32 / eddsa-jcs-2022 integrity proofs: published test vectors, an independent implementation, tampering.

Vectors:
- W3C "Data Integrity EdDSA Cryptosuites v1.0", section "Representation: eddsa-jcs-2022"
  (https://www.w3.org/TR/vc-di-eddsa/#representation-eddsa-jcs-2022; files under
  TestVectors/eddsa-jcs-2022/ and TestVectors/keyPair.json in github.com/w3c/vc-di-eddsa).
- FEP-8b32's fep-8b32.feature (https://codeberg.org/fediverse/fep/src/branch/main/fep/8b32/fep-8b32.feature).
"""

from __future__ import annotations

import copy
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from fedblog.activitypub import integrity, keys

# TestVectors/keyPair.json: multibase keys; the secret key is multicodec ed25519-priv (0x1300 -> 0x80 0x26)
SPEC_PUBLIC = "z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2"
SPEC_SECRET = "z3u2en7t5LR2WtQH5PfFqMqwVHBeXouLzo6haApm8XHqvjxq"
SPEC_CREATED = datetime(2023, 2, 24, 23, 36, 38, tzinfo=UTC)
SPEC_METHOD = f"did:key:{SPEC_PUBLIC}#{SPEC_PUBLIC}"
SPEC_CONTEXT = ["https://www.w3.org/ns/credentials/v2", "https://www.w3.org/ns/credentials/examples/v2"]
SPEC_UNSIGNED: dict[str, Any] = {
    "@context": SPEC_CONTEXT,
    "id": "urn:uuid:58172aac-d8ba-11ed-83dd-0b3aef56cc33",
    "type": ["VerifiableCredential", "AlumniCredential"],
    "name": "Alumni Credential",
    "description": "A minimum viable example of an Alumni Credential.",
    "issuer": "https://vc.example/issuers/5678",
    "validFrom": "2023-01-01T00:00:00Z",
    "credentialSubject": {"id": "did:example:abcdefgh", "alumniOf": "The School of Examples"},
}
SPEC_DOC_HASH = "59b7cb6251b8991add1ce0bc83107e3db9dbbab5bd2c28f687db1a03abc92f19"  # docHashJCS.txt
SPEC_PROOF_HASH = "66ab154f5c2890a140cb8388a22a160454f80575f6eae09e5a097cabe539a1db"  # proofHashJCS.txt
SPEC_PROOF_VALUE = "z2HnFSSPPBzR36zdDgK8PbEHeXbR56YF24jwMpt3R1eHXQzJDMWS93FCzpvJpwTWd3GAVFuUfjoJdcnTMuVor51aX"

FEP_CONTEXT = ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/data-integrity/v2"]
FEP_UNSIGNED: dict[str, Any] = {
    "@context": FEP_CONTEXT,
    "id": "https://server.example/activities/1",
    "type": "Create",
    "actor": "https://server.example/users/alice",
    "object": {
        "id": "https://server.example/objects/1",
        "type": "Note",
        "attributedTo": "https://server.example/users/alice",
        "content": "Hello world",
        "location": {"type": "Place", "longitude": -71.184902, "latitude": 25.273962},
    },
}
FEP_METHOD = "https://server.example/users/alice#ed25519-key"
FEP_PROOF_VALUE = "z42ffGu6AUKPCFcFPiabmUvnGLPJzC7e4DGWC52NUasSSH37UMa9c58tdgVszUcZfytxa4fQ5TYHaJENCxUDe9SdL"

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


# --- an independent eddsa-jcs-2022, written from the spec text for cross-checks (no fedblog code) ---

def _b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = ""
    while n > 0:
        n, r = divmod(n, 58)
        out = _B58[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def _b58decode(text: str) -> bytes:
    n = 0
    for c in text:
        n = n * 58 + _B58.index(c)
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body


def _ref_hash(doc: dict[str, Any], proof_config: dict[str, Any]) -> bytes:
    return hashlib.sha256(rfc8785.dumps(proof_config)).digest() + hashlib.sha256(rfc8785.dumps(doc)).digest()


def _ref_sign(doc: dict[str, Any], key: ed25519.Ed25519PrivateKey, method: str, created: str) -> dict[str, Any]:
    config = {"type": "DataIntegrityProof", "cryptosuite": "eddsa-jcs-2022", "created": created,
              "verificationMethod": method, "proofPurpose": "assertionMethod", "@context": doc["@context"]}
    config["proofValue"] = "z" + _b58encode(key.sign(_ref_hash(doc, config)))
    return {**doc, "proof": config}


def _ref_verify(signed: dict[str, Any], pub: ed25519.Ed25519PublicKey) -> bool:
    doc = {k: v for k, v in signed.items() if k != "proof"}
    config = dict(signed["proof"])
    signature = _b58decode(config.pop("proofValue")[1:])
    if "@context" in config:
        doc["@context"] = config["@context"]
    try:
        pub.verify(signature, _ref_hash(doc, config))
    except InvalidSignature:
        return False
    return True


def _spec_private_key() -> ed25519.Ed25519PrivateKey:
    raw = _b58decode(SPEC_SECRET[1:])
    assert raw[:2] == b"\x80\x26" and len(raw) == 34  # ed25519-priv multicodec, 32-byte seed
    return ed25519.Ed25519PrivateKey.from_private_bytes(raw[2:])


# --- the published vectors ---

def test_w3c_vector_signs_byte_for_byte() -> None:
    key = _spec_private_key()
    assert keys.ed25519_public_key_to_multibase(key.public_key()) == SPEC_PUBLIC
    signed = integrity.sign(SPEC_UNSIGNED, key, SPEC_METHOD, SPEC_CREATED)
    proof = signed["proof"]
    assert proof["proofValue"] == SPEC_PROOF_VALUE
    assert proof["@context"] == SPEC_CONTEXT
    assert proof["created"] == "2023-02-24T23:36:38Z"
    config = {k: v for k, v in proof.items() if k != "proofValue"}
    assert integrity.hash_data(SPEC_UNSIGNED, config).hex() == SPEC_PROOF_HASH + SPEC_DOC_HASH
    assert "proof" not in SPEC_UNSIGNED  # the input is not changed


def test_w3c_signed_vector_verifies() -> None:
    signed = {**SPEC_UNSIGNED, "proof": {
        "type": "DataIntegrityProof", "cryptosuite": "eddsa-jcs-2022", "created": "2023-02-24T23:36:38Z",
        "verificationMethod": SPEC_METHOD, "proofPurpose": "assertionMethod", "@context": SPEC_CONTEXT,
        "proofValue": SPEC_PROOF_VALUE}}
    check = integrity.verify(signed, keys.multibase_to_ed25519_public_key(SPEC_PUBLIC))
    assert check.ok and check, check.reason
    assert check.verification_method == SPEC_METHOD


def test_fep_8b32_feature_vector_signs_and_verifies() -> None:
    signed = integrity.sign(FEP_UNSIGNED, _spec_private_key(), FEP_METHOD, SPEC_CREATED)
    assert signed["proof"]["proofValue"] == FEP_PROOF_VALUE
    assert signed["proof"]["@context"] == FEP_CONTEXT
    assert integrity.verify(signed, keys.multibase_to_ed25519_public_key(SPEC_PUBLIC)).ok
    assert integrity.verification_method_of(signed) == FEP_METHOD


# --- both ways against the independent implementation ---

def _note() -> dict[str, Any]:
    return {
        "@context": [*FEP_CONTEXT, {"sensitive": "as:sensitive"}],
        "id": "https://blog.example/comments/7/activity",
        "type": "Create",
        "actor": "https://blog.example/guests/3",
        "object": {"id": "https://blog.example/comments/7", "type": "Note", "content": "<p>Ünïcödé ✓ \u2028</p>",
                   "inReplyTo": "https://blog.example/2026/hello", "published": "2026-12-02T11:00:00Z",
                   "tag": [], "sensitive": False, "n": 1.5e-7},
    }


def test_our_proof_verifies_with_independent_code() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    signed = integrity.sign(_note(), key, "https://blog.example/guests/3#ed25519-key", datetime.now(UTC))
    assert _ref_verify(signed, key.public_key())


def test_independent_proof_verifies_with_our_code() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    signed = _ref_sign(_note(), key, "https://blog.example/guests/3#ed25519-key", "2026-12-02T11:22:10Z")
    assert integrity.verify(signed, key.public_key()).ok


def test_proof_without_context_is_accepted_as_the_spec_allows() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    doc = _note()
    config = {"type": "DataIntegrityProof", "cryptosuite": "eddsa-jcs-2022", "created": "2026-12-02T11:22:10Z",
              "verificationMethod": "https://blog.example/k", "proofPurpose": "assertionMethod"}
    signed = {**doc, "proof": {**config, "proofValue": "z" + _b58encode(key.sign(_ref_hash(doc, config)))}}
    assert integrity.verify(signed, key.public_key()).ok


# --- tampering and malformed proofs ---

@pytest.fixture
def signed_pair() -> tuple[dict[str, Any], ed25519.Ed25519PrivateKey]:
    key = ed25519.Ed25519PrivateKey.generate()
    return integrity.sign(_note(), key, "https://blog.example/guests/3#ed25519-key",
                          datetime(2026, 12, 2, 11, 0, tzinfo=UTC)), key


def _tamper(doc: dict[str, Any], path: list[str], value: object) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    target = out
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return out


@pytest.mark.parametrize(("path", "value", "reason"), [
    (["object", "content"], "<p>changed</p>", "signature does not match"),
    (["actor"], "https://evil.example/u", "signature does not match"),
    (["proof", "created"], "2026-12-02T11:00:01Z", "signature does not match"),
    (["proof", "verificationMethod"], "https://evil.example/u#k", "signature does not match"),
    (["proof", "cryptosuite"], "eddsa-rdfc-2022", "cryptosuite"),
    (["proof", "type"], "Ed25519Signature2020", "proof type"),
    (["proof", "proofPurpose"], "authentication", "proofPurpose"),
    (["proof", "created"], "yesterday", "dateTime"),
    (["proof", "proofValue"], "uAAAA", "multibase"),
    (["proof", "proofValue"], "z0OIl", "base58btc"),
    (["proof", "proofValue"], "z" + "1" * 40, "64-byte"),
    (["proof", "@context"], ["https://www.w3.org/ns/activitystreams"], "signature does not match"),
    (["proof", "@context"], ["https://other.example/ctx"], "@context"),
    (["@context"], ["https://www.w3.org/ns/activitystreams"], "@context"),
])
def test_tampered_documents_fail_with_a_reason(
    signed_pair: tuple[dict[str, Any], ed25519.Ed25519PrivateKey], path: list[str], value: object, reason: str,
) -> None:
    signed, key = signed_pair
    assert integrity.verify(signed, key.public_key()).ok
    check = integrity.verify(_tamper(signed, path, value), key.public_key())
    assert not check.ok and not check
    assert reason in check.reason


def test_document_context_may_extend_the_proof_context(
    signed_pair: tuple[dict[str, Any], ed25519.Ed25519PrivateKey],
) -> None:
    """The spec only asks that the document @context starts with the proof's; the proof's is hashed."""
    signed, key = signed_pair
    extended = _tamper(signed, ["@context"], [*signed["@context"], "https://extra.example/ctx"])
    assert integrity.verify(extended, key.public_key()).ok


def test_wrong_key_fails(signed_pair: tuple[dict[str, Any], ed25519.Ed25519PrivateKey]) -> None:
    signed, _ = signed_pair
    check = integrity.verify(signed, ed25519.Ed25519PrivateKey.generate().public_key())
    assert not check.ok and "signature does not match" in check.reason


@pytest.mark.parametrize("document", [
    {"type": "Note"},
    {"type": "Note", "proof": "zabc"},
    {"type": "Note", "proof": []},
    {"type": "Note", "proof": [{"type": "DataIntegrityProof"}, {"type": "DataIntegrityProof"}]},
    {"type": "Note", "proof": {"type": "DataIntegrityProof", "cryptosuite": "eddsa-jcs-2022",
                               "proofPurpose": "assertionMethod", "proofValue": "z1"}},
])
def test_missing_or_malformed_proofs_fail_without_raising(document: dict[str, Any]) -> None:
    assert not integrity.verify(document, ed25519.Ed25519PrivateKey.generate().public_key()).ok


def test_non_object_document_fails_without_raising() -> None:
    assert not integrity.verify(["not", "an", "object"], ed25519.Ed25519PrivateKey.generate().public_key())  # type: ignore[arg-type]


def test_single_proof_in_a_list_is_accepted(signed_pair: tuple[dict[str, Any], ed25519.Ed25519PrivateKey]) -> None:
    signed, key = signed_pair
    listed = {**signed, "proof": [signed["proof"]]}
    assert integrity.verify(listed, key.public_key()).ok
    assert integrity.verification_method_of(listed) == "https://blog.example/guests/3#ed25519-key"


def test_expired_proof_fails_only_when_now_is_given() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    doc = _note()
    config = {"type": "DataIntegrityProof", "cryptosuite": "eddsa-jcs-2022", "created": "2026-12-02T11:00:00Z",
              "expires": "2026-12-03T11:00:00Z", "verificationMethod": "https://blog.example/k",
              "proofPurpose": "assertionMethod", "@context": doc["@context"]}
    signed = {**doc, "proof": {**config, "proofValue": "z" + _b58encode(key.sign(_ref_hash(doc, config)))}}
    assert integrity.verify(signed, key.public_key()).ok
    expires = datetime(2026, 12, 3, 11, 0, tzinfo=UTC)
    assert integrity.verify(signed, key.public_key(), now=expires - timedelta(seconds=1)).ok
    late = integrity.verify(signed, key.public_key(), now=expires + timedelta(seconds=1))
    assert not late.ok and "expired" in late.reason


def test_sign_refuses_bad_input() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(ValueError, match="already has a proof"):
        integrity.sign({"type": "Note", "proof": {}}, key, "https://k", SPEC_CREATED)
    with pytest.raises(ValueError, match="timezone"):
        integrity.sign({"type": "Note"}, key, "https://k", datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="JCS"):
        integrity.sign({"type": "Note", "n": float("nan")}, key, "https://k", SPEC_CREATED)
    with pytest.raises(ValueError, match="JCS"):
        integrity.sign({"type": "Note", "n": 2**60}, key, "https://k", SPEC_CREATED)


def test_created_is_utc_to_the_second() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    tz = datetime(2026, 12, 2, 13, 22, 10, 987654, tzinfo=UTC).astimezone(
        datetime.now(UTC).astimezone().tzinfo)
    signed = integrity.sign({"type": "Note"}, key, "https://k", tz)
    assert signed["proof"]["created"] == "2026-12-02T13:22:10Z"
    assert "@context" not in signed["proof"]  # no document @context, none in the proof
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert keys.multibase_to_ed25519_public_key(keys.ed25519_public_key_to_multibase(key.public_key())).public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw) == raw


@pytest.mark.parametrize(("document", "owner"), [
    ({"type": "Create", "actor": "https://a.example/u", "object": {"attributedTo": "https://b.example/v"}},
     "https://a.example/u"),
    ({"type": "Like", "actor": {"id": "https://a.example/u", "type": "Person"}}, "https://a.example/u"),
    ({"type": "Note", "attributedTo": "https://b.example/v"}, "https://b.example/v"),
    ({"type": "Note", "attributedTo": ["https://b.example/v"]}, "https://b.example/v"),
    ({"type": "Note", "attributedTo": ["https://b.example/v", "https://c.example/w"]}, None),
    ({"type": "Announce", "actor": ["https://a.example/u", "https://b.example/v"]}, None),
    ({"type": "Note"}, None),
    ({"type": "Note", "attributedTo": 7}, None),
])
def test_owner_of(document: dict[str, Any], owner: str | None) -> None:
    assert integrity.owner_of(document) == owner


def test_linked_data_signature_added_after_the_proof_is_ignored(
    signed_pair: tuple[dict[str, Any], ed25519.Ed25519PrivateKey],
) -> None:
    """FEP-8b32 "Backward compatibility": proof first, then the LD signature; verifiers drop the latter."""
    signed, key = signed_pair
    with_ld = {**signed, "signature": {"type": "RsaSignature2017", "creator": "https://blog.example/guests/3#main-key",
                                       "created": "2026-12-02T11:00:01Z", "signatureValue": "AAAA"}}
    assert integrity.verify(with_ld, key.public_key()).ok
    with pytest.raises(ValueError, match="linked data signature"):
        without_proof = {k: v for k, v in with_ld.items() if k != "proof"}
        integrity.sign(without_proof, key, "https://blog.example/guests/3#ed25519-key", SPEC_CREATED)

"""FEP-8b32 Object Integrity Proofs with the W3C `eddsa-jcs-2022` cryptosuite.

A proof makes an activity or object self-authenticating: anyone holding the document and the
signer's Ed25519 public key can check it, independently of the HTTP request that carried it.

Sources:
- FEP-8b32 "Object Integrity Proofs": https://codeberg.org/fediverse/fep/src/branch/main/fep/8b32/fep-8b32.md
  (`type: DataIntegrityProof`, `proofPurpose: assertionMethod`, the verification method is a key in
  the actor's `assertionMethod`, FEP-521a `Multikey`).
- W3C "Data Integrity EdDSA Cryptosuites v1.0", section 3.3 eddsa-jcs-2022:
  https://www.w3.org/TR/vc-di-eddsa/#eddsa-jcs-2022 . In short:
  1. proofConfig = the proof options (type, cryptosuite, created, verificationMethod, proofPurpose)
     plus the document's `@context` when the document has one; never `proofValue`.
  2. hashData = SHA-256(JCS(proofConfig)) || SHA-256(JCS(document without `proof`)).
  3. proofValue = "z" + base58btc(Ed25519 signature over hashData) (multibase, 64 signature bytes).
  On verification, a proof carrying `@context` requires the document's `@context` to start with
  those values in order, and the document is then hashed with the proof's `@context`.
- JCS is RFC 8785 (https://www.rfc-editor.org/rfc/rfc8785), done by the `rfc8785` package.

Which key may sign which document (the key's controller must own the object, FEP-8b32 "Proof
verification" and FEP-fe34) is the caller's check: `verification_method_of` names the key to look
up and `owner_of` the actor that key's controller must be.
Pure functions: no storage, no network, no clock (pass `now` to check `expires`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from fedblog.activitypub.keys import base58btc_decode, base58btc_encode

DATA_INTEGRITY_CONTEXT = "https://w3id.org/security/data-integrity/v2"
PROOF_TYPE = "DataIntegrityProof"
CRYPTOSUITE = "eddsa-jcs-2022"
PROOF_PURPOSE = "assertionMethod"
_SIGNATURE_BYTES = 64


@dataclass(frozen=True)
class ProofCheck:
    """The outcome of `verify`: `ok`, and if not, why (a short English reason for logs and 4xx bodies)."""

    ok: bool
    reason: str
    verification_method: str | None = None

    def __bool__(self) -> bool:
        return self.ok


def format_created(moment: datetime) -> str:
    """An XML Schema dateTime in UTC to the second, e.g. ``2023-02-24T23:36:38Z``."""
    if moment.tzinfo is None:
        raise ValueError("created must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def canonical_json(value: object) -> bytes:
    """RFC 8785 JSON Canonicalization Scheme; `ValueError` for what JCS cannot represent."""
    try:
        return rfc8785.dumps(value)  # type: ignore[arg-type]  # rfc8785 types its input narrowly
    except (rfc8785.CanonicalizationError, TypeError) as exc:
        raise ValueError(f"document cannot be canonicalised with JCS: {exc}") from exc


def hash_data(unsecured_document: Mapping[str, Any], proof_config: Mapping[str, Any]) -> bytes:
    """eddsa-jcs-2022 "Hashing": SHA-256 of the canonical proof config, then of the canonical document."""
    proof_hash = hashlib.sha256(canonical_json(dict(proof_config))).digest()
    document_hash = hashlib.sha256(canonical_json(dict(unsecured_document))).digest()
    return proof_hash + document_hash


def sign(
    document: Mapping[str, Any],
    private_key: ed25519.Ed25519PrivateKey,
    verification_method: str,
    created: datetime,
) -> dict[str, Any]:
    """Return a copy of `document` with an eddsa-jcs-2022 `proof` added (the input is not changed).

    `verification_method` is the id of the actor's FEP-521a Multikey (e.g. ``<actor>#ed25519-key``).
    A document that already carries a `proof` is refused: FEP-8b32 says objects SHOULD NOT carry
    more than one, and signing over a proof would need the proof-chain rules we do not implement.
    """
    if "proof" in document:
        raise ValueError("document already has a proof")
    if "signature" in document:  # FEP-8b32 "Backward compatibility": the proof goes in first
        raise ValueError("document already has a linked data signature; add the proof before it")
    if not verification_method:
        raise ValueError("verification_method is required")
    proof: dict[str, Any] = {
        "type": PROOF_TYPE,
        "cryptosuite": CRYPTOSUITE,
        "verificationMethod": verification_method,
        "proofPurpose": PROOF_PURPOSE,
        "created": format_created(created),
    }
    if "@context" in document:
        proof["@context"] = document["@context"]
    signature = private_key.sign(hash_data(document, proof))
    return {**document, "proof": {**proof, "proofValue": "z" + base58btc_encode(signature)}}


def verification_method_of(document: Mapping[str, Any]) -> str | None:
    """The key id a single proof names, so the caller can fetch the actor and find that key."""
    proof = document.get("proof")
    if isinstance(proof, list) and len(proof) == 1:
        proof = proof[0]
    if isinstance(proof, Mapping):
        method = proof.get("verificationMethod")
        if isinstance(method, str) and method:
            return method
    return None


def _id_of(value: object) -> str | None:
    if isinstance(value, list):
        value = value[0] if len(value) == 1 else None
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def owner_of(document: Mapping[str, Any]) -> str | None:
    """Whose key may sign `document` (FEP-fe34 ownership): an activity's `actor`, else an object's
    single `attributedTo`; None when neither names exactly one actor.

    FEP-8b32 requires the controller of the proof's verification method to be this owner; the
    caller compares it with the `controller` of the Multikey it resolved (not merely its host).
    """
    if "actor" in document:
        return _id_of(document["actor"])
    return _id_of(document.get("attributedTo"))


def _parse_datetime(text: object) -> datetime | None:
    """An XML Schema dateTime with a time zone (``Z`` or ``±hh:mm``); None if not one."""
    if not isinstance(text, str) or "T" not in text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _as_list(context: object) -> list[Any]:
    return list(context) if isinstance(context, list) else [context]


def verify(
    document: Mapping[str, Any],
    public_key: ed25519.Ed25519PublicKey,
    *,
    now: datetime | None = None,
) -> ProofCheck:
    """Check the document's eddsa-jcs-2022 proof against `public_key`; never raises on bad input."""
    if not isinstance(document, Mapping):
        return ProofCheck(False, "document is not a JSON object")
    raw_proof = document.get("proof")
    if isinstance(raw_proof, list):
        if len(raw_proof) != 1:
            return ProofCheck(False, "proof sets with more than one proof are not supported")
        raw_proof = raw_proof[0]
    if not isinstance(raw_proof, Mapping):
        return ProofCheck(False, "no proof object")
    proof = dict(raw_proof)
    method = proof.get("verificationMethod")
    method = method if isinstance(method, str) and method else None
    if proof.get("type") != PROOF_TYPE:
        return ProofCheck(False, f"proof type is not {PROOF_TYPE}", method)
    if proof.get("cryptosuite") != CRYPTOSUITE:
        return ProofCheck(False, f"cryptosuite is not {CRYPTOSUITE}", method)
    if proof.get("proofPurpose") != PROOF_PURPOSE:
        return ProofCheck(False, f"proofPurpose is not {PROOF_PURPOSE}", method)
    if method is None:
        return ProofCheck(False, "proof has no verificationMethod")
    if "created" in proof and _parse_datetime(proof["created"]) is None:
        return ProofCheck(False, "proof created is not a valid dateTime", method)
    if "expires" in proof:
        expires = _parse_datetime(proof["expires"])
        if expires is None:
            return ProofCheck(False, "proof expires is not a valid dateTime", method)
        if now is not None and now > expires:
            return ProofCheck(False, "proof has expired", method)
    proof_value = proof.pop("proofValue", None)
    if not isinstance(proof_value, str) or not proof_value.startswith("z"):
        return ProofCheck(False, "proofValue is not a base58btc multibase string", method)
    try:
        signature = base58btc_decode(proof_value[1:])
    except ValueError:
        return ProofCheck(False, "proofValue is not valid base58btc", method)
    if len(signature) != _SIGNATURE_BYTES:
        return ProofCheck(False, "proofValue is not a 64-byte Ed25519 signature", method)

    # FEP-8b32 "Backward compatibility": a linked data signature, added after the proof, is removed first
    unsecured = {key: value for key, value in document.items() if key not in ("proof", "signature")}
    if "@context" in proof:
        proof_context = _as_list(proof["@context"])
        document_context = _as_list(unsecured.get("@context", []))
        if document_context[: len(proof_context)] != proof_context:
            return ProofCheck(False, "document @context does not start with the proof's @context", method)
        unsecured["@context"] = proof["@context"]
    try:
        data = hash_data(unsecured, proof)
    except ValueError as exc:
        return ProofCheck(False, str(exc), method)
    try:
        public_key.verify(signature, data)
    except InvalidSignature:
        return ProofCheck(False, "signature does not match the document and key", method)
    return ProofCheck(True, "verified", method)

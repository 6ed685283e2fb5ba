"""HTTP signatures: known answers, tampered copies, and second opinions from code we did not write.

Second opinions (test-only): `httpsig` (draft-cavage rsa-sha256, pycryptodome underneath),
`http-message-signatures` (RFC 9421), `http_sf` (RFC 8941), and `spec_*` below — a few lines
written straight from draft-cavage-12 §2.3 that share no code with fedblog.

The vectors in tests/data/vectors/ were made once with
`python -m tests.unit.test_httpsig --regenerate` — their signatures come from the third-party
libraries, never from fedblog — and committed. The keys in them are test keys.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import http_sf
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from starlette.datastructures import Headers

from fedblog.activitypub import httpsig_rfc9421 as rfc9421
from fedblog.activitypub.httpsig import (
    GET_SIGNED_HEADERS,
    POST_SIGNED_HEADERS,
    FailureReason,
    SignatureInput,
    VerifyFailure,
    body_digest,
    content_digest,
    evidence,
    failure_status,
    prepare_verification,
    sign_request,
    sign_request_rfc9421,
    verify_signature,
)

VECTORS = Path(__file__).parent.parent / "data" / "vectors"
R = FailureReason


# ---------------------------------------------------------------------------------------------
# Helpers: vectors, a multi-line header mapping, and the from-the-spec cavage signer/verifier

def load_vector(name: str) -> dict[str, Any]:
    return json.loads((VECTORS / f"{name}.json").read_text(encoding="utf-8"))


class MultiHeaders(Mapping[str, str]):
    """Field lines in order, repeats allowed, like a raw HTTP message (and Starlette's Headers)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.pairs = list(pairs)

    def __getitem__(self, key: str) -> str:
        return next(v for k, v in self.pairs if k.lower() == key.lower())

    def __iter__(self) -> Iterator[str]:
        return iter(k for k, _ in self.pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def items(self) -> list[tuple[str, str]]:  # type: ignore[override]
        return list(self.pairs)


def spec_signing_string(names: list[str], method: str, target: str,
                        headers: list[tuple[str, str]], params: Mapping[str, str] = {}) -> bytes:
    values: dict[str, list[str]] = {}
    for name, value in headers:
        values.setdefault(name.lower(), []).append(value.strip())
    lines = []
    for name in names:
        if name == "(request-target)":
            lines.append(f"{name}: {method.lower()} {target}")
        elif name in ("(created)", "(expires)"):
            lines.append(f"{name}: {params[name[1:-1]]}")
        else:
            lines.append(f"{name}: {', '.join(values[name])}")
    return "\n".join(lines).encode()


def spec_sign(key: Any, names: list[str], method: str, target: str,
              headers: list[tuple[str, str]], *, key_id: str, algorithm: str = "rsa-sha256",
              params: Mapping[str, str] = {}) -> str:
    data = spec_signing_string(names, method, target, headers, params)
    if isinstance(key, rsa.RSAPrivateKey):
        raw = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    else:
        raw = key.sign(data)
    extra = "".join(f",{k}={v}" for k, v in params.items())
    return (f'keyId="{key_id}",algorithm="{algorithm}",headers="{" ".join(names)}"{extra},'
            f'signature="{base64.b64encode(raw).decode()}"')


def spec_verify(public_key: rsa.RSAPublicKey, method: str, target: str,
                headers: list[tuple[str, str]]) -> bool:
    header = next(v for k, v in headers if k.lower() == "signature")
    params = dict(re.findall(r'(\w+)="([^"]*)"', header))
    data = spec_signing_string(params["headers"].split(), method, target, headers)
    try:
        public_key.verify(base64.b64decode(params["signature"]), data, padding.PKCS1v15(),
                          hashes.SHA256())
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True)
class Req:
    """A received request, easy to tamper with."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes | None
    now: datetime

    @classmethod
    def from_vector(cls, v: dict[str, Any]) -> Req:
        return cls(v["method"], v["target"], tuple(map(tuple, v["headers"])),
                   v["body"].encode(), datetime.fromisoformat(v["verify_at"]))

    def prepare(self, **kwargs: Any) -> SignatureInput | VerifyFailure:
        return prepare_verification(self.method, self.target, MultiHeaders(list(self.headers)),
                                    self.body, now=self.now, **kwargs)

    def without(self, name: str) -> Req:
        return replace(self, headers=tuple((k, v) for k, v in self.headers
                                           if k.lower() != name.lower()))

    def set(self, name: str, value: str) -> Req:
        return replace(self.without(name), headers=self.without(name).headers + ((name, value),))

    def add(self, name: str, value: str) -> Req:
        return replace(self, headers=self.headers + ((name, value),))

    def resigned(self, key: Any, names: list[str], *, key_id: str, algorithm: str = "rsa-sha256",
                 params: Mapping[str, str] = {}) -> Req:
        headers = list(self.without("Signature").headers)
        signature = spec_sign(key, names, self.method, self.target, headers, key_id=key_id,
                              algorithm=algorithm, params=params)
        return self.set("Signature", signature)


def ok(result: SignatureInput | VerifyFailure) -> SignatureInput:
    assert isinstance(result, SignatureInput), result
    return result


def fails(result: SignatureInput | VerifyFailure, reason: FailureReason) -> VerifyFailure:
    assert isinstance(result, VerifyFailure), f"expected {reason}, got {result}"
    assert result.reason is reason, result
    assert len(result.detail.split()) >= 4, f"detail should be a sentence: {result.detail!r}"
    return result


# ---------------------------------------------------------------------------------------------
# Vector generation (run once; the output is committed)

ALICE_KEY_ID = "https://mastodon.test/users/alice#main-key"
BLOG_KEY_ID = "https://blog.test/actor#ed25519-key"
FROZEN = datetime(2025, 1, 7, 12, 0, 0, tzinfo=UTC)
CREATE_NOTE = {
    "@context": "https://www.w3.org/ns/activitystreams",
    "id": "https://mastodon.test/users/alice/statuses/113781234567890/activity",
    "type": "Create",
    "actor": "https://mastodon.test/users/alice",
    "published": "2025-01-07T11:59:58Z",
    "to": ["https://www.w3.org/ns/activitystreams#Public"],
    "cc": ["https://mastodon.test/users/alice/followers", "https://blog.test/actor"],
    "object": {
        "id": "https://mastodon.test/users/alice/statuses/113781234567890",
        "type": "Note",
        "attributedTo": "https://mastodon.test/users/alice",
        "inReplyTo": "https://blog.test/2025/01/hello-fediverse",
        "content": "<p>Lovely post — thanks! 🎉</p>",
        "published": "2025-01-07T11:59:58Z",
        "to": ["https://www.w3.org/ns/activitystreams#Public"],
        "cc": ["https://mastodon.test/users/alice/followers", "https://blog.test/actor"],
    },
}


def _pem(key: Any) -> tuple[str, str]:
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


@dataclass
class _Message:
    """The request shape http-message-signatures signs and verifies."""

    method: str
    url: str
    headers: dict[str, str]


def _regenerate_vectors() -> None:
    from http_message_signatures import HTTPMessageSigner, MappingKeyResolver, algorithms
    from httpsig.sign import Signer
    from httpsig.utils import generate_message

    alice, blog = rsa.generate_private_key(65537, 2048), ed25519.Ed25519PrivateKey.generate()
    alice_private, alice_public = _pem(alice)
    blog_private, blog_public = _pem(blog)
    body = json.dumps(CREATE_NOTE, ensure_ascii=False, separators=(",", ":")).encode()
    date = "Tue, 07 Jan 2025 12:00:00 GMT"
    digest = "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode()
    headers = {"Host": "blog.test", "Date": date, "Digest": digest,
               "Content-Type": "application/activity+json"}
    names = ["(request-target)", "host", "date", "digest"]
    signing_string = generate_message(names, headers, None, "POST", "/inbox")
    signature = Signer(alice_private, algorithm="rsa-sha256").sign(signing_string)
    headers["Signature"] = (f'keyId="{ALICE_KEY_ID}",algorithm="rsa-sha256",'
                            f'headers="{" ".join(names)}",signature="{signature}"')
    _write("mastodon_create_note", {
        "description": "Mastodon-shaped draft-cavage rsa-sha256 delivery of a Create(Note) to "
                       "our inbox, signature made by the `httpsig` package (pycryptodome)",
        "method": "POST", "target": "/inbox", "scheme": "https",
        "headers": list(headers.items()), "body": body.decode(),
        "verify_at": (FROZEN + timedelta(seconds=30)).isoformat(), "key_id": ALICE_KEY_ID,
        "signing_string": signing_string.decode(), "covered": names,
        "public_key_pem": alice_public, "private_key_pem": alice_private,
    })
    resolver = MappingKeyResolver(public_keys={}, private_keys={ALICE_KEY_ID: alice,
                                                                BLOG_KEY_ID: blog})
    for name, alg, key_id, url, components, include_alg, label, extra in [
        ("rfc9421_mastodon47_rsa", algorithms.RSA_V1_5_SHA256, ALICE_KEY_ID,
         "https://blog.test/inbox", ("@method", "@target-uri"), False, "sig1", {}),
        ("rfc9421_fedblog_ed25519", algorithms.ED25519, BLOG_KEY_ID,
         "https://blog.test/inbox?page=1", ("@method", "@authority", "@path", "date"), True,
         "fedblog", {"Date": date}),
    ]:
        message = _Message("POST", url, {"Host": "blog.test", **extra,
                                         "Content-Type": "application/activity+json"})
        signer = HTTPMessageSigner(signature_algorithm=alg, key_resolver=resolver)
        signer.sign(message, key_id=key_id, created=FROZEN, covered_component_ids=components,
                    include_alg=include_alg, label=label, body=body)
        _write(name, {
            "description": f"RFC 9421 {alg.algorithm_id} request, signed by the "
                           "`http-message-signatures` package",
            "method": "POST", "target": url.removeprefix("https://blog.test"), "scheme": "https",
            "headers": list(message.headers.items()), "body": body.decode(),
            "verify_at": (FROZEN + timedelta(seconds=30)).isoformat(), "key_id": key_id,
            "label": label, "url": url, "components": list(components) + ["content-digest"],
            "public_key_pem": alice_public if alg is algorithms.RSA_V1_5_SHA256 else blog_public,
            "private_key_pem": alice_private if alg is algorithms.RSA_V1_5_SHA256 else blog_private,
        })


def _write(name: str, data: dict[str, Any]) -> None:
    VECTORS.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    text = re.sub(r'\[\n\s+("[^"\n]*"),\n\s+("(?:[^"\\\n]|\\.)*")\n\s+\]', r"[\1, \2]", text)
    (VECTORS / f"{name}.json").write_text(text, encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# Fixtures

@pytest.fixture(scope="module")
def mastodon() -> dict[str, Any]:
    return load_vector("mastodon_create_note")


@pytest.fixture(scope="module")
def alice(mastodon: dict[str, Any]) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(mastodon["private_key_pem"].encode(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


@pytest.fixture(scope="module")
def mallory() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 2048)


@pytest.fixture
def req(mastodon: dict[str, Any]) -> Req:
    return Req.from_vector(mastodon)


# ---------------------------------------------------------------------------------------------
# Known answers

def test_mastodon_vector_verifies_with_exact_signing_string(req: Req, mastodon: dict[str, Any],
                                                            alice: rsa.RSAPrivateKey) -> None:
    sig = ok(req.prepare())
    assert (sig.scheme, sig.key_id, sig.algorithm) == ("draft-cavage", ALICE_KEY_ID, "rsa-sha256")
    assert sig.signing_string == mastodon["signing_string"].encode()
    assert sig.covered == tuple(mastodon["covered"]) == POST_SIGNED_HEADERS
    assert verify_signature(sig, alice.public_key()).ok
    assert spec_verify(alice.public_key(), req.method, req.target, list(req.headers))


def test_our_signer_reproduces_the_mastodon_vector(req: Req, alice: rsa.RSAPrivateKey) -> None:
    """RSA PKCS#1 v1.5 is deterministic, so our headers must equal the third-party ones."""
    added = sign_request("post", "https://blog.test/inbox", {"Content-Type": "x"}, req.body,
                         key_id=ALICE_KEY_ID, private_key=alice, now=FROZEN)
    expected = dict(req.headers)
    assert added == {k: expected[k] for k in ("Host", "Date", "Digest", "Signature")}


def test_rfc9421_b26_base_and_signature_reproduce() -> None:
    v = load_vector("rfc9421_b26_ed25519")
    private = serialization.load_pem_private_key(v["private_key_pem"].encode(), None)
    public = serialization.load_pem_public_key(v["public_key_pem"].encode())
    assert isinstance(private, ed25519.Ed25519PrivateKey)
    headers = dict(v["headers"])
    parsed = rfc9421.parse_signature_fields(headers["Signature-Input"], headers["Signature"])
    lines = {k.lower(): [val] for k, val in v["headers"]}
    values = [(name, rfc9421.component_value(name, method="POST", target=v["target"],
                                             scheme="https", lines=lines))
              for name in parsed.components]
    base = rfc9421.signature_base(values, parsed.signature_params)
    assert base == "\n".join(v["signature_base"]).encode()
    assert private.sign(base) == parsed.signature  # Ed25519 is deterministic
    assert private.public_key() == public
    assert rfc9421.parse_content_digest(headers["Content-Digest"]) == [
        ("sha-512", hashlib.sha512(v["body"].encode()).digest())]


def test_rfc9421_b26_is_refused_by_policy_because_the_body_digest_is_not_signed() -> None:
    """B.2.6 is a valid signature, but it does not cover content-digest: body is unauthenticated."""
    v = load_vector("rfc9421_b26_ed25519")
    fails(Req.from_vector(v).prepare(), R.digest_not_signed)


@pytest.mark.parametrize("name", ["rfc9421_mastodon47_rsa", "rfc9421_fedblog_ed25519"])
def test_rfc9421_vectors_verify(name: str) -> None:
    v = load_vector(name)
    sig = ok(Req.from_vector(v).prepare())
    assert (sig.scheme, sig.key_id, sig.covered) == ("rfc9421", v["key_id"],
                                                     tuple(v["components"]))
    public = serialization.load_pem_public_key(v["public_key_pem"].encode())
    assert verify_signature(sig, public).ok


def test_evidence_keeps_the_scheme_key_coverage_and_signed_times(req: Req) -> None:
    """What is stored with a fediverse reply: read back from the request as sent, not from our parser."""
    v = load_vector("rfc9421_mastodon47_rsa")
    sent = dict(v["headers"])["Signature-Input"]
    created = int(re.search(r";created=(\d+)", sent).group(1))  # type: ignore[union-attr]
    components = re.findall(r'"([^"]+)"', sent.split(")")[0])
    assert evidence(ok(Req.from_vector(v).prepare())) == {
        "type": "http-signature", "scheme": "rfc9421", "algorithm": "from-key", "keyId": v["key_id"],
        "headers": components, "created": created}
    cavage = dict(req.headers)["Signature"]
    names = re.search(r'headers="([^"]+)"', cavage).group(1).split()  # type: ignore[union-attr]
    found = evidence(ok(req.prepare()))
    assert found["scheme"] == "draft-cavage" and found["algorithm"] == "rsa-sha256" and found["headers"] == names
    assert "created" not in found and "expires" not in found


@pytest.mark.parametrize("name", ["rfc9421_mastodon47_rsa", "rfc9421_fedblog_ed25519"])
def test_our_rfc9421_signer_reproduces_the_vectors(name: str) -> None:
    v = load_vector(name)
    key = serialization.load_pem_private_key(v["private_key_pem"].encode(), None)
    expected = dict(v["headers"])
    added = sign_request_rfc9421(
        "POST", v["url"], {k: val for k, val in expected.items() if k in ("Host", "Date")},
        v["body"].encode(), key_id=v["key_id"], private_key=key, now=FROZEN,
        components=v["components"], label=v["label"], include_alg="alg=" in
        expected["Signature-Input"])
    for header in ("Content-Digest", "Signature-Input", "Signature"):
        assert added[header] == expected[header]


# ---------------------------------------------------------------------------------------------
# Tampered copies of the Mastodon vector: each yields its specific reason

NO_DIGEST = ["(request-target)", "host", "date"]


@pytest.mark.parametrize(("tamper", "reason"), [
    (lambda r, a: replace(r, body=r.body + b" "), R.digest_mismatch),
    (lambda r, a: r.set("Digest", body_digest(b"{}")), R.digest_mismatch),
    (lambda r, a: r.set("Digest", "MD5=" + base64.b64encode(b"x" * 16).decode()),
     R.digest_mismatch),
    (lambda r, a: r.set("Digest", "SHA-256=not base64!"), R.digest_malformed),
    (lambda r, a: replace(r, now=r.now + timedelta(minutes=66)), R.date_out_of_window),
    (lambda r, a: replace(r, now=r.now - timedelta(minutes=61)), R.date_out_of_window),
    (lambda r, a: r.resigned(a, NO_DIGEST, key_id=ALICE_KEY_ID), R.digest_not_signed),
    (lambda r, a: r.without("Digest").resigned(a, NO_DIGEST, key_id=ALICE_KEY_ID),
     R.digest_missing),
    (lambda r, a: r.resigned(a, ["(request-target)", "date", "digest"], key_id=ALICE_KEY_ID),
     R.required_header_not_signed),
    (lambda r, a: r.resigned(a, ["host", "date", "digest"], key_id=ALICE_KEY_ID),
     R.required_header_not_signed),
    (lambda r, a: r.resigned(a, ["(request-target)", "host", "digest"], key_id=ALICE_KEY_ID),
     R.required_header_not_signed),
    (lambda r, a: r.without("Date").resigned(a, ["(request-target)", "host", "digest"],
                                             key_id=ALICE_KEY_ID), R.date_missing),
    (lambda r, a: r.set("Date", "yesterday").resigned(a, list(POST_SIGNED_HEADERS),
                                                      key_id=ALICE_KEY_ID), R.date_malformed),
    (lambda r, a: r.without("Host"), R.signed_header_missing),
    (lambda r, a: r.without("Date"), R.date_missing),
    (lambda r, a: r.add("date", dict(r.headers)["Date"]), R.ambiguous_header),
    (lambda r, a: r.add("Host", "evil.test"), R.ambiguous_header),
    (lambda r, a: r.set("Signature", 'keyId="https://evil.test/a#k",'
                        + dict(r.headers)["Signature"]), R.ambiguous_signature),
    (lambda r, a: r.add("signature", dict(r.headers)["Signature"].replace("rsa-", "hs")),
     R.ambiguous_signature),
    (lambda r, a: r.set("Signature", dict(r.headers)["Signature"].replace(
        'headers="(request-target) host', 'headers="(request-target) host host')),
     R.ambiguous_signature),
    (lambda r, a: r.set("Signature", dict(r.headers)["Signature"].replace(
        "rsa-sha256", "hmac-sha256")), R.unsupported_algorithm),
    (lambda r, a: r.set("Signature", dict(r.headers)["Signature"].replace(
        "rsa-sha256", "rsa-sha512")), R.unsupported_algorithm),
    (lambda r, a: r.resigned(a, ["(request-target)", "host", "date", "digest", "(created)"],
                             key_id=ALICE_KEY_ID, params={"created": "1736251200"}),
     R.malformed_signature),
    (lambda r, a: r.without("Signature"), R.missing_signature),
    (lambda r, a: r.set("Signature", "keyId=alice"), R.malformed_signature),
    (lambda r, a: r.set("Signature", 'keyId="x",headers="",signature="AAAA"'),
     R.malformed_signature),
    (lambda r, a: r.set("Signature", 'keyId="x",signature="AAAA"'),  # default: (created) only
     R.digest_not_signed),
    (lambda r, a: r.set("Signature", dict(r.headers)["Signature"][:-10] + '!!!!!!!!!"'),
     R.malformed_signature),
])
def test_tampered_mastodon_vector(req: Req, alice: rsa.RSAPrivateKey, tamper: Any,
                                  reason: FailureReason) -> None:
    assert isinstance(req.prepare(), SignatureInput)  # the untampered copy passes
    fails(tamper(req, alice).prepare(), reason)


def test_signature_from_another_key_fails_bad_signature(req: Req, alice: rsa.RSAPrivateKey,
                                                        mallory: rsa.RSAPrivateKey) -> None:
    """Mallory signs with her key but claims Alice's keyId: the key fetched for it rejects it."""
    forged = req.resigned(mallory, list(POST_SIGNED_HEADERS), key_id=ALICE_KEY_ID)
    sig = ok(forged.prepare())
    assert sig.key_id == ALICE_KEY_ID
    result = verify_signature(sig, alice.public_key())
    assert not result.ok and result.failure and result.failure.reason is R.bad_signature
    assert verify_signature(ok(req.prepare()), alice.public_key()).ok


def test_flipped_signature_bits_and_wrong_key_type(req: Req, alice: rsa.RSAPrivateKey) -> None:
    sig = ok(req.prepare())
    flipped = replace(sig, signature=bytes([sig.signature[0] ^ 1]) + sig.signature[1:])
    assert verify_signature(flipped, alice.public_key()).failure.reason is R.bad_signature
    wrong_type = verify_signature(sig, ed25519.Ed25519PrivateKey.generate().public_key())
    assert wrong_type.failure and wrong_type.failure.reason is R.key_mismatch


def test_time_window_boundaries_follow_p1(req: Req) -> None:
    date = datetime(2025, 1, 7, 12, 0, 0, tzinfo=UTC)
    ok(replace(req, now=date + timedelta(minutes=65)).prepare())
    fails(replace(req, now=date + timedelta(minutes=65, seconds=1)).prepare(),
          R.date_out_of_window)
    ok(replace(req, now=date - timedelta(minutes=60)).prepare())
    fails(replace(req, now=date - timedelta(minutes=60, seconds=1)).prepare(),
          R.date_out_of_window)
    fails(replace(req, now=date + timedelta(minutes=6)).prepare(max_age=timedelta(minutes=5)),
          R.date_out_of_window)


def test_expected_host_refuses_a_request_signed_for_another_server(req: Req) -> None:
    ok(req.prepare(expected_host="BLOG.test:443"))
    fails(req.prepare(expected_host="other.test"), R.host_mismatch)


def test_any_mapping_works_including_starlette_headers(req: Req, alice: rsa.RSAPrivateKey,
                                                       ) -> None:
    raw = [(k.lower().encode(), v.encode("latin-1")) for k, v in req.headers if v.isascii()]
    sig = ok(prepare_verification("POST", "/inbox", Headers(raw=raw), req.body, now=req.now))
    assert verify_signature(sig, alice.public_key()).ok
    upper = {k.upper(): v for k, v in req.headers}
    assert verify_signature(ok(prepare_verification("POST", "/inbox", upper, req.body,
                                                    now=req.now)), alice.public_key()).ok
    twice = Headers(raw=raw + [(b"host", b"evil.test")])
    fails(prepare_verification("POST", "/inbox", twice, req.body, now=req.now),
          R.ambiguous_header)


@pytest.mark.parametrize("reason", list(FailureReason))
def test_every_reason_has_a_status(reason: FailureReason) -> None:
    malformed = {R.malformed_signature, R.ambiguous_signature, R.ambiguous_header,
                 R.date_malformed, R.digest_malformed}
    assert failure_status(reason) == (400 if reason in malformed else 401)
    assert VerifyFailure(reason, "x").status == failure_status(reason)

# ---------------------------------------------------------------------------------------------
# draft-cavage against the `httpsig` package and the from-the-spec verifier

@pytest.mark.parametrize("order", [
    ["(request-target)", "host", "date", "digest", "content-type"],   # Mastodon 4.3
    ["host", "date", "digest", "content-type", "(request-target)"],   # Mastodon 4.4-4.6
])
@pytest.mark.parametrize("sign_header", ["signature", "authorization"])
def test_httpsig_package_signs_we_verify(alice: rsa.RSAPrivateKey, order: list[str],
                                         sign_header: str) -> None:
    from httpsig import HeaderSigner

    body = b'{"type":"Follow"}'
    headers = {"Host": "blog.test", "Date": "Tue, 07 Jan 2025 12:00:00 GMT",
               "Digest": body_digest(body), "Content-Type": "application/activity+json"}
    signer = HeaderSigner(ALICE_KEY_ID, _pem(alice)[0], algorithm="rsa-sha256",
                          headers=order, sign_header=sign_header)
    signed = dict(signer.sign(headers, method="POST", path="/inbox?x=1"))
    sig = ok(prepare_verification("POST", "/inbox?x=1", signed, body, now=FROZEN))
    assert sig.covered == tuple(order)
    assert verify_signature(sig, alice.public_key()).ok
    fails(prepare_verification("POST", "/inbox?x=1", signed, body + b"!", now=FROZEN),
          R.digest_mismatch)


def test_we_sign_httpsig_package_and_spec_verifier_verify(alice: rsa.RSAPrivateKey) -> None:
    from httpsig import HeaderVerifier

    body = b'{"type":"Create"}'
    for method, url, payload, names in [("POST", "https://peer.test:8443/users/a/inbox?p=1",
                                         body, POST_SIGNED_HEADERS),
                                        ("GET", "https://peer.test/users/a", None,
                                         GET_SIGNED_HEADERS)]:
        added = sign_request(method, url, {}, payload, key_id=ALICE_KEY_ID, private_key=alice,
                             now=FROZEN)
        target = url.split("peer.test", 1)[1].removeprefix(":8443")
        assert added["Host"] == ("peer.test:8443" if ":8443" in url else "peer.test")
        assert added["Date"] == "Tue, 07 Jan 2025 12:00:00 GMT"
        assert ("Digest" in added) == (payload is not None)
        verifier = HeaderVerifier(added, _pem(alice)[1], required_headers=list(names),
                                  method=method, path=target, sign_header="signature")
        assert verifier.verify()
        assert spec_verify(alice.public_key(), method, target, list(added.items()))
        tampered = dict(added, Date="Tue, 07 Jan 2025 12:00:01 GMT")
        assert not spec_verify(alice.public_key(), method, target, list(tampered.items()))


def test_query_string_fallback_accepts_pre_4_3_mastodon(req: Req, alice: rsa.RSAPrivateKey,
                                                        ) -> None:
    """Mastodon < 4.3 signed (request-target) without the query; accepted like Mastodon does."""
    old = replace(req, target="/inbox?foo=bar")
    old = old.resigned(alice, list(POST_SIGNED_HEADERS), key_id=ALICE_KEY_ID)
    old = replace(old, target="/inbox?foo=bar")
    sig = ok(old.prepare())
    assert verify_signature(sig, alice.public_key()).ok  # signed with query
    stripped = replace(req, target="/inbox?foo=bar")  # the vector signed "/inbox"
    assert verify_signature(ok(stripped.prepare()), alice.public_key()).ok
    other_path = replace(req, target="/other?foo=bar")
    assert not verify_signature(ok(other_path.prepare()), alice.public_key()).ok


def test_hs2019_with_ed25519_and_created_expires(req: Req) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    created = int(FROZEN.timestamp())
    names = ["(request-target)", "host", "(created)", "(expires)", "digest"]
    params = {"created": str(created), "expires": str(created + 300)}
    signed = req.without("Date").resigned(key, names, key_id="https://x.test/a#ed",
                                          algorithm="hs2019", params=params)
    sig = ok(signed.prepare())
    assert sig.algorithm == "hs2019"
    assert verify_signature(sig, key.public_key()).ok
    rsa_sig = verify_signature(sig, rsa.generate_private_key(65537, 2048).public_key())
    assert not rsa_sig.ok
    fails(replace(signed, now=FROZEN + timedelta(minutes=66)).prepare(), R.date_out_of_window)
    expired = {"created": str(created), "expires": str(created + 10)}
    late = req.without("Date").resigned(key, names, key_id="k", algorithm="hs2019",
                                        params=expired)
    ok(replace(late, now=FROZEN + timedelta(minutes=59)).prepare())  # 1 h grace, as Mastodon
    fails(replace(late, now=FROZEN + timedelta(minutes=61)).prepare(), R.date_out_of_window)
    bogus = req.resigned(key, names[:2] + ["date", "(created)", "digest"], key_id="k",
                         algorithm="hs2019", params={"created": "soon"})
    fails(bogus.prepare(), R.malformed_signature)


def test_get_requires_request_target_host_date_but_no_digest(alice: rsa.RSAPrivateKey) -> None:
    added = sign_request("GET", "https://blog.test/actor", {}, None, key_id=ALICE_KEY_ID,
                         private_key=alice, now=FROZEN)
    sig = ok(prepare_verification("GET", "/actor", added, None, now=FROZEN))
    assert sig.covered == GET_SIGNED_HEADERS and verify_signature(sig, alice.public_key()).ok
    only_date = spec_sign(alice, ["date"], "GET", "/actor", list(added.items()), key_id="k")
    fails(prepare_verification("GET", "/actor", dict(added, Signature=only_date), None,
                               now=FROZEN), R.required_header_not_signed)
    empty_post = sign_request("POST", "https://blog.test/inbox", {}, None, key_id="k",
                              private_key=alice, now=FROZEN)
    assert empty_post["Digest"] == body_digest(b"")
    ok(prepare_verification("POST", "/inbox", empty_post, b"", now=FROZEN))


def test_cavage_may_cover_content_digest_instead_of_digest(req: Req, alice: rsa.RSAPrivateKey,
                                                           ) -> None:
    names = ["(request-target)", "host", "date", "content-digest"]
    swapped = req.without("Digest").set("Content-Digest", content_digest(req.body or b""))
    sig = ok(swapped.resigned(alice, names, key_id=ALICE_KEY_ID).prepare())
    assert verify_signature(sig, alice.public_key()).ok
    bad = swapped.set("Content-Digest", content_digest(b"other"))
    fails(bad.resigned(alice, names, key_id=ALICE_KEY_ID).prepare(), R.digest_mismatch)


# ---------------------------------------------------------------------------------------------
# RFC 9421 against `http-message-signatures`

def _hms(alg_name: str) -> Any:
    from http_message_signatures import algorithms
    return {"ed25519": algorithms.ED25519, "rsa-v1_5-sha256": algorithms.RSA_V1_5_SHA256,
            "rsa-pss-sha512": algorithms.RSA_PSS_SHA512}[alg_name]


@pytest.mark.parametrize(("alg", "include_alg"), [
    ("ed25519", True), ("ed25519", False), ("rsa-v1_5-sha256", True),
    ("rsa-v1_5-sha256", False),  # without alg an RSA key means v1.5, as in Mastodon
    ("rsa-pss-sha512", True),
])
def test_http_message_signatures_signs_we_verify(alg: str, include_alg: bool,
                                                 alice: rsa.RSAPrivateKey) -> None:
    from http_message_signatures import HTTPMessageSigner, MappingKeyResolver

    key = alice if alg.startswith("rsa") else ed25519.Ed25519PrivateKey.generate()
    body = b'{"type":"Like"}'
    message = _Message("POST", "https://blog.test/inbox?a=b", {"Host": "blog.test"})
    signer = HTTPMessageSigner(signature_algorithm=_hms(alg), key_resolver=MappingKeyResolver(
        public_keys={}, private_keys={"kid": key}))
    signer.sign(message, key_id="kid", created=FROZEN, include_alg=include_alg, body=body)
    sig = ok(prepare_verification("POST", "/inbox?a=b", message.headers, body, now=FROZEN))
    assert sig.covered == ("@method", "@authority", "@target-uri", "content-digest")
    assert verify_signature(sig, key.public_key()).ok
    fails(prepare_verification("POST", "/inbox?a=b", message.headers, b"x", now=FROZEN),
          R.digest_mismatch)
    moved = ok(prepare_verification("POST", "/inbox?a=c", message.headers, body, now=FROZEN))
    assert not verify_signature(moved, key.public_key()).ok


@pytest.mark.parametrize("key_type", ["ed25519", "rsa"])
def test_we_sign_rfc9421_http_message_signatures_verifies(key_type: str,
                                                          alice: rsa.RSAPrivateKey) -> None:
    from http_message_signatures import HTTPMessageVerifier, MappingKeyResolver

    key = alice if key_type == "rsa" else ed25519.Ed25519PrivateKey.generate()
    alg = "rsa-v1_5-sha256" if key_type == "rsa" else "ed25519"
    body = b'{"type":"Announce"}'
    now = datetime.now(UTC)  # the library checks `created` against the real clock
    for components in (None, ("@method", "@authority", "@path", "@query", "date", "host")):
        added = sign_request_rfc9421("post", "https://peer.test/inbox?q=1", {}, body,
                                     key_id="kid", private_key=key, now=now,
                                     components=components)
        message = _Message("POST", "https://peer.test/inbox?q=1", added)
        verifier = HTTPMessageVerifier(signature_algorithm=_hms(alg), key_resolver=(
            MappingKeyResolver(public_keys={"kid": key.public_key()}, private_keys={})))
        [result] = verifier.verify(message, body=body)
        assert result.parameters["keyid"] == "kid"
        sig = ok(prepare_verification("POST", "/inbox?q=1", added, body, now=now))
        assert verify_signature(sig, key.public_key()).ok


def test_authority_is_normalised_like_http_message_signatures_does() -> None:
    """@authority is lower-case without a default port even when Host is spelled otherwise."""
    from http_message_signatures import HTTPMessageSigner, MappingKeyResolver

    key = ed25519.Ed25519PrivateKey.generate()
    message = _Message("GET", "https://Blog.TEST:443/actor", {"Host": "Blog.TEST:443"})
    signer = HTTPMessageSigner(signature_algorithm=_hms("ed25519"), key_resolver=(
        MappingKeyResolver(public_keys={}, private_keys={"kid": key})))
    signer.sign(message, key_id="kid", created=FROZEN)
    sig = ok(prepare_verification("GET", "/actor", message.headers, None, now=FROZEN))
    assert b'"@authority": blog.test\n' in sig.signing_string
    assert verify_signature(sig, key.public_key()).ok


@pytest.mark.parametrize(("url", "host"), [
    ("https://Blog.Test:443/inbox", "blog.test"), ("https://blog.test:8443/", "blog.test:8443"),
    ("http://blog.test:80/x", "blog.test"), ("http://[::1]:8080/", "[::1]:8080"),
    ("https://[2001:DB8::1]/", "[2001:db8::1]"),
])
def test_sign_request_host_is_the_wire_authority(url: str, host: str,
                                                 alice: rsa.RSAPrivateKey) -> None:
    added = sign_request("GET", url, {}, None, key_id="k", private_key=alice, now=FROZEN)
    assert added["Host"] == host
    assert sign_request("GET", url, {"host": "override.test"}, None, key_id="k",
                        private_key=alice, now=FROZEN)["Host"] == "override.test"


@pytest.mark.parametrize("url", ["ftp://blog.test/", "/relative", "https://bücher.test/"])
def test_sign_request_refuses_urls_it_cannot_put_on_the_wire(url: str,
                                                             alice: rsa.RSAPrivateKey) -> None:
    with pytest.raises(ValueError):
        sign_request("GET", url, {}, None, key_id="k", private_key=alice, now=FROZEN)
    with pytest.raises(ValueError):
        sign_request("GET", "https://blog.test/", {}, None, key_id="k", private_key=alice,
                     now=datetime(2025, 1, 7))  # naive datetimes are a bug, not UTC


# ---------------------------------------------------------------------------------------------
# RFC 9421 policy

@pytest.fixture
def ed_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def _signed9421(key: Any, components: tuple[str, ...], *, body: bytes | None = b"{}",
                headers: Mapping[str, str] = {}, **kwargs: Any) -> dict[str, str]:
    added = sign_request_rfc9421("POST", "https://blog.test/inbox", headers, body, key_id="kid",
                                 private_key=key, now=FROZEN, components=components, **kwargs)
    return {**headers, **added}


def _check9421(headers: Mapping[str, str], body: bytes | None = b"{}", **kwargs: Any,
               ) -> SignatureInput | VerifyFailure:
    return prepare_verification("POST", "/inbox", headers, body, now=FROZEN, **kwargs)


def test_rfc9421_policy(ed_key: ed25519.Ed25519PrivateKey) -> None:
    full = ("@method", "@target-uri", "content-digest")
    ok(_check9421(_signed9421(ed_key, full)))
    legacy = {"Digest": body_digest(b"{}")}
    ok(_check9421(_signed9421(ed_key, ("@method", "host", "@request-target", "digest"),
                              headers=legacy)))
    fails(_check9421(_signed9421(ed_key, ("@target-uri", "content-digest"))),
          R.required_header_not_signed)
    fails(_check9421(_signed9421(ed_key, ("@method", "@path", "content-digest"))),
          R.required_header_not_signed)
    not_covered = _signed9421(ed_key, ("@method", "@target-uri"), body=None)
    fails(_check9421(not_covered | {"Content-Digest": content_digest(b"{}")}),
          R.digest_not_signed)
    fails(_check9421(not_covered), R.digest_missing)
    fails(_check9421(_signed9421(ed_key, full), body=b"{ }"), R.digest_mismatch)
    fails(_check9421(_signed9421(ed_key, full), expected_host="else.test"), R.host_mismatch)
    hmac_alg = _signed9421(ed_key, full)
    hmac_alg["Signature-Input"] = hmac_alg["Signature-Input"].replace('"ed25519"', '"hmac-sha256"')
    fails(_check9421(hmac_alg), R.unsupported_algorithm)
    with pytest.raises(ValueError, match="x-absent"):
        _signed9421(ed_key, ("@method", "@target-uri", "x-absent"))


@pytest.mark.parametrize(("mutate", "reason"), [
    (lambda si: si + ', sig2=("@method");created=1;keyid="x"', R.ambiguous_signature),
    (lambda si: si + ";created=1", R.ambiguous_signature),
    (lambda si: si.replace('"@method"', '"@method" "@method"'), R.ambiguous_signature),
    (lambda si: si.replace('"@method"', '"@method";sf'), R.unsupported_component),
    (lambda si: si.replace('"@method"', '"@method" "@query-param";name="a"'),
     R.unsupported_component),
    (lambda si: si.replace(';keyid="kid"', ""), R.malformed_signature),
    (lambda si: si.replace("created=", "created=-"), R.date_out_of_window),
    (lambda si: si.replace("created=", 'created="') + '"', R.malformed_signature),
    (lambda si: si.replace("sig1=", "other="), R.malformed_signature),
    (lambda si: si.replace('"@method"', "@method"), R.malformed_signature),
    (lambda si: si.replace('"@method"', '"@Method"'), R.malformed_signature),
    (lambda si: si + ";expires=1000", R.date_out_of_window),
    (lambda si: si.replace(";created=1736251200", ""), R.required_header_not_signed),  # Date
    (lambda si: si.replace('"@method"', '"@method" "x-missing"'), R.signed_header_missing),
    (lambda si: si[:-1], R.malformed_signature),
])
def test_rfc9421_tampered_signature_input(ed_key: ed25519.Ed25519PrivateKey, mutate: Any,
                                          reason: FailureReason) -> None:
    headers = _signed9421(ed_key, ("@method", "@target-uri", "content-digest"))
    assert isinstance(_check9421(headers), SignatureInput)
    fails(_check9421(dict(headers, **{"Signature-Input": mutate(headers["Signature-Input"])})),
          reason)


def test_rfc9421_created_or_date_window_and_key_type(ed_key: ed25519.Ed25519PrivateKey,
                                                     alice: rsa.RSAPrivateKey) -> None:
    headers = _signed9421(ed_key, ("@method", "@target-uri", "content-digest"))
    for minutes, good in [(65, True), (66, False), (-60, True), (-61, False)]:
        result = prepare_verification("POST", "/inbox", headers, b"{}",
                                      now=FROZEN + timedelta(minutes=minutes))
        assert isinstance(result, SignatureInput) is good, (minutes, result)
    sig = ok(_check9421(headers))
    assert verify_signature(sig, ed_key.public_key()).ok
    mismatch = verify_signature(sig, alice.public_key())
    assert mismatch.failure and mismatch.failure.reason is R.key_mismatch
    without_alg = ok(_check9421(_signed9421(alice, ("@method", "@target-uri", "content-digest"),
                                            include_alg=False)))
    assert verify_signature(without_alg, alice.public_key()).ok  # alg from the key type
    with_date = _signed9421(ed_key, ("@method", "@target-uri", "date", "content-digest"))
    ok(_check9421(with_date))  # created and Date both signed: both are checked
    fails(prepare_verification("POST", "/inbox", with_date, b"{}",
                               now=FROZEN + timedelta(minutes=66)), R.date_out_of_window)
    no_time = dict(with_date)
    del no_time["Date"]
    no_time["Signature-Input"] = no_time["Signature-Input"].replace(";created=1736251200", "")
    fails(_check9421(no_time), R.date_missing)
    fails(prepare_verification("POST", "/inbox", dict(with_date, Date="nonsense"), b"{}",
                               now=FROZEN), R.date_malformed)


# ---------------------------------------------------------------------------------------------
# Structured fields against `http_sf`

SF_VALID = [
    'sig1=("@method" "@target-uri" "content-digest");created=1736251200;keyid="a#b";alg="ed25519"',
    'a=1, b=?0, c=:AAE=:, d=1.5, e=tok/en:x, f="q\\"uote\\\\", g',
    'a=(), b=(1 2);x=?1, c=-12.125;y="z"',
    "  a=1 ,\tb=2  ",
    'a=("x";p=1 "y");q',
    "sha-256=:cEwp/FaarEAFf/Qdvyh7M6V6nqoJuPbiGu0fVRUUaUE=:, sha-512=:AA==:",
]
SF_INVALID = ['a=1,', "A=1", 'a="unterminated', "a=:not base64!:", "a=(1 2", "a=1;", "a=?2",
              'a="\x01"', "a=1.2345", "a=1234567890123456", "a=1 b=2", "a=1.", 'a="é"']


@pytest.mark.parametrize("text", SF_VALID)
def test_sf_parser_agrees_with_http_sf(text: str) -> None:
    ours = rfc9421.serialize_dictionary(rfc9421.parse_dictionary(text))
    assert ours == http_sf.ser(http_sf.parse(text.encode(), tltype="dictionary"))


@pytest.mark.parametrize("text", SF_INVALID)
def test_sf_parser_rejects_what_http_sf_rejects(text: str) -> None:
    with pytest.raises(Exception):  # noqa: B017 - any error is a rejection for http_sf
        http_sf.parse(text.encode("utf-8"), tltype="dictionary")
    with pytest.raises(rfc9421.WireFormatError):
        rfc9421.parse_dictionary(text)


def test_sf_duplicates_are_ambiguity_not_last_wins() -> None:
    """RFC 8941 says the last one wins; for signatures we refuse instead."""
    for text in ["a=1, a=2", "a=1;p=1;p=2", 'a=("x";p;p)']:
        assert http_sf.parse(text.encode(), tltype="dictionary")  # http_sf accepts
        with pytest.raises(rfc9421.AmbiguityError):
            rfc9421.parse_dictionary(text)

@pytest.mark.parametrize("text", ["a=@1736251200", 'a=%"caf%c3%a9"', "a=1;d=@0"])
def test_sf_rfc9651_types_are_not_signature_fields(text: str) -> None:
    """http_sf also reads RFC 9651 Dates and Display Strings; RFC 9421/9530 fields use neither."""
    assert http_sf.parse(text.encode(), tltype="dictionary")
    with pytest.raises(rfc9421.WireFormatError, match="is not allowed in a signature field"):
        rfc9421.parse_dictionary(text)


if __name__ == "__main__" and sys.argv[1:] == ["--regenerate"]:
    _regenerate_vectors()

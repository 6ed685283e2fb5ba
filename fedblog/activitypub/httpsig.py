"""HTTP Signatures, pure: sign outgoing requests, and verify incoming ones in two steps.

Outbound we speak draft-cavage `rsa-sha256` — the profile every fediverse server accepts
(https://docs.joinmastodon.org/spec/security/) — and can also emit RFC 9421
(`sign_request_rfc9421`) for tests and fake peers.
Inbound we accept draft-cavage (`rsa-sha256`, `hs2019`) and RFC 9421 (`rsa-v1_5-sha256`,
`ed25519`, `rsa-pss-sha512`). Verification is split so no network I/O happens here:

1. `prepare_verification(...)` parses the request and enforces policy (docs/security.md §1:
   signed times within the clock-skew window, the required signed headers); it returns the
   `SignatureInput` (key id + exact bytes that were signed) or a `VerifyFailure`. The caller
   fetches the key for `key_id` only after this succeeded.
2. `verify_signature(sig, public_key)` checks the cryptography. Who owns the key, and whether
   that owner is the activity's actor (invariant 2), is the caller's business.

Failure reasons, in the order they are checked (the first failing check wins; the status is
`failure_status(reason)`):

    0. only with expected_host: one Host, naming this server ........ ambiguous_header 400
                                                                        host_mismatch 401
    1. a Signature-Input (-> RFC 9421), Signature or
       Authorization: Signature header (-> cavage) is present ......... missing_signature 401
    2. it parses; keyId/keyid, signature (and cavage headers=) exist ... malformed_signature 400
       nothing repeated (parameter, label, component, header name,
       two different Signature headers, several 9421 signatures) ..... ambiguous_signature 400
       every 9421 component is derivable (not @query-param, ;sf, ...) . unsupported_component 401
    3. algorithm is rsa-sha256/hs2019 (cavage) or rsa-v1_5-sha256,
       ed25519, rsa-pss-sha512, absent (9421) ......................... unsupported_algorithm 401
       (created)/(expires) only with hs2019 ........................... malformed_signature 400
    4. coverage: a time is signed (date, (created), 9421 created) ...... date_missing 401, or
                                                                        required_header_not_signed
       with a body: a digest header exists ............................. digest_missing 401
                    and is covered ...................................... digest_not_signed 401
       cavage: required_post/get_headers ((request-target) host date
       [digest]); 9421: @method and @target-uri (or @authority/host
       and @path/@request-target) .................................. required_header_not_signed 401
    5. every covered header is present (date -> date_missing,
       digest -> digest_missing) ....................................... signed_header_missing 401
       Host/Date/Authorization/Signature not repeated ................. ambiguous_header 400
    6. signed times parse ............................................. date_malformed 400
       Date/created no more than max_age (65 min) old nor max_future
       (60 min) ahead; an explicit expires + max_future not passed .... date_out_of_window 401
    7. covered digest headers parse ................................... digest_malformed 400
       and every SHA-256/SHA-512 value matches the exact body ......... digest_mismatch 401
    verify_signature:
    8. the key's type fits the algorithm ............................... key_mismatch 401
    9. the signature verifies with the key ............................. bad_signature 401

Cavage quirk kept on purpose (INTEROP §2.1): when `(request-target)` is covered and the target
has a query, a signature over the path *without* the query is also accepted, as Mastodon and
GoToSocial do (`SignatureInput.fallback_signing_string`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Literal

from fedblog.activitypub import httpsig_rfc9421 as rfc9421
from fedblog.activitypub import httpsig_wire as wire
from fedblog.activitypub.httpsig_rfc9421 import FROM_KEY, sign_request_rfc9421
from fedblog.activitypub.httpsig_wire import (
    AmbiguityError,
    MissingFieldError,
    UnsupportedComponentError,
    WireFormatError,
    body_digest,
    content_digest,
)

__all__ = [
    "FROM_KEY", "GET_SIGNED_HEADERS", "POST_SIGNED_HEADERS", "FailureReason", "SignatureInput",
    "Verification", "VerifyFailure", "body_digest", "content_digest", "failure_status",
    "prepare_verification", "sign_request", "sign_request_rfc9421", "verify_signature",
]

#: Re-exported so callers need only this module (both live with their wire formats).
sign_request = wire.sign_request

POST_SIGNED_HEADERS = wire.POST_SIGNED_HEADERS  # ("(request-target)", "host", "date", "digest")
GET_SIGNED_HEADERS = wire.GET_SIGNED_HEADERS  # ("(request-target)", "host", "date")

_DIGEST_FIELDS = ("digest", "content-digest")
_CAVAGE_ALGORITHMS = ("rsa-sha256", "hs2019")


class FailureReason(enum.Enum):
    missing_signature = "missing_signature"
    malformed_signature = "malformed_signature"
    ambiguous_signature = "ambiguous_signature"
    ambiguous_header = "ambiguous_header"
    host_mismatch = "host_mismatch"
    unsupported_algorithm = "unsupported_algorithm"
    unsupported_component = "unsupported_component"
    date_missing = "date_missing"
    date_malformed = "date_malformed"
    date_out_of_window = "date_out_of_window"
    digest_missing = "digest_missing"
    digest_malformed = "digest_malformed"
    digest_mismatch = "digest_mismatch"
    digest_not_signed = "digest_not_signed"
    required_header_not_signed = "required_header_not_signed"
    signed_header_missing = "signed_header_missing"
    key_mismatch = "key_mismatch"
    bad_signature = "bad_signature"


_MALFORMED = frozenset({
    FailureReason.malformed_signature, FailureReason.ambiguous_signature,
    FailureReason.ambiguous_header, FailureReason.date_malformed, FailureReason.digest_malformed,
})


def failure_status(reason: FailureReason) -> int:
    """The one mapping from reason to HTTP status: 400 for unparseable input, else 401.

    401 (not 403) matters: Fedify and Mastodon 4.7 retry with the other signature scheme after
    a 400/401 (INTEROP §2.3-2.4), and Mastodon itself answers 401 for bad signatures.
    """
    return 400 if reason in _MALFORMED else 401


@dataclass(frozen=True)
class VerifyFailure:
    reason: FailureReason
    detail: str  # one sentence for logs and the 401 body, naming exactly what is wrong

    @property
    def status(self) -> int:
        return failure_status(self.reason)


@dataclass(frozen=True)
class SignatureInput:
    """What was signed, ready for `verify_signature` once the key for `key_id` is at hand."""

    scheme: Literal["draft-cavage", "rfc9421"]
    key_id: str
    algorithm: str  # as named on the wire; FROM_KEY for RFC 9421 without `alg`
    signing_string: bytes
    signature: bytes
    covered: tuple[str, ...]
    fallback_signing_string: bytes | None = None  # cavage: (request-target) without the query
    created: int | None = None  # the signed created/expires times (Unix seconds), when the signature has them
    expires: int | None = None


def evidence(sig: SignatureInput) -> dict[str, object]:
    """What a verified signature proves, to store with what it brought (JSON-ready): the scheme and
    algorithm, the key id, the signed components in order, and the created/expires times if signed."""
    out: dict[str, object] = {"type": "http-signature", "scheme": sig.scheme, "algorithm": sig.algorithm,
                              "keyId": sig.key_id, "headers": list(sig.covered)}
    if sig.created is not None:
        out["created"] = sig.created
    if sig.expires is not None:
        out["expires"] = sig.expires
    return out


@dataclass(frozen=True)
class Verification:
    ok: bool
    key_id: str
    scheme: str
    failure: VerifyFailure | None = None


def _fail(reason: FailureReason, detail: str) -> VerifyFailure:
    return VerifyFailure(reason, detail)


# ---------------------------------------------------------------------------------------------
# Verification, step 1: parse and enforce policy

def prepare_verification(
    method: str, target: str, headers: Mapping[str, str], body: bytes | None, *,
    now: datetime, max_age: timedelta = timedelta(minutes=65),
    max_future: timedelta = timedelta(minutes=60),
    required_post_headers: Sequence[str] = POST_SIGNED_HEADERS,
    required_get_headers: Sequence[str] = GET_SIGNED_HEADERS,
    scheme: str = "https", expected_host: str | None = None,
) -> SignatureInput | VerifyFailure:
    """Check a received request's signature headers; nothing here touches the network.

    `target` is the raw path?query as received (ASGI `raw_path` + `query_string`); `headers` is
    any mapping whose `items()` yields every field line, names in any case; `body` is the exact
    body. POST/PUT/PATCH, or any non-empty body, must carry a covered digest that matches;
    `required_post_headers` then applies to cavage, else `required_get_headers`. RFC 9421's
    `@target-uri` is `scheme://<Host header><target>`. With `expected_host` the Host header must
    name this server (Misskey's check), so a request signed for another server is refused.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    lines = wire.field_lines(headers)
    has_content = bool(body) or method.upper() in wire.BODY_METHODS
    req = _Request(method, target, lines, body or b"", has_content, scheme)
    window = _Window(now, max_age, max_future)
    if expected_host is not None and (failure := _check_host(lines, expected_host, scheme)):
        return failure
    if "signature-input" in lines:
        return _prepare_rfc9421(req, window)
    required = required_post_headers if has_content else required_get_headers
    return _prepare_cavage(req, window, tuple(name.lower() for name in required))


@dataclass(frozen=True)
class _Request:
    method: str
    target: str
    lines: dict[str, list[str]]
    body: bytes
    has_content: bool
    scheme: str


@dataclass(frozen=True)
class _Window:
    now: datetime
    max_age: timedelta
    max_future: timedelta


def _check_host(lines: dict[str, list[str]], expected: str, scheme: str) -> VerifyFailure | None:
    try:
        host = wire.field_value(lines, "host")
    except (MissingFieldError, AmbiguityError):
        return _fail(FailureReason.ambiguous_header, "the request must carry exactly one Host")
    if wire.normalize_authority(host, scheme) != wire.normalize_authority(expected, scheme):
        return _fail(FailureReason.host_mismatch,
                     f"the request is addressed to {host!r}, not to this server ({expected!r})")
    return None


def _prepare_cavage(req: _Request, window: _Window, required: tuple[str, ...],
                    ) -> SignatureInput | VerifyFailure:
    params = _cavage_params(req.lines)
    if isinstance(params, VerifyFailure):
        return params
    key_id, encoded = params.get("keyId", ""), params.get("signature", "")
    algorithm = params.get("algorithm", "hs2019").lower()  # Mastodon's default too
    names = tuple(params.get("headers", "(created)" if algorithm == "hs2019" else "date")
                  .lower().split())
    if failure := _cavage_shape(key_id, encoded, algorithm, names):
        return failure
    if failure := _cavage_coverage(names, req, required):
        return failure
    try:
        signature = wire.b64decode(encoded)
    except WireFormatError:
        return _fail(FailureReason.malformed_signature, "the signature parameter is not base64")
    try:
        text = wire.cavage_signing_string(names, method=req.method, target=req.target,
                                          lines=req.lines, params=params)
        fallback = None
        if "(request-target)" in names and "?" in req.target:
            fallback = wire.cavage_signing_string(names, method=req.method, lines=req.lines,
                                                  target=req.target.partition("?")[0],
                                                  params=params)
    except (MissingFieldError, WireFormatError) as exc:
        return _header_failure(exc)
    created = _number(params, "created", "(created)" in names)
    expires = _number(params, "expires", "(expires)" in names)
    if failure := _check_times(req, window, date_signed="date" in names, created=created, expires=expires):
        return failure
    if failure := _check_digests(names, req):
        return failure
    return SignatureInput("draft-cavage", key_id, algorithm, text, signature, names, fallback,
                          _whole(created), _whole(expires))


def _cavage_params(lines: dict[str, list[str]]) -> dict[str, str] | VerifyFailure:
    values = lines.get("signature", []) + [
        auth[10:] for auth in lines.get("authorization", []) if auth[:10].lower() == "signature "]
    if not values:
        return _fail(FailureReason.missing_signature, "the request carries no Signature, "
                     "Signature-Input or Authorization: Signature header")
    if len(set(values)) > 1:
        return _fail(FailureReason.ambiguous_signature,
                     f"the request carries {len(values)} different signatures; one is supported")
    try:
        return wire.parse_cavage_params(values[0])
    except AmbiguityError as exc:
        return _fail(FailureReason.ambiguous_signature, f"{exc}")
    except WireFormatError as exc:
        return _fail(FailureReason.malformed_signature, f"{exc}")


def _cavage_shape(key_id: str, encoded: str, algorithm: str, names: tuple[str, ...],
                  ) -> VerifyFailure | None:
    if not key_id or not encoded or not names:
        return _fail(FailureReason.malformed_signature,
                     "the Signature header needs non-empty keyId, signature and headers")
    if algorithm not in _CAVAGE_ALGORITHMS:
        return _fail(FailureReason.unsupported_algorithm,
                     f"algorithm {algorithm!r} is not supported; use rsa-sha256 or hs2019")
    if len(set(names)) != len(names):
        return _fail(FailureReason.ambiguous_signature, "headers= lists a header twice")
    if algorithm != "hs2019" and {"(created)", "(expires)"} & set(names):
        return _fail(FailureReason.malformed_signature,
                     f"(created)/(expires) may only be signed with hs2019, not {algorithm}")
    return None


def _cavage_coverage(names: tuple[str, ...], req: _Request, required: tuple[str, ...],
                     ) -> VerifyFailure | None:
    covered = set(names)
    if "date" not in covered and "(created)" not in covered:
        return _time_unsigned(req.lines)
    if req.has_content and (failure := _digest_coverage(covered, req.lines)):
        return failure
    alternatives = {"date": "(created)", "digest": "content-digest"}
    missing = [name for name in required
               if name not in covered and alternatives.get(name) not in covered]
    if missing:
        return _fail(FailureReason.required_header_not_signed,
                     f"the signature must cover {' '.join(missing)}; it covers {' '.join(names)}")
    return None


def _number(params: Mapping[str, str], name: str, signed: bool) -> float | None:
    return float(params[name]) if signed else None  # syntax checked by cavage_signing_string


def _whole(value: float | None) -> int | None:
    return int(value) if value is not None else None


def _prepare_rfc9421(req: _Request, window: _Window) -> SignatureInput | VerifyFailure:
    try:
        parsed = rfc9421.parse_signature_fields(", ".join(req.lines["signature-input"]),
                                                ", ".join(req.lines.get("signature", [])))
    except AmbiguityError as exc:
        return _fail(FailureReason.ambiguous_signature, f"{exc}")
    except UnsupportedComponentError as exc:
        return _fail(FailureReason.unsupported_component, f"{exc}")
    except WireFormatError as exc:
        return _fail(FailureReason.malformed_signature, f"{exc}")
    key_id, alg = parsed.params.get("keyid"), parsed.params.get("alg", FROM_KEY)
    if not isinstance(key_id, str) or not key_id:
        return _fail(FailureReason.malformed_signature, "Signature-Input needs a keyid parameter")
    if alg != FROM_KEY and alg not in wire.ALGORITHMS:
        return _fail(FailureReason.unsupported_algorithm,
                     f"alg {alg!r} is not supported; use one of {', '.join(wire.ALGORITHMS)}")
    if failure := _rfc9421_coverage(parsed.components, parsed.params, req):
        return failure
    try:
        values = [(name, rfc9421.component_value(name, method=req.method, target=req.target,
                                                 scheme=req.scheme, lines=req.lines))
                  for name in parsed.components]
        base = rfc9421.signature_base(values, parsed.signature_params)
    except (MissingFieldError, WireFormatError) as exc:
        return _header_failure(exc)
    if failure := _check_times(req, window, date_signed="date" in parsed.components,
                               created=parsed.int_param("created"),
                               expires=parsed.int_param("expires")):
        return failure
    if failure := _check_digests(parsed.components, req):
        return failure
    return SignatureInput("rfc9421", key_id, str(alg), base, parsed.signature, parsed.components,
                          created=parsed.int_param("created"), expires=parsed.int_param("expires"))


def _rfc9421_coverage(components: tuple[str, ...], params: Mapping[str, object], req: _Request,
                      ) -> VerifyFailure | None:
    covered = set(components)
    if "created" not in params and "date" not in covered:
        return _time_unsigned(req.lines)
    if req.has_content and (failure := _digest_coverage(covered, req.lines)):
        return failure
    missing = [] if "@method" in covered else ["@method"]
    if "@target-uri" not in covered and not (
            covered & {"@authority", "host"} and covered & {"@path", "@request-target"}):
        missing.append("@target-uri (or @authority and @path)")
    if missing:
        return _fail(FailureReason.required_header_not_signed,
                     f"the signature must cover {', '.join(missing)}; "
                     f"it covers {' '.join(components) or 'nothing'}")
    return None


# ---------------------------------------------------------------------------------------------
# Checks both schemes share

def _time_unsigned(lines: Mapping[str, list[str]]) -> VerifyFailure:
    if "date" in lines:
        return _fail(FailureReason.required_header_not_signed,
                     "the signature covers neither the Date header nor a created time")
    return _fail(FailureReason.date_missing, "the request has no Date header and the signature "
                 "no created time, so its age cannot be checked")


def _digest_coverage(covered: set[str], lines: Mapping[str, list[str]]) -> VerifyFailure | None:
    if covered & set(_DIGEST_FIELDS):
        return None
    present = [name for name in _DIGEST_FIELDS if name in lines]
    if not present:
        return _fail(FailureReason.digest_missing,
                     "a request with a body needs a Digest or Content-Digest header")
    return _fail(FailureReason.digest_not_signed,
                 f"the {present[0]} header is present but the signature does not cover it")


def _header_failure(exc: Exception) -> VerifyFailure:
    if isinstance(exc, MissingFieldError):
        name = exc.args[0]
        reason = {"date": FailureReason.date_missing, "digest": FailureReason.digest_missing,
                  "content-digest": FailureReason.digest_missing}.get(
                      name, FailureReason.signed_header_missing)
        return _fail(reason, f"the signature covers {name} but the request has no such header")
    if isinstance(exc, AmbiguityError):
        return _fail(FailureReason.ambiguous_header, f"{exc}")
    if isinstance(exc, UnsupportedComponentError):
        return _fail(FailureReason.unsupported_component, f"{exc}")
    return _fail(FailureReason.malformed_signature, f"{exc}")


def _check_times(req: _Request, window: _Window, *, date_signed: bool, created: float | None,
                 expires: float | None) -> VerifyFailure | None:
    """Clock skew: every signed time (Date, created) within [now - max_age, now + max_future]."""
    times: list[tuple[str, datetime]] = []
    try:
        if date_signed:
            times.append(("the Date header", _http_date(wire.field_value(req.lines, "date"))))
        if created is not None:
            times.append(("the created time", datetime.fromtimestamp(created, UTC)))
        expiry = datetime.fromtimestamp(expires, UTC) if expires is not None else None
    except (TypeError, ValueError, OverflowError, OSError) as exc:
        return _fail(FailureReason.date_malformed, f"a signed time does not parse: {exc}")
    for label, moment in times:
        if moment - window.now > window.max_future:
            return _fail(FailureReason.date_out_of_window, f"{label} ({moment.isoformat()}) is "
                         f"{moment - window.now} ahead of our clock; at most {window.max_future}")
        if window.now - moment > window.max_age:
            return _fail(FailureReason.date_out_of_window, f"{label} ({moment.isoformat()}) is "
                         f"{window.now - moment} old; at most {window.max_age} is accepted")
    if expiry is not None and window.now - expiry > window.max_future:
        return _fail(FailureReason.date_out_of_window,
                     f"the signature expired at {expiry.isoformat()}")
    return None


def _http_date(value: str) -> datetime:
    moment = parsedate_to_datetime(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _check_digests(covered: Sequence[str], req: _Request) -> VerifyFailure | None:
    """Every covered digest header must parse and match the exact body bytes."""
    for name in (name for name in _DIGEST_FIELDS if name in covered):
        value = wire.field_value(req.lines, name)
        try:
            parse = rfc9421.parse_content_digest if name == "content-digest" else wire.parse_digest
            pairs = parse(value)
        except WireFormatError as exc:
            return _fail(FailureReason.digest_malformed, f"the {name} header does not parse: {exc}")
        outcome = wire.digests_match(pairs, req.body)
        if outcome == "no-supported-algorithm":
            return _fail(FailureReason.digest_mismatch,
                         f"the {name} header has no SHA-256 or SHA-512 value")
        if outcome == "mismatch":
            return _fail(FailureReason.digest_mismatch,
                         f"the {name} header does not match the {len(req.body)}-byte body")
    return None


# ---------------------------------------------------------------------------------------------
# Verification, step 2: the cryptography

def verify_signature(sig: SignatureInput, public_key: object) -> Verification:
    """Check `sig` against the key fetched for `sig.key_id` (RSA or Ed25519 public key)."""
    try:
        algorithm = _concrete_algorithm(sig.algorithm, public_key)
        ok = wire.verify_bytes(algorithm, public_key, sig.signing_string, sig.signature)
        if not ok and sig.fallback_signing_string is not None:
            ok = wire.verify_bytes(algorithm, public_key, sig.fallback_signing_string,
                                   sig.signature)
    except wire.KeyTypeError as exc:
        return Verification(False, sig.key_id, sig.scheme, VerifyFailure(
            FailureReason.key_mismatch, f"{exc} (keyId {sig.key_id}, algorithm {sig.algorithm})"))
    if ok:
        return Verification(True, sig.key_id, sig.scheme)
    return Verification(False, sig.key_id, sig.scheme, VerifyFailure(
        FailureReason.bad_signature, f"the signature does not verify with the key {sig.key_id}"))


def _concrete_algorithm(name: str, key: object) -> str:
    if name == "rsa-sha256":
        return wire.RSA_V1_5_SHA256
    if name in ("hs2019", FROM_KEY):
        return wire.algorithm_for_key(key)  # hs2019: the key's type decides (Mastodon: RSA only)
    return name

"""Wire formats shared by both HTTP-signature schemes, and the draft-cavage ones.

`fedblog.activitypub.httpsig` is the policy layer (what must be signed, time windows, failure
reasons). This module and `httpsig_rfc9421` only know how things are spelled and computed, so
draft-cavage and RFC 9421 share one header normaliser, one set of digest helpers and one set of
algorithm primitives. Nothing here imports `httpsig` (the dependency runs one way): problems are
raised as the exceptions below, which `httpsig` turns into `FailureReason`s.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Literal
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

POST_SIGNED_HEADERS = ("(request-target)", "host", "date", "digest")
GET_SIGNED_HEADERS = ("(request-target)", "host", "date")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})  # these always carry a body (maybe b"")


class WireFormatError(ValueError):
    """A header value does not parse."""


class AmbiguityError(WireFormatError):
    """Something appears twice where one reader could pick the first and another the last."""


class UnsupportedComponentError(WireFormatError):
    """A covered component (cavage pseudo-header, RFC 9421 component) we cannot derive."""


class MissingFieldError(LookupError):
    """A covered header field is absent from the request; `args[0]` is its lower-case name."""


class KeyTypeError(TypeError):
    """The key's type does not fit the signature algorithm."""


def b64decode(text: str) -> bytes:
    """Strict base64 (padding required, no stray characters)."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WireFormatError(f"invalid base64 {text[:40]!r}") from exc


# ---------------------------------------------------------------------------------------------
# Header fields, authorities, dates

#: Fields that must occur at most once: joining two of them with ", " names nothing sensible,
#: and a proxy and the application might each read a different line.
SINGLETON_FIELDS = frozenset({"host", "date", "authorization", "signature"})


def field_lines(headers: Mapping[str, str]) -> dict[str, list[str]]:
    """Lower-cased name -> every field line's value, in order, trimmed of OWS.

    Iterates `items()`, so a Starlette `Headers` or a multidict reports repeated lines, and a
    plain dict holding both "Date" and "date" counts as two lines.
    """
    lines: dict[str, list[str]] = {}
    for name, value in headers.items():
        lines.setdefault(name.lower(), []).append(value.strip(" \t"))
    return lines


def field_value(lines: Mapping[str, list[str]], name: str) -> str:
    """The value a signature covers: the lines joined with ", " (RFC 9421 §2.1, cavage §2.3)."""
    values = lines.get(name)
    if not values:
        raise MissingFieldError(name)
    if len(values) > 1 and name in SINGLETON_FIELDS:
        raise AmbiguityError(f"the {name} header appears {len(values)} times")
    return ", ".join(values)


_DEFAULT_PORTS = {"http": "80", "https": "443"}


def normalize_authority(authority: str, scheme: str) -> str:
    """Lower-case host, default port dropped (RFC 9110 §4.2.3), as `@authority` wants."""
    host, port = authority.lower(), ""
    if host.startswith("["):
        end = host.find("]")
        host, port = host[: end + 1], host[end + 1 :].removeprefix(":")
    elif ":" in host:
        host, _, port = host.rpartition(":")
    if not port or port.lstrip("0") == _DEFAULT_PORTS.get(scheme.lower()):
        return host
    return f"{host}:{port}"


def wire_authority(url: str) -> str:
    """The Host header for `url` as it goes on the wire: lower-case, port only if non-default."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"not an absolute http(s) URL: {url!r}")
    if not parts.hostname.isascii():
        raise ValueError(f"IDNA-encode the host before signing: {url!r}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return normalize_authority(f"{host}:{parts.port}" if parts.port else host, parts.scheme)


def request_target(url: str) -> str:
    """Path and query of `url`, exactly as spelled there (`/` for an empty path)."""
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def http_date(now: datetime) -> str:
    """RFC 7231 IMF-fixdate, e.g. `Tue, 07 Jan 2025 12:00:00 GMT` (what Mastodon sends)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return format_datetime(now.astimezone(UTC), usegmt=True)


# ---------------------------------------------------------------------------------------------
# Body digests: RFC 3230 `Digest` (cavage world) and RFC 9530 `Content-Digest`

HASHES = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}
DigestOutcome = Literal["match", "mismatch", "no-supported-algorithm"]


def body_digest(body: bytes) -> str:
    """`Digest` header value `SHA-256=<base64>`: a single value, as Misskey's regex insists."""
    return "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


def content_digest(body: bytes) -> str:
    """`Content-Digest` header value (RFC 9530), `sha-256=:<base64>:`."""
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii") + ":"


def parse_digest(value: str) -> list[tuple[str, bytes]]:
    """`Digest: SHA-256=abc=, SHA-512=def=` -> [("sha-256", raw), ...]; names lower-cased."""
    pairs = []
    for part in value.split(","):
        alg, sep, encoded = part.strip().partition("=")
        if not sep or not alg:
            raise WireFormatError(f"Digest member {part.strip()!r} is not <algorithm>=<base64>")
        pairs.append((alg.lower(), b64decode(encoded)))
    return pairs


def digests_match(pairs: Sequence[tuple[str, bytes]], body: bytes) -> DigestOutcome:
    """Every SHA-256/SHA-512 value must match `body`; other algorithms are ignored."""
    usable = [(alg, raw) for alg, raw in pairs if alg in HASHES]
    if not usable:
        return "no-supported-algorithm"
    if all(hmac.compare_digest(raw, HASHES[alg](body).digest()) for alg, raw in usable):
        return "match"
    return "mismatch"


# ---------------------------------------------------------------------------------------------
# Algorithms (RFC 9421 §3.3 names; cavage rsa-sha256 is rsa-v1_5-sha256)

RSA_V1_5_SHA256 = "rsa-v1_5-sha256"
RSA_PSS_SHA512 = "rsa-pss-sha512"
ED25519 = "ed25519"
ALGORITHMS = (RSA_V1_5_SHA256, RSA_PSS_SHA512, ED25519)

_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA512()), salt_length=64)


def algorithm_for_key(key: object) -> str:
    """The algorithm a bare key implies (cavage hs2019, RFC 9421 without `alg`)."""
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return RSA_V1_5_SHA256
    if isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
        return ED25519
    raise KeyTypeError(f"{type(key).__name__} keys are not supported (RSA or Ed25519 only)")


def sign_bytes(algorithm: str, private_key: object, data: bytes) -> bytes:
    if algorithm == ED25519 and isinstance(private_key, ed25519.Ed25519PrivateKey):
        return private_key.sign(data)
    if isinstance(private_key, rsa.RSAPrivateKey):
        if algorithm == RSA_V1_5_SHA256:
            return private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        if algorithm == RSA_PSS_SHA512:
            return private_key.sign(data, _PSS, hashes.SHA512())
    raise KeyTypeError(f"a {type(private_key).__name__} cannot sign {algorithm}")


def verify_bytes(algorithm: str, public_key: object, data: bytes, signature: bytes) -> bool:
    """True when `signature` is valid; `KeyTypeError` when the key cannot do `algorithm`."""
    try:
        if algorithm == ED25519 and isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, data)
        elif algorithm == RSA_V1_5_SHA256 and isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        elif algorithm == RSA_PSS_SHA512 and isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, data, _PSS, hashes.SHA512())
        else:
            raise KeyTypeError(f"a {type(public_key).__name__} key cannot verify {algorithm}")
    except (InvalidSignature, ValueError):
        return False
    return True


# ---------------------------------------------------------------------------------------------
# draft-cavage-http-signatures-12: the parameter list and the signing string

_CAVAGE_PARAM = re.compile(
    r'[ \t]*([A-Za-z][A-Za-z0-9_-]*)[ \t]*=[ \t]*(?:"((?:[^"\\]|\\.)*)"|([0-9.]+))[ \t]*(,|$)')


_UNESCAPE = re.compile(r"\\(.)")


def parse_cavage_params(text: str) -> dict[str, str]:
    """`keyId="…",algorithm="…",headers="…",signature="…"` -> dict (names as spelled).

    Tolerates a leading `Signature ` (Mastodon does; it is also the Authorization form).
    Unquoted values are allowed only for numbers (`created`, `expires`). A repeated parameter
    raises `AmbiguityError` (Mastodon 4.5.5+ also rejects it, #37375).
    """
    text = text.strip()
    if text[:10].lower() == "signature ":
        text = text[10:].lstrip()
    params: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        found = _CAVAGE_PARAM.match(text, pos)
        if not found or (found.group(4) == "," and found.end() == len(text)):
            raise WireFormatError(f"cannot parse the signature parameters at {text[pos:pos+30]!r}")
        name, quoted, bare = found.group(1, 2, 3)
        if name in params:
            raise AmbiguityError(f"the signature parameter {name!r} appears twice")
        if quoted is not None and "\\" in quoted:
            quoted = _UNESCAPE.sub(r"\1", quoted)
        params[name] = quoted if quoted is not None else bare
        pos = found.end()
    if not params:
        raise WireFormatError("the signature header is empty")
    return params


def cavage_signing_string(names: Sequence[str], *, method: str, target: str,
                          lines: Mapping[str, list[str]], params: Mapping[str, str]) -> bytes:
    """One `name: value` line per covered name, joined by "\\n" (cavage-12 §2.3)."""
    out = []
    for name in names:
        if name == "(request-target)":
            value = f"{method.lower()} {target}"
        elif name in ("(created)", "(expires)"):
            value = params.get(name[1:-1], "")
            if not re.fullmatch(r"[0-9]+" if name == "(created)" else r"[0-9]+(\.[0-9]+)?", value):
                raise WireFormatError(f"{name} is covered but its parameter is missing or bad")
        elif name.startswith("("):
            raise UnsupportedComponentError(f"pseudo-header {name} is not supported")
        else:
            value = field_value(lines, name)
        out.append(f"{name}: {value}")
    try:
        return "\n".join(out).encode("latin-1")  # ASGI decodes header bytes as latin-1
    except UnicodeEncodeError as exc:
        raise WireFormatError("a covered header holds characters outside latin-1") from exc


def sign_request(method: str, url: str, headers: Mapping[str, str], body: bytes | None, *,
                 key_id: str, private_key: rsa.RSAPrivateKey, now: datetime) -> dict[str, str]:
    """Sign with draft-cavage `rsa-sha256`; return the headers to add (overwriting) verbatim.

    Covers `(request-target) host date` plus `digest` when there is a body (POST/PUT/PATCH
    always have one: b"" if `body` is None). `headers` are the request's other headers; an
    explicit `Host` among them is signed as given, otherwise Host is the URL's authority with a
    non-default port only. The request must go out with `url`'s path and query as spelled.
    """
    method = method.upper()
    if body is None and method in BODY_METHODS:
        body = b""
    lines = field_lines(headers)
    added = {"Host": lines["host"][0] if "host" in lines else wire_authority(url),
             "Date": http_date(now)}
    names: tuple[str, ...] = GET_SIGNED_HEADERS
    if body is not None:
        added["Digest"] = body_digest(body)
        names = POST_SIGNED_HEADERS
    text = cavage_signing_string(names, method=method, target=request_target(url),
                                 lines=field_lines(added), params={})
    signature = base64.b64encode(sign_bytes(RSA_V1_5_SHA256, private_key, text)).decode("ascii")
    added["Signature"] = (f'keyId="{key_id}",algorithm="rsa-sha256",'
                          f'headers="{" ".join(names)}",signature="{signature}"')
    return added

"""RFC 9421 (HTTP Message Signatures) for requests: fields, signature base, signing.

Policy — which components must be covered, time windows, digests — lives in
`fedblog.activitypub.httpsig`; this module turns headers into a `ParsedSignature` and a
signature base, and writes `Signature-Input`/`Signature` for outgoing requests. Supported:
derived components `@method @target-uri @authority @scheme @request-target @path @query`, header
fields without component parameters, and the parameters `created expires keyid alg` (`nonce` and
`tag` are carried into the base but not interpreted).

Structured Fields (RFC 8941) are parsed by `http_sf`; this module maps them to its own small
types and serialises them canonically (the `@signature-params` line). Where RFC 8941 lets a repeated
dictionary key or parameter silently override the earlier one, we raise `AmbiguityError`:
in a signature header a repeat means two readers may disagree on what was signed.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import http_sf

from fedblog.activitypub.httpsig_wire import (
    AmbiguityError,
    MissingFieldError,
    UnsupportedComponentError,
    WireFormatError,
    algorithm_for_key,
    content_digest,
    field_lines,
    field_value,
    http_date,
    normalize_authority,
    request_target,
    sign_bytes,
    wire_authority,
)

# ---------------------------------------------------------------------------------------------
# Structured Fields (RFC 8941), the subset signatures need

class Token(str):
    """An sf-token: serialised bare, whereas a plain `str` is an sf-string."""


BareItem = int | Decimal | str | bytes | bool
Params = tuple[tuple[str, BareItem], ...]


@dataclass(frozen=True)
class Item:
    value: BareItem
    params: Params = ()


@dataclass(frozen=True)
class InnerList:
    items: tuple[Item, ...]
    params: Params = ()


def _bare(value: object) -> BareItem:
    if isinstance(value, http_sf.Token):
        return Token(str(value))
    if isinstance(value, bool | int | Decimal | str | bytes):
        return value
    # RFC 9651 added Dates and Display Strings; RFC 9421 and RFC 9530 fields use neither
    raise WireFormatError(f"a {type(value).__name__} is not allowed in a signature field")


def _params(raw: Mapping[str, object]) -> Params:
    return tuple((k, _bare(v)) for k, v in raw.items())


def _member(raw: Any) -> Item | InnerList:
    value, params = raw
    if isinstance(value, list):
        return InnerList(tuple(Item(_bare(v), _params(p)) for v, p in value), _params(params))
    return Item(_bare(value), _params(params))


def _refuse_duplicate(name: str, context: str) -> None:
    raise AmbiguityError(f"{'dictionary key' if context == 'dictionary' else context} {name!r} appears twice")


def parse_dictionary(text: str) -> dict[str, Item | InnerList]:
    """Parse an sf-dictionary (several field lines must be joined with ", " first), with http_sf.

    A repeated key or parameter raises AmbiguityError instead of overriding the earlier one."""
    try:
        data = text.encode("ascii")
    except UnicodeEncodeError:
        raise WireFormatError("structured field contains non-ASCII characters") from None
    try:
        parsed = http_sf.parse(data, tltype="dictionary", on_duplicate_key=_refuse_duplicate)
    except http_sf.StructuredFieldError as exc:
        raise WireFormatError(f"not a structured field dictionary ({exc}): {text[:200]!r}") from None
    assert isinstance(parsed, dict)
    return {key: _member(member) for key, member in parsed.items()}


def serialize_bare_item(value: BareItem) -> str:
    if isinstance(value, bool):
        return "?1" if value else "?0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        text = format(value.quantize(Decimal("0.001")), "f").rstrip("0")
        return text + "0" if text.endswith(".") else text
    if isinstance(value, Token):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return ":" + base64.b64encode(value).decode("ascii") + ":"


def _serialize_params(params: Params) -> str:
    return "".join(f";{k}" if v is True else f";{k}={serialize_bare_item(v)}" for k, v in params)


def serialize_member(member: Item | InnerList) -> str:
    if isinstance(member, Item):
        return serialize_bare_item(member.value) + _serialize_params(member.params)
    inner = " ".join(serialize_member(item) for item in member.items)
    return f"({inner}){_serialize_params(member.params)}"


def serialize_dictionary(members: Mapping[str, Item | InnerList]) -> str:
    return ", ".join(
        key + _serialize_params(member.params) if isinstance(member, Item) and member.value is True
        else f"{key}={serialize_member(member)}" for key, member in members.items())


def parse_content_digest(value: str) -> list[tuple[str, bytes]]:
    """`Content-Digest` (RFC 9530) -> [(algorithm, raw digest), ...]."""
    pairs = []
    for alg, member in parse_dictionary(value).items():
        if not isinstance(member, Item) or not isinstance(member.value, bytes):
            raise WireFormatError(f"Content-Digest member {alg!r} is not a byte sequence")
        pairs.append((alg, member.value))
    if not pairs:
        raise WireFormatError("Content-Digest is empty")
    return pairs


# ---------------------------------------------------------------------------------------------
# Signature-Input / Signature and the signature base

FROM_KEY = "from-key"  # the algorithm of a signature without `alg`: whatever the key implies

DERIVED_COMPONENTS = frozenset(
    {"@method", "@target-uri", "@authority", "@scheme", "@request-target", "@path", "@query"}
)


@dataclass(frozen=True)
class ParsedSignature:
    """One `Signature-Input` member with its `Signature` bytes."""

    label: str
    components: tuple[str, ...]
    params: Mapping[str, BareItem]
    signature: bytes
    signature_params: str  # canonical serialisation: the `@signature-params` line's value

    def int_param(self, name: str) -> int | None:
        """`created`/`expires` (their type was checked while parsing)."""
        value = self.params.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else None


_PARAM_TYPES: dict[str, type] = {"created": int, "expires": int, "keyid": str, "alg": str,
                                 "nonce": str, "tag": str}


def parse_signature_fields(signature_input: str, signature: str) -> ParsedSignature:
    """Parse `Signature-Input` and `Signature`, insisting on exactly one signature."""
    inputs, signatures = parse_dictionary(signature_input), parse_dictionary(signature)
    if len(inputs) != 1:
        labels = ", ".join(inputs) or "none"
        raise AmbiguityError(f"Signature-Input holds {len(inputs)} signatures ({labels}); "
                             "exactly one is supported")
    (label, member), = inputs.items()
    if label not in signatures or len(signatures) != 1:
        raise WireFormatError(f"Signature must hold exactly the member {label!r} "
                              f"(it holds {', '.join(signatures) or 'none'})")
    sig = signatures[label]
    if not isinstance(member, InnerList):
        raise WireFormatError(f"Signature-Input member {label!r} is not an inner list")
    if not isinstance(sig, Item) or not isinstance(sig.value, bytes) or not sig.value:
        raise WireFormatError(f"Signature member {label!r} is not a byte sequence")
    for name, value in member.params:
        expected = _PARAM_TYPES.get(name)
        if expected and (not isinstance(value, expected) or isinstance(value, bool | Token)):
            raise WireFormatError(f"signature parameter {name!r} has the wrong type")
    return ParsedSignature(label, _component_names(member), dict(member.params), sig.value,
                           serialize_member(member))


def _component_names(member: InnerList) -> tuple[str, ...]:
    names: list[str] = []
    for item in member.items:
        if not isinstance(item.value, str) or isinstance(item.value, Token):
            raise WireFormatError("covered components must be strings")
        name = item.value
        if item.params:
            raise UnsupportedComponentError(f"component parameters ({serialize_member(item)}) "
                                            "are not supported")
        if name != name.lower() or name == "@signature-params" or not name:
            raise WireFormatError(f"invalid component name {name!r}")
        if name.startswith("@") and name not in DERIVED_COMPONENTS:
            raise UnsupportedComponentError(f"derived component {name} is not supported")
        if name in names:
            raise AmbiguityError(f"component {name!r} is covered twice")
        names.append(name)
    return tuple(names)


def component_value(name: str, *, method: str, target: str, scheme: str,
                    lines: Mapping[str, list[str]]) -> str:
    """Value of one covered component for a request, `target` being path?query as received."""
    path, sep, query = target.partition("?")
    if name == "@method":
        return method
    if name == "@authority":
        return normalize_authority(field_value(lines, "host"), scheme)
    if name == "@target-uri":
        return f"{scheme.lower()}://{field_value(lines, 'host')}{target}"
    if name == "@scheme":
        return scheme.lower()
    if name == "@request-target":
        return target
    if name == "@path":
        return path or "/"
    if name == "@query":
        return "?" + query
    return field_value(lines, name)


def signature_base(values: Sequence[tuple[str, str]], signature_params: str) -> bytes:
    """RFC 9421 §2.5: one `"name": value` line per component, then `@signature-params`."""
    lines = [f"{serialize_bare_item(name)}: {value}" for name, value in values]
    lines.append(f'"@signature-params": {signature_params}')
    text = "\n".join(lines)
    if not text.isascii() or any("\n" in value or "\r" in value for _, value in values):
        raise WireFormatError("signature base would contain non-ASCII or line breaks")
    return text.encode("ascii")


def signature_params_member(components: Sequence[str], params: Sequence[tuple[str, BareItem]],
                            ) -> InnerList:
    return InnerList(tuple(Item(name) for name in components), tuple(params))


def sign_request_rfc9421(method: str, url: str, headers: Mapping[str, str], body: bytes | None,
                         *, key_id: str, private_key: object, now: datetime,
                         components: Sequence[str] | None = None, algorithm: str | None = None,
                         label: str = "sig1", expires: datetime | None = None,
                         include_alg: bool = True) -> dict[str, str]:
    """Sign a request with RFC 9421; return the headers to add (overwriting) verbatim.

    Defaults follow Mastodon 4.7's outbound shape: `("@method" "@target-uri")`, `created` and
    `keyid` (and `alg` unless `include_alg=False`). With a body, `content-digest` is always
    covered (appended unless a digest component is listed). `algorithm` defaults to what the
    key implies (`rsa-v1_5-sha256` or `ed25519`). Host, Date and Content-Digest are returned
    too, so any of them may be listed in `components`; a listed header that is neither there
    nor in `headers` raises `ValueError`.
    """
    method = method.upper()
    algorithm = algorithm or algorithm_for_key(private_key)
    lines = field_lines(headers)
    added = {"Host": lines["host"][0] if "host" in lines else wire_authority(url),
             "Date": lines["date"][0] if "date" in lines else http_date(now)}
    if body is not None:
        added["Content-Digest"] = content_digest(body)
    components = tuple(components or ("@method", "@target-uri"))
    if body is not None and not {"content-digest", "digest"} & set(components):
        components += ("content-digest",)  # never send a body the signature does not cover
    lines.update(field_lines(added))
    scheme, target = url.partition(":")[0].lower(), request_target(url)
    try:
        values = [(name, component_value(name, method=method, target=target, scheme=scheme,
                                         lines=lines)) for name in components]
    except MissingFieldError as exc:
        raise ValueError(f"cannot sign {exc.args[0]}: the request has no such header") from exc
    params: list[tuple[str, BareItem]] = [("created", int(now.timestamp())), ("keyid", key_id)]
    if include_alg:
        params.append(("alg", algorithm))
    if expires is not None:
        params.append(("expires", int(expires.timestamp())))
    member = signature_params_member(components, params)
    base = signature_base(values, serialize_member(member))
    signature = sign_bytes(algorithm, private_key, base)
    added["Signature-Input"] = serialize_dictionary({label: member})
    added["Signature"] = serialize_dictionary({label: Item(signature)})
    return added

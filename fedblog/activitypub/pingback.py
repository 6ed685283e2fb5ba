"""Pingback 1.0 over XML-RPC: read a `pingback.ping` call safely, write the answers.

Sources:
- Pingback 1.0, Ian Hickson, 2002 (http://www.hixie.ch/specs/pingback/pingback): one XML-RPC method,
  `pingback.ping(sourceURI, targetURI)`, answering a string or a fault with the codes below.
- XML-RPC specification (http://xmlrpc.com/spec.md): `methodCall`, `methodName`, `params`, a `value`
  with no type element is a string; `methodResponse` with `params` or a `fault` struct
  (`faultCode` int, `faultString` string). A fault still travels in an HTTP 200 response.
- "Specification for Fault Code Interoperability" (xmlrpc-epi, the codes Python's `xmlrpc.client`
  also exports): -32700 not well-formed, -32600 not conforming XML-RPC, -32601 method not found,
  -32602 invalid method parameters.
- Python "XML security" (https://docs.python.org/3/library/xml.html#xml-security): the stdlib
  parsers rely on Expat, whose older versions are open to entity expansion ("billion laughs") and
  related attacks. So the call is parsed with `defusedxml` refusing any DTD, hence any entity
  declaration or external reference, and the body is capped before parsing.

The caller (the web layer) caps the request body at `MAX_BODY_BYTES` before reading it all; the
parser checks again. Only `pingback.ping` exists: no `system.multicall`, no introspection, so one
request can never carry many calls. Writing answers uses `xmlrpc.client.dumps`, which only
serialises (it never parses).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
import xmlrpc.client
from dataclasses import dataclass
from typing import Final

import defusedxml
import defusedxml.ElementTree as SafeET

from fedblog.activitypub.linkcheck import clean_url, same_resource

MAX_BODY_BYTES: Final = 64 * 1024  # a ping is about 300 bytes
CONTENT_TYPE: Final = "text/xml; charset=utf-8"
METHOD: Final = "pingback.ping"

# Pingback 1.0, "Error codes"
GENERIC_FAULT: Final = 0x0
SOURCE_NOT_FOUND: Final = 0x10
SOURCE_HAS_NO_LINK: Final = 0x11
TARGET_NOT_FOUND: Final = 0x20
TARGET_CANNOT_BE_USED: Final = 0x21
ALREADY_REGISTERED: Final = 0x30
ACCESS_DENIED: Final = 0x31
UPSTREAM_ERROR: Final = 0x32
# XML-RPC fault code interoperability
PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602

FAULT_MESSAGES: Final[dict[int, str]] = {
    GENERIC_FAULT: "The pingback could not be registered.",
    SOURCE_NOT_FOUND: "The source URI does not exist.",
    SOURCE_HAS_NO_LINK: "The source URI does not contain a link to the target URI.",
    TARGET_NOT_FOUND: "The specified target URI does not exist.",
    TARGET_CANNOT_BE_USED: "The specified target URI cannot be used as a target.",
    ALREADY_REGISTERED: "The pingback has already been registered.",
    ACCESS_DENIED: "Access denied.",
    UPSTREAM_ERROR: "The server could not communicate with an upstream server, or received an error.",
}
_MAX_MESSAGE_CHARS = 300


@dataclass(frozen=True)
class PingbackRequest:
    """A well-formed `pingback.ping` call with two absolute http(s) URLs."""

    source: str
    target: str


@dataclass(frozen=True)
class PingbackFault:
    """An XML-RPC fault: a Pingback 1.0 code (0x0..0x32) or an XML-RPC interoperability code (-326xx)."""

    code: int
    message: str

    @classmethod
    def of(cls, code: int, detail: str = "") -> PingbackFault:
        base = FAULT_MESSAGES.get(code, "")
        return cls(code, f"{base} {detail}".strip() if base else detail)


def _text_only(element: ET.Element) -> bool:
    return len(element) == 0


def _string_value(value: ET.Element) -> str | None:
    """An XML-RPC `<value>` holding a string (`<string>` or untyped text); None for any other type."""
    if value.tag != "value":
        return None
    if len(value) == 0:
        return value.text or ""
    if len(value) == 1 and value[0].tag == "string" and _text_only(value[0]):
        return value[0].text or ""
    return None


def _parse_xml(body: bytes | str) -> ET.Element | PingbackFault:
    too_long = len(body) > MAX_BODY_BYTES or (isinstance(body, str) and len(body.encode("utf-8")) > MAX_BODY_BYTES)
    if too_long:
        return PingbackFault(INVALID_REQUEST, f"Request body larger than {MAX_BODY_BYTES} bytes.")
    try:
        root = SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException:
        return PingbackFault(PARSE_ERROR, "Parse error: DTDs, entities and external references are refused.")
    except (ET.ParseError, ValueError, UnicodeError):
        return PingbackFault(PARSE_ERROR, "Parse error: not well-formed XML.")
    if not isinstance(root, ET.Element):
        return PingbackFault(PARSE_ERROR, "Parse error: no document element.")
    return root


def parse_ping(body: bytes | str) -> PingbackRequest | PingbackFault:
    """Read an XML-RPC `methodCall` body; a `PingbackRequest` or the fault to answer with."""
    root = _parse_xml(body)
    if isinstance(root, PingbackFault):
        return root
    if root.tag != "methodCall":
        return PingbackFault(INVALID_REQUEST, "Invalid XML-RPC: the document element must be methodCall.")
    names = root.findall("methodName")
    params = root.findall("params")
    if len(names) != 1 or not _text_only(names[0]) or len(params) > 1 or len(root) != len(names) + len(params):
        return PingbackFault(INVALID_REQUEST, "Invalid XML-RPC: expected one methodName and at most one params.")
    method = (names[0].text or "").strip()
    if method != METHOD:
        shown = "".join(ch for ch in method[:64] if ch.isprintable())
        return PingbackFault(METHOD_NOT_FOUND, f"Method {shown!r} not found: this server only answers {METHOD}.")
    values: list[str] = []
    for param in params[0] if params else []:
        if param.tag != "param" or len(param) != 1:
            return PingbackFault(INVALID_PARAMS, "Invalid params: each param holds one value.")
        text = _string_value(param[0])
        if text is None:
            return PingbackFault(INVALID_PARAMS, f"Invalid params: {METHOD} takes two strings.")
        values.append(text)
    if len(values) != 2:
        return PingbackFault(INVALID_PARAMS, f"Invalid params: {METHOD} takes two strings, got {len(values)}.")
    source, target = clean_url(values[0]), clean_url(values[1])
    if source is None:
        return PingbackFault.of(SOURCE_NOT_FOUND, "It must be an absolute http(s) URL.")
    if target is None:
        return PingbackFault.of(TARGET_CANNOT_BE_USED, "It must be an absolute http(s) URL.")
    if same_resource(source, target):
        return PingbackFault.of(GENERIC_FAULT, "The source and target URIs cannot be the same resource.")
    return PingbackRequest(source=source, target=target)


def _printable(message: str) -> str:
    """XML 1.0 cannot carry most control characters; keep answers short and plain."""
    cleaned = "".join(ch if ch.isprintable() or ch in "\t\n" else "?" for ch in message)
    return cleaned[:_MAX_MESSAGE_CHARS]


def success_response(message: str = "Pingback registered.") -> bytes:
    """The `methodResponse` for a registered ping (Pingback 1.0: "a string, whose content is undefined")."""
    return xmlrpc.client.dumps((_printable(message),), methodresponse=True).encode("utf-8")


def fault_response(fault: PingbackFault) -> bytes:
    """The `methodResponse` carrying `fault` (sent with HTTP 200, as XML-RPC requires)."""
    payload = xmlrpc.client.Fault(fault.code, _printable(fault.message))
    return xmlrpc.client.dumps(payload, methodresponse=True).encode("utf-8")


def ping_call(source: str, target: str) -> bytes:
    """The `methodCall` body a pingback client POSTs to the target's pingback server."""
    return xmlrpc.client.dumps((source, target), methodname=METHOD).encode("utf-8")


def _member_value(struct: ET.Element, name: str) -> ET.Element | None:
    for member in struct.findall("member"):
        if (member.findtext("name") or "").strip() == name:
            return member.find("value")
    return None


def parse_ping_response(body: bytes | str) -> str | PingbackFault:
    """Read a pingback server's `methodResponse`: its success string, or its fault.

    Anything that is not a well-formed response becomes a fault with `UPSTREAM_ERROR` (for
    the caller's logs; nothing here raises).
    """
    root = _parse_xml(body)
    if isinstance(root, PingbackFault):
        return PingbackFault(UPSTREAM_ERROR, f"Unreadable response: {root.message}")
    if root.tag != "methodResponse":
        return PingbackFault(UPSTREAM_ERROR, "Unreadable response: not a methodResponse.")
    fault_value = root.find("fault/value/struct")
    if fault_value is not None:
        code_value, string_value = _member_value(fault_value, "faultCode"), _member_value(fault_value, "faultString")
        code_text = "" if code_value is None else (code_value.findtext("int") or code_value.findtext("i4") or "")
        try:
            code = int(code_text.strip())
        except ValueError:
            code = GENERIC_FAULT
        message = _string_value(string_value) if string_value is not None else None
        return PingbackFault(code, _printable(message or ""))
    value = root.find("params/param/value")
    text = _string_value(value) if value is not None else None
    if text is None:
        return PingbackFault(UPSTREAM_ERROR, "Unreadable response: no string result.")
    return _printable(text)

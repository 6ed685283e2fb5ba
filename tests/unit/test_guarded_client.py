"""The guarded outbound client and the bounded fetch helpers, against a real local server.

A tiny HTTP/1.1 server runs on 127.0.0.1 in each test. Hostnames are mapped by a fake resolver;
"public" IPs are routed to the local server by a fake inner backend (``FakeInternet``), so the
guard sees realistic DNS answers while no packet leaves the machine. Everything of ours (policy,
backend, transport, client, fetch) runs for real.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpcore
import httpx
import pytest

from fedblog import __version__
from fedblog.net.client import GuardedHTTPTransport, build_http_client, make_user_agent
from fedblog.net.fetch import (
    AP_ACCEPT,
    BadContentType,
    BadStatus,
    Blocked,
    NotJSON,
    Timeout,
    TooDeep,
    TooLarge,
    TooManyRedirects,
    Unreachable,
    fetch_json,
    fetch_text,
    json_depth_ok,
    parse_json_object,
)
from fedblog.net.safety import (
    AddressRefused,
    BlockedAddress,
    BlockedURL,
    GuardedNetworkBackend,
    UrlPolicy,
)
from tests.interop.tls import TestCA

pytestmark = pytest.mark.anyio

UA = make_user_agent(__version__, "https://blog.example/")
PUBLIC_IP = "93.184.216.34"
OTHER_PUBLIC_IP = "93.184.216.35"
MIB = 1024 * 1024


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- the remote world -------------------------------------------------------------------


@dataclass
class Seen:
    method: str
    target: str
    headers: dict[str, str]


@dataclass
class LocalServer:
    """One request per connection (``Connection: close``), scripted by path."""

    ssl_context: ssl.SSLContext | None = None
    seen: list[Seen] = field(default_factory=list)
    sni: list[str | None] = field(default_factory=list)
    port: int = 0
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _server: asyncio.Server | None = None

    async def start(self) -> None:
        if self.ssl_context is not None:
            self.ssl_context.sni_callback = lambda _obj, name, _ctx: self.sni.append(name)
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    @property
    def paths(self) -> list[str]:
        return [s.target for s in self.seen]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        try:
            request_line = (await reader.readline()).decode("latin-1")
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            method, target, _ = request_line.split(" ", 2)
            self.seen.append(Seen(method, target, headers))
            await self._respond(target, headers, writer)
        except (ConnectionError, asyncio.CancelledError, ssl.SSLError, ValueError):
            pass  # client went away, test teardown, or a garbled request: nothing to answer
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, ssl.SSLError, asyncio.CancelledError):
                pass
            self._tasks.discard(task)  # type: ignore[arg-type]

    async def _respond(
        self, target: str, headers: dict[str, str], writer: asyncio.StreamWriter
    ) -> None:
        parts = urlsplit(target)
        path, query = parts.path, parse_qs(parts.query)
        host = headers.get("host", "")
        if path == "/json":
            doc = {"id": f"http://{host}/json", "type": "Note", "ua": headers.get("user-agent")}
            await send(
                writer, 200, {"Content-Type": "application/activity+json"}, json.dumps(doc).encode()
            )
        elif path == "/ld":
            await send(
                writer, 200, {"Content-Type": 'application/ld+json; profile="x"'}, b'{"id": "x"}'
            )
        elif path == "/plain-json":
            await send(writer, 200, {"Content-Type": "application/json"}, b'{"a": 1}')
        elif path == "/array":
            await send(writer, 200, {"Content-Type": "application/activity+json"}, b"[1, 2]")
        elif path == "/garbage":
            await send(writer, 200, {"Content-Type": "application/activity+json"}, b"{nope")
        elif path == "/nan":
            await send(writer, 200, {"Content-Type": "application/activity+json"}, b'{"a": NaN}')
        elif path == "/deep":
            depth = int(query["n"][0])
            body = '{"a": ' * depth + "1" + "}" * depth
            await send(writer, 200, {"Content-Type": "application/activity+json"}, body.encode())
        elif path == "/html":
            await send(
                writer,
                200,
                {"Content-Type": "text/html; charset=iso-8859-1"},
                "<p>café</p>".encode("latin-1"),
            )
        elif path.startswith("/status/"):
            await send(writer, int(path.rsplit("/", 1)[1]), {}, b"")
        elif path == "/redirect":
            await send(writer, 302, {"Location": query["to"][0]}, b"")
        elif path.startswith("/chain/"):
            left = int(path.rsplit("/", 1)[1])
            await send(writer, 302, {"Location": f"/chain/{left - 1}" if left else "/json"}, b"")
        elif path == "/loop":
            await send(writer, 301, {"Location": "/loop"}, b"")
        elif path == "/big":
            await send_chunked(writer, (b"x" * 65536 for _ in range(32)))  # 2 MiB
        elif path == "/endless":
            await send_chunked(writer, iter(lambda: b"x" * 65536, None))
        elif path == "/declared-big":
            head = (
                f"HTTP/1.1 200 OK\r\nContent-Type: application/activity+json\r\n"
                f"Content-Length: {2 * MIB}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode())
            await writer.drain()
            await asyncio.sleep(60)  # never sends the body
        elif path == "/sleep":
            await asyncio.sleep(60)
        elif path == "/trickle":
            await send_chunked(writer, (b"{" for _ in range(10_000)), pause=0.05)
        else:
            await send(writer, 404, {}, b"")


async def send(
    writer: asyncio.StreamWriter, status: int, headers: dict[str, str], body: bytes
) -> None:
    lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    await writer.drain()


async def send_chunked(
    writer: asyncio.StreamWriter, chunks: Iterable[bytes], pause: float = 0.0
) -> None:
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/activity+json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    for chunk in chunks:
        writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        await writer.drain()
        if pause:
            await asyncio.sleep(pause)
    writer.write(b"0\r\n\r\n")
    await writer.drain()


@pytest.fixture
async def server() -> AsyncIterator[LocalServer]:
    srv = LocalServer()
    await srv.start()
    yield srv
    await srv.stop()


class FakeDNS:
    """A ``Resolver``: each lookup of a host takes the next answer (the last one repeats)."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        queue = self.answers[host]
        return queue.pop(0) if len(queue) > 1 else queue[0]


class FakeInternet(httpcore.AsyncNetworkBackend):
    """Dials "public" IPs by connecting to the local server instead; records every dial.

    A loopback address reaching this backend would also connect, so ``dialled`` shows any leak.
    """

    def __init__(self, unreachable: frozenset[str] = frozenset()) -> None:
        self.dialled: list[str] = []
        self.unreachable = unreachable
        self._real = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.dialled.append(host)
        if host in self.unreachable:
            raise httpcore.ConnectError(f"{host}: connection refused")
        return await self._real.connect_tcp("127.0.0.1", port, timeout=timeout)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def internet_client(
    dns: FakeDNS, internet: FakeInternet, allow: frozenset[str] = frozenset()
) -> httpx.AsyncClient:
    """The production stack, except that sockets to public IPs go to the local server."""
    transport = GuardedHTTPTransport(UrlPolicy(allow), resolver=dns, inner_backend=internet)
    return build_http_client(user_agent=UA, allow_private_hosts=allow, transport=transport)


def public_world() -> tuple[FakeDNS, FakeInternet]:
    dns = FakeDNS({"public.test": [[PUBLIC_IP]], "evil.test": [["127.0.0.1"]]})
    return dns, FakeInternet()


# --- connect-time address checks -------------------------------------------------------


async def test_host_resolving_to_loopback_is_refused_at_connect(server: LocalServer) -> None:
    dns = FakeDNS({"evil.test": [["127.0.0.1"]]})
    async with build_http_client(
        user_agent=UA, allow_private_hosts=frozenset(), resolver=dns
    ) as client:
        with pytest.raises(BlockedAddress) as caught:
            await client.get(f"http://evil.test:{server.port}/json")
    assert isinstance(caught.value, httpx.ConnectError)
    assert str(caught.value) == (
        "refused to connect to 127.0.0.1 (loopback) for host evil.test: "
        "set FEDBLOG_ALLOW_PRIVATE_HOSTS=evil.test to allow it in tests"
    )
    assert dns.lookups == ["evil.test"]
    assert server.seen == []


async def test_allowed_host_connects_to_resolved_ip_keeping_host_header(
    server: LocalServer,
) -> None:
    dns = FakeDNS({"evil.test": [["127.0.0.1"]]})
    async with build_http_client(
        user_agent=UA, allow_private_hosts=frozenset({"EVIL.test"}), resolver=dns
    ) as client:
        response = await client.get(f"http://evil.test:{server.port}/json")
    assert response.status_code == 200
    assert response.json()["type"] == "Note"
    assert server.seen[0].headers["host"] == f"evil.test:{server.port}"


async def test_system_resolver_localhost_is_refused(server: LocalServer) -> None:
    async with build_http_client(user_agent=UA, allow_private_hosts=frozenset()) as client:
        with pytest.raises(BlockedAddress, match="for host localhost"):
            await client.get(f"http://localhost:{server.port}/json")
    assert server.seen == []


@pytest.mark.parametrize("literal", ["127.0.0.1", "[::ffff:127.0.0.1]", "[::1]", "0.0.0.0"])
async def test_private_ip_literal_url_is_refused(server: LocalServer, literal: str) -> None:
    async with build_http_client(user_agent=UA, allow_private_hosts=frozenset()) as client:
        with pytest.raises(BlockedURL):
            await client.get(f"http://{literal}:{server.port}/json")
    assert server.seen == []


async def test_ip_literal_is_checked_by_the_backend_too(server: LocalServer) -> None:
    """Even if the URL check were skipped, the backend refuses to dial a private literal."""
    with pytest.raises(AddressRefused):
        await GuardedNetworkBackend(UrlPolicy()).connect_tcp("127.0.0.1", server.port)
    with pytest.raises(AddressRefused):
        await GuardedNetworkBackend(UrlPolicy()).connect_tcp("::ffff:127.0.0.1", server.port)
    allowed = GuardedNetworkBackend(UrlPolicy(frozenset({"127.0.0.1"})))
    stream = await allowed.connect_tcp("127.0.0.1", server.port, timeout=5)
    await stream.aclose()


async def test_any_non_global_answer_refuses_the_host(server: LocalServer) -> None:
    dns = FakeDNS({"mixed.test": [[PUBLIC_IP, "10.0.0.7"]]})
    internet = FakeInternet()
    async with internet_client(dns, internet) as client:
        with pytest.raises(BlockedAddress, match=r"10\.0\.0\.7 \(private\)"):
            await client.get(f"http://mixed.test:{server.port}/json")
    assert internet.dialled == []


async def test_dns_rebinding_is_caught_on_the_next_connection(server: LocalServer) -> None:
    """First lookup says public, the next says loopback: each new connection is re-checked."""
    dns = FakeDNS({"rebind.test": [[PUBLIC_IP], ["127.0.0.1"]]})
    internet = FakeInternet()
    async with internet_client(dns, internet) as client:
        first = await client.get(f"http://rebind.test:{server.port}/json")
        assert first.status_code == 200
        with pytest.raises(BlockedAddress, match="127.0.0.1"):
            await client.get(f"http://rebind.test:{server.port}/json")
    assert dns.lookups == ["rebind.test", "rebind.test"]
    assert internet.dialled == [PUBLIC_IP]
    assert len(server.seen) == 1


async def test_next_vetted_address_is_tried_when_one_fails(server: LocalServer) -> None:
    dns = FakeDNS({"multi.test": [[OTHER_PUBLIC_IP, PUBLIC_IP]]})
    internet = FakeInternet(unreachable=frozenset({OTHER_PUBLIC_IP}))
    async with internet_client(dns, internet) as client:
        response = await client.get(f"http://multi.test:{server.port}/json")
    assert response.status_code == 200
    assert internet.dialled == [OTHER_PUBLIC_IP, PUBLIC_IP]


# --- TLS: the vetted IP is dialled, but SNI and certificate checks use the hostname ----------


async def test_tls_uses_hostname_for_sni_and_verification(tmp_path: Path) -> None:
    ca = TestCA.create()
    cert_path, key_path = ca.issue(["evil.test"], tmp_path / "evil")
    ca_path = ca.write_ca(tmp_path / "ca.pem")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert_path, key_path)
    srv = LocalServer(ssl_context=server_ctx)
    await srv.start()
    try:
        dns = FakeDNS({"evil.test": [["127.0.0.1"]], "other.test": [["127.0.0.1"]]})
        allow = frozenset({"evil.test", "other.test"})
        async with build_http_client(
            user_agent=UA, allow_private_hosts=allow, resolver=dns, ssl_cert_file=str(ca_path)
        ) as client:
            response = await client.get(f"https://evil.test:{srv.port}/json")
            assert response.status_code == 200
            assert srv.sni == ["evil.test"]
            assert srv.seen[0].headers["host"] == f"evil.test:{srv.port}"
            # Same IP, other name: the certificate is checked against the URL's host.
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await client.get(f"https://other.test:{srv.port}/json")
    finally:
        await srv.stop()


# --- the client ------------------------------------------------------------------------


def test_user_agent_format() -> None:
    assert make_user_agent("0.1.0", "https://blog.example/") == (
        "fedblog/0.1.0 (+https://blog.example/)"
    )


async def test_injected_transport_still_gets_url_checks_and_user_agent() -> None:
    received: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(302, headers={"Location": "http://127.0.0.1/"})

    async with build_http_client(
        user_agent=UA, allow_private_hosts=frozenset(), transport=httpx.MockTransport(handler)
    ) as client:
        response = await client.get("https://mastodon.test/users/a")
        assert response.status_code == 302  # not followed by the client itself
        for url in (
            "file:///etc/passwd",
            "ftp://mastodon.test/",
            "http://127.0.0.1/",
            "http://u:p@mastodon.test/",
        ):
            with pytest.raises(BlockedURL):
                await client.get(url)
    assert [str(r.url) for r in received] == ["https://mastodon.test/users/a"]
    assert received[0].headers["user-agent"] == "fedblog/0.1.0 (+https://blog.example/)"


async def test_client_ignores_proxy_environment(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An HTTP_PROXY would route requests around the guarded pool; the client ignores it."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{server.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    dns, internet = public_world()
    async with internet_client(dns, internet) as client:
        response = await client.get(f"http://public.test:{server.port}/json")
    assert response.status_code == 200
    assert server.paths == ["/json"]  # origin-form: not sent to a proxy
    assert internet.dialled == [PUBLIC_IP]


# --- fetch_json / fetch_text -------------------------------------------------------------


async def test_fetch_json_sends_accept_and_user_agent(server: LocalServer) -> None:
    dns, internet = public_world()
    async with internet_client(dns, internet) as client:
        doc = await fetch_json(client, f"http://public.test:{server.port}/json", policy=UrlPolicy())
    assert doc.status == 200
    assert doc.content_type == "application/activity+json"
    assert doc.url_final == f"http://public.test:{server.port}/json"
    assert doc.data["ua"] == "fedblog/0.1.0 (+https://blog.example/)"
    assert server.seen[0].headers["accept"] == AP_ACCEPT


async def test_fetch_json_refuses_redirect_to_private_address_at_the_hop(
    server: LocalServer,
) -> None:
    dns, internet = public_world()
    base = f"http://public.test:{server.port}"
    async with internet_client(dns, internet) as client:
        for target in (
            f"http://evil.test:{server.port}/json",  # name → 127.0.0.1
            f"http://127.0.0.1:{server.port}/json",  # literal
            f"http://[::ffff:7f00:1]:{server.port}/json",
            "file:///etc/passwd",
        ):
            with pytest.raises(Blocked) as caught:
                await fetch_json(client, f"{base}/redirect?to={target}", policy=UrlPolicy())
            assert caught.value.url == str(httpx.URL(target))
    assert all(p.startswith("/redirect") for p in server.paths)  # no hop was ever served
    assert "127.0.0.1" not in internet.dialled


async def test_fetch_json_follows_redirect_to_allowed_private_host(server: LocalServer) -> None:
    dns, internet = public_world()
    allow = frozenset({"evil.test"})
    target = f"http://evil.test:{server.port}/json"
    async with internet_client(dns, internet, allow=allow) as client:
        doc = await fetch_json(
            client,
            f"http://public.test:{server.port}/redirect?to={target}",
            policy=UrlPolicy(allow),
        )
    assert doc.url_final == target
    assert server.seen[-1].headers["host"] == f"evil.test:{server.port}"


async def test_fetch_json_redirect_cap(server: LocalServer) -> None:
    dns, internet = public_world()
    base = f"http://public.test:{server.port}"
    async with internet_client(dns, internet) as client:
        doc = await fetch_json(client, f"{base}/chain/2", policy=UrlPolicy(), max_redirects=3)
        assert doc.url_final == f"{base}/json"
        with pytest.raises(TooManyRedirects, match="more than 3 redirects"):
            await fetch_json(client, f"{base}/chain/3", policy=UrlPolicy(), max_redirects=3)
        with pytest.raises(TooManyRedirects, match="loop"):
            await fetch_json(client, f"{base}/loop", policy=UrlPolicy())


async def test_fetch_refuses_https_to_http_downgrade() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(301, headers={"Location": "http://mastodon.test/a"})

    async with build_http_client(
        user_agent=UA, allow_private_hosts=frozenset(), transport=httpx.MockTransport(handler)
    ) as client:
        with pytest.raises(Blocked, match="https to http"):
            await fetch_json(client, "https://mastodon.test/a", policy=UrlPolicy())


async def test_fetch_json_body_cap_streams_and_aborts(server: LocalServer) -> None:
    dns, internet = public_world()
    base = f"http://public.test:{server.port}"
    async with internet_client(dns, internet) as client:
        with pytest.raises(TooLarge, match="1048576-byte limit"):
            await fetch_json(client, f"{base}/big", policy=UrlPolicy(), max_bytes=MIB)
        # An endless body can only end in TooLarge if it is read incrementally.
        with pytest.raises(TooLarge):
            await fetch_json(
                client, f"{base}/endless", policy=UrlPolicy(), max_bytes=65536, deadline=5
            )
        # A declared length over the cap is refused before any body byte is awaited.
        with pytest.raises(TooLarge, match="Content-Length"):
            await fetch_json(client, f"{base}/declared-big", policy=UrlPolicy(), deadline=5)


@pytest.mark.parametrize("path", ["/sleep", "/trickle"])
async def test_fetch_json_wall_clock_deadline(server: LocalServer, path: str) -> None:
    """A silent server and one that trickles a byte at a time both end at the deadline."""
    dns, internet = public_world()
    async with internet_client(dns, internet) as client:
        started = time.monotonic()
        with pytest.raises(Timeout, match="0.5 s deadline"):
            await fetch_json(
                client,
                f"http://public.test:{server.port}{path}",
                policy=UrlPolicy(),
                deadline=0.5,
                max_bytes=MIB,
            )
        assert time.monotonic() - started < 2.0


async def test_fetch_json_refuses_non_http_scheme_without_a_request() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request may be sent")

    async with build_http_client(
        user_agent=UA, allow_private_hosts=frozenset(), transport=httpx.MockTransport(handler)
    ) as client:
        for url in ("file:///etc/passwd", "gopher://x.test/", "data:,{}"):
            with pytest.raises(Blocked, match="is not allowed"):
                await fetch_json(client, url, policy=UrlPolicy())


@pytest.mark.parametrize(
    ("path", "error", "message"),
    [
        ("/plain-json", BadContentType, "application/json"),
        ("/array", NotJSON, "expected a JSON object"),
        ("/garbage", NotJSON, "not valid JSON"),
        ("/nan", NotJSON, "NaN"),
        ("/deep?n=33", TooDeep, "deeper than 32"),
        ("/status/410", BadStatus, "HTTP 410"),
    ],
)
async def test_fetch_json_rejects_bad_documents(
    server: LocalServer, path: str, error: type[Exception], message: str
) -> None:
    dns, internet = public_world()
    async with internet_client(dns, internet) as client:
        with pytest.raises(error, match=message):
            await fetch_json(client, f"http://public.test:{server.port}{path}", policy=UrlPolicy())


async def test_fetch_json_accepts_ld_json_deep_32_and_custom_accept(server: LocalServer) -> None:
    dns, internet = public_world()
    base = f"http://public.test:{server.port}"
    async with internet_client(dns, internet) as client:
        assert (await fetch_json(client, f"{base}/ld", policy=UrlPolicy())).data == {"id": "x"}
        await fetch_json(client, f"{base}/deep?n=32", policy=UrlPolicy())
        doc = await fetch_json(
            client,
            f"{base}/plain-json",
            policy=UrlPolicy(),
            accept="application/jrd+json, application/json",
        )
    assert doc.data == {"a": 1}


async def test_fetch_unknown_host_is_unreachable(server: LocalServer) -> None:
    dns, internet = public_world()
    async with internet_client(dns, internet) as client:
        with pytest.raises(Unreachable, match="could not resolve nowhere.test"):
            await fetch_json(client, f"http://nowhere.test:{server.port}/json", policy=UrlPolicy())


async def test_fetch_text_decodes_declared_charset_and_reports_gone(server: LocalServer) -> None:
    dns, internet = public_world()
    base = f"http://public.test:{server.port}"
    async with internet_client(dns, internet) as client:
        page = await fetch_text(
            client, f"{base}/html", policy=UrlPolicy(), max_bytes=MIB, deadline=5
        )
        assert page.text == "<p>café</p>"
        assert page.content_type.startswith("text/html")
        assert server.seen[-1].headers["accept"] == "text/html"
        with pytest.raises(BadStatus) as caught:
            await fetch_text(client, f"{base}/status/410", policy=UrlPolicy())
        assert caught.value.status == 410


# --- JSON depth ---------------------------------------------------------------------------


def test_json_depth_ok_counts_containers() -> None:
    assert json_depth_ok(1, 0)
    assert json_depth_ok({}, 1)
    assert not json_depth_ok({}, 0)
    assert json_depth_ok({"a": [{"b": []}]}, 4)
    assert not json_depth_ok({"a": [{"b": []}]}, 3)
    deep: object = 1
    for _ in range(100_000):  # far past the recursion limit: must not blow the stack
        deep = [deep]
    assert not json_depth_ok(deep, 32)


def test_parse_json_object_survives_pathological_nesting() -> None:
    with pytest.raises(TooDeep):
        parse_json_object(b'{"a":' + b"[" * 200_000 + b"]" * 200_000 + b"}", "https://x.test/")

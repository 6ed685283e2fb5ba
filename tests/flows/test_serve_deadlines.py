"""``fedblog serve`` closes connections whose headers or body arrive too slowly (slowloris).

uvicorn alone keeps such a connection open as long as a byte arrives every few seconds. Here the
deadlines are set to 1 s (headers) and 2 s (body) and a client trickles one byte every 0.2 s for
up to 30 s: the server must answer 408 and close long before the client runs out of bytes.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import clean_env, fedblog_serve, free_port

pytestmark = pytest.mark.slow
TRICKLE_FOR_S = 30.0


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[int]:
    port = free_port()
    env = clean_env(
        FEDBLOG_BASE_URL=f"http://127.0.0.1:{port}", FEDBLOG_DATA_DIR=str(tmp_path / "data"),
        FEDBLOG_DATABASE_URL=database_url, FEDBLOG_WORKER="off",
        FEDBLOG_HEADER_TIMEOUT="1", FEDBLOG_BODY_TIMEOUT="2",
    )
    with fedblog_serve(env, port, tmp_path / "server.log", "/about"):
        yield port


def trickle(port: int, head: bytes, body: bytes = b"") -> tuple[bytes, bool]:
    """Send ``head`` whole, then ``body`` byte by byte (or, without a body, ``head`` byte by byte)
    every 0.2 s; returns (what the server sent, whether it closed before we ran out of time)."""
    whole, slow = (head, body) if body else (b"", head)
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.settimeout(0.2)
        s.sendall(whole)
        stop = time.monotonic() + TRICKLE_FOR_S
        for i in range(len(slow)):
            if time.monotonic() > stop:
                return received, False
            try:
                s.sendall(slow[i:i + 1])
            except OSError:  # reset: closed by the server
                return received, True
            try:
                chunk = s.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return received, True
            if not chunk:
                return received, True
            received += chunk
    return received, False


def test_slow_headers_are_cut_off(server: int) -> None:
    head = b"GET /about HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 1000 + b"\r\n\r\n"
    received, closed = trickle(server, head)
    assert closed, "the server kept a connection whose headers never finished"
    assert received.startswith(b"HTTP/1.1 408"), received[:200]


def test_slow_body_is_cut_off(server: int) -> None:
    body = b"{" + b" " * 2000 + b"}"
    head = (b"POST /inbox HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/activity+json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body))
    received, closed = trickle(server, head, body)
    assert closed, "the server kept a connection whose body never finished"
    assert received.startswith(b"HTTP/1.1 408"), received[:200]
    assert b"took too long" in received


def test_keep_alive_still_works_with_deadlines(server: int) -> None:
    """Two requests on one connection, the second sent after the first answer: both 200."""
    request = b"GET /about HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server), timeout=10) as s:
        for _ in range(2):
            s.sendall(request)
            data = b""
            while b"</html>" not in data:
                chunk = s.recv(65536)
                assert chunk, data[:300]
                data += chunk
            assert data.startswith(b"HTTP/1.1 200"), data[:200]

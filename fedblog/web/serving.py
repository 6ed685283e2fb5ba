"""uvicorn with header and body deadlines (slowloris).

uvicorn only times out *idle* keep-alive connections (``timeout_keep_alive``, armed after a
response and cancelled by the first byte of the next request); a client that opens a connection
and sends one header byte every few seconds holds it forever, and so does one that trickles a
body. These protocol subclasses add two timers per request, the way ``timeout_keep_alive`` is
built (``loop.call_later`` on the protocol):

* headers: from connection open (or the end of the previous response) until the request's headers
  are complete; on expiry the connection gets ``408`` (if the client sent anything) and is closed;
* body: from the end of the headers until the body is complete. The inbox reads its body under a
  deadline of the same length and answers ``408``; one second later the connection is closed if
  the body is still not complete (whether or not the app answered).

Both default to the values Caddy is configured with in deploy/Caddyfile (``read_header 10s``,
``read_body 15s``); behind such a proxy these are a second line of defence.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import sys
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# uvicorn's limit_concurrency: past this many open connections or running requests, new requests
# get 503 at once (uvicorn's documented behaviour), so a flood cannot grow the task set without bound
MAX_CONNECTIONS = 2048

_408_BODY = b"The request headers took too long to arrive."
_408 = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(_408_BODY), _408_BODY))


class _Deadlines:
    """Mixed into a uvicorn HTTP protocol class; see the module docstring."""

    header_timeout = 10.0
    body_timeout = 15.0
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    cycle: Any

    def _arm_headers(self) -> None:
        self._cancel_deadline()
        self._waiting_for = self.cycle  # a new cycle appears when the next request's headers are complete
        self._got_bytes = False
        self._deadline: asyncio.TimerHandle | None = self.loop.call_later(self.header_timeout, self._headers_late)

    def _cancel_deadline(self) -> None:
        handle = getattr(self, "_deadline", None)
        if handle is not None:
            handle.cancel()
        self._deadline = None

    def _headers_late(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            if self._got_bytes:
                self.transport.write(_408)
            self.transport.close()

    def _body_late(self, cycle: Any) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if cycle.more_body:  # the app has answered 408 (the inbox) or given up on the body: close
            self.transport.close()
        elif self.cycle is cycle and cycle.response_complete:  # answered early, body drained since: idle
            self._arm_headers()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm_headers()

    def _headers_done(self) -> None:
        cycle = self.cycle
        if cycle is not None and cycle is not self._waiting_for:  # a new request's headers are complete
            self._waiting_for = cycle
            self._cancel_deadline()
            if cycle.more_body and not self.transport.is_closing():
                # one second of grace: the app's own body deadline answers 408 before the connection goes
                self._deadline = self.loop.call_later(self.body_timeout + 1, self._body_late, cycle)

    def data_received(self, data: bytes) -> None:
        self._got_bytes = self._got_bytes or bool(data)
        super().data_received(data)  # type: ignore[misc]
        self._headers_done()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if self.transport.is_closing():
            return
        answered = self._waiting_for
        if answered is not None and answered.more_body and self._deadline is not None:
            return  # answered before its body arrived: the body deadline still runs, then closes
        self._headers_done()  # h11 starts a buffered next request in here; httptools a pipelined one
        if self.cycle is None or self.cycle.response_complete:
            self._arm_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)  # type: ignore[misc]


class HttpToolsDeadlines(_Deadlines, HttpToolsProtocol):
    pass


class H11Deadlines(_Deadlines, H11Protocol):
    pass


M_MMAP_THRESHOLD = -3  # glibc <malloc.h>
MMAP_THRESHOLD = 128 * 1024


def return_big_buffers_to_the_os() -> bool:
    """Serve allocations of 128 KiB and more (request bodies near the 1 MiB cap, their JSON) from
    their own mappings, given back to the OS when freed. glibc's default raises this threshold
    after the first such free, so later bodies land in the heap and, interleaved with small long-
    lived objects, keep the process's RSS at its high-water mark for good (mallopt(3): "M_MMAP_THRESHOLD";
    the same as setting MALLOC_MMAP_THRESHOLD_=131072). A no-op (False) off glibc."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError):
        return False


GIL_SWITCH_INTERVAL_S = 0.0005


def short_gil_turns() -> None:
    """Let a thread waiting for the GIL have it after 0.5 ms instead of CPython's 5 ms
    (``sys.setswitchinterval``). The database pool's threads release the GIL around every SQLite
    call (each row of an executemany, each commit) and must take it back afterwards; while the event
    loop is busy verifying signatures, each of those takes waited up to the full interval, so one
    group commit of a few dozen activities spent most of its time waiting, and every POST of the
    batch with it (bench/bench_inbox.py at 50 connections: 1.1-1.3x the req/s in same-run A/B rounds)."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)


def freeze_startup_objects() -> None:
    """Move every object alive at start-up (modules, the app, SQLAlchemy's metadata and caches) to
    the collector's permanent generation (``gc.freeze``). A full collection then walks only what was
    made since: during a burst of inbox POSTs, full collections over the whole heap stopped every
    thread for long enough that a page GET took ~1 s in some rounds and ~0.25 s without them
    (bench/bench_inbox_burst.py, same-run rounds)."""
    gc.collect()
    gc.freeze()


def protocol_class(header_timeout: float, body_timeout: float) -> type[asyncio.Protocol]:
    """The fastest available HTTP protocol (httptools, else h11) with the given deadlines."""
    try:
        import httptools  # noqa: F401

        base: type[_Deadlines] = HttpToolsDeadlines
    except ImportError:  # pragma: no cover (uvicorn[standard] brings httptools)
        base = H11Deadlines
    return type(base.__name__, (base,), {"header_timeout": header_timeout, "body_timeout": body_timeout})

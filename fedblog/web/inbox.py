"""POST /users/{handle}/inbox and POST /inbox: read the body within limits, hand it to the Inbox."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable, Iterator

from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from fedblog.federation.inbox import Inbox
from fedblog.services import Services
from fedblog.web.common import services_of
from fedblog.web.middleware import is_inbox

MAX_BODY = 1_048_576  # 1 MiB, larger gets 413 (docs/security.md §5)
BODY_DEADLINE = 15.0  # default of FEDBLOG_BODY_TIMEOUT; Caddy's read_body in deploy/Caddyfile matches


MAX_INFLIGHT = 2048  # inbox POSTs read or processed at once, per process (as uvicorn's limit_concurrency)
MAX_BUFFERED = 16 * MAX_BODY  # body bytes those hold at once, per process (a body costs ~3x: bytes, str, doc)


PER_TURN = 32  # inbox POSTs that may start per turn of the event loop (InboxTurnstile)


class InboxTurnstile:
    """ASGI layer (outermost): at most ``per_turn`` inbox POSTs start per turn of the event loop.

    A thousand POSTs arriving at once all become ready in one turn, and asyncio runs ready tasks in
    order: a page GET arriving then waited behind a thousand first steps (ASGI stack, body, JSON,
    signature preparation: ~0.7 s here, bench/bench_inbox_burst.py). Here the others wait for a
    later turn (a future each, no work), so whatever arrives meanwhile is queued behind at most
    ``per_turn`` of them. The work is the same; it is spread over turns, in arrival order.
    """

    def __init__(self, app: ASGIApp, per_turn: int = PER_TURN) -> None:
        self.app = app
        self.per_turn = per_turn
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = 0  # POSTs started this turn
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        self._turn_scheduled = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and is_inbox(scope["path"]):
            await self._admit()
        await self.app(scope, receive, send)

    async def _admit(self) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new loop (tests run one per test): nothing of the old one is valid
            self._loop, self._started, self._waiting, self._turn_scheduled = loop, 0, collections.deque(), False
        if not self._turn_scheduled:
            self._turn_scheduled = True
            loop.call_soon(self._next_turn)
        if not self._waiting and self._started < self.per_turn:
            self._started += 1
            return
        future: asyncio.Future[None] = loop.create_future()
        self._waiting.append(future)
        await future

    def _next_turn(self) -> None:
        self._turn_scheduled = False
        self._started = 0
        while self._waiting and self._started < self.per_turn:
            future = self._waiting.popleft()
            if not future.done():  # its client may have gone
                future.set_result(None)
                self._started += 1
        if self._waiting or self._started:
            assert self._loop is not None
            self._turn_scheduled = True
            self._loop.call_soon(self._next_turn)


class BodyTooLarge(Exception):
    pass


class Busy(Exception):
    pass


class InboxGate:
    """Bounds what concurrent inbox POSTs hold: their number and their buffered body bytes.

    Past either bound the sender gets 503 + Retry-After and retries later (ActivityPub senders
    retry with backoff); memory stays flat however many POSTs arrive at once.
    """

    def __init__(self, max_requests: int = MAX_INFLIGHT, max_bytes: int = MAX_BUFFERED) -> None:
        self.max_requests, self.max_bytes = max_requests, max_bytes
        self.requests = 0
        self.bytes = 0

    @contextlib.contextmanager
    def enter(self) -> Iterator[Callable[[int], None]]:
        """Hold one request slot; yields ``take(n)``, which holds ``n`` more body bytes or raises Busy."""
        if self.requests >= self.max_requests:
            raise Busy
        held = 0

        def take(n: int) -> None:
            nonlocal held
            if self.bytes + n > self.max_bytes:
                raise Busy
            self.bytes += n
            held += n

        self.requests += 1
        try:
            yield take
        finally:
            self.requests -= 1
            self.bytes -= held


async def read_body(request: Request, limit: int = MAX_BODY, deadline: float = BODY_DEADLINE,
                    take: Callable[[int], None] | None = None) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks, size = [], 0
    async with asyncio.timeout(deadline):
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge
            if take is not None:
                take(len(chunk))
            chunks.append(chunk)
    return b"".join(chunks)


def _target(request: Request) -> str:
    raw = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string", b"")
    return raw.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")


async def inbox(request: Request) -> Response:
    services = services_of(request)
    handle = request.path_params.get("handle")
    if handle is not None and handle != services.urls.current_handle():
        return PlainTextResponse("There is no such inbox here.", status_code=404)
    gate: InboxGate = request.app.state.inbox_gate
    try:
        with gate.enter() as take:
            return await _receive(request, services, handle, take)
    except Busy:
        return PlainTextResponse("The server is busy; nothing was stored. Please retry later.", status_code=503,
                                 headers={"Retry-After": "10"})


async def _receive(request: Request, services: Services, handle: str | None, take: Callable[[int], None]) -> Response:
    try:
        body = await read_body(request, deadline=services.settings.body_timeout, take=take)
    except BodyTooLarge:
        return PlainTextResponse(f"The body is larger than {MAX_BODY} bytes.", status_code=413)
    except TimeoutError:
        return PlainTextResponse("The body took too long to arrive.", status_code=408)
    except ClientDisconnect:
        return PlainTextResponse("Client disconnected.", status_code=400)
    box: Inbox = request.app.state.inbox
    result = await box.receive(
        method=request.method, target=_target(request), headers=request.headers, body=body,
        scheme=request.url.scheme, recipient=services.urls.actor() if handle else None,
    )
    headers = {"Retry-After": "60"} if result.status == 503 else None
    return PlainTextResponse(result.reason, status_code=result.status, headers=headers)

"""POST /users/{handle}/inbox and POST /inbox: read the body within limits, hand it to the Inbox."""

from __future__ import annotations

import asyncio

from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response

from fedblog.federation.inbox import Inbox
from fedblog.web.common import services_of

MAX_BODY = 1_048_576  # P3
BODY_DEADLINE = 15.0  # default of FEDBLOG_BODY_TIMEOUT; Caddy's read_body in deploy/Caddyfile matches


class BodyTooLarge(Exception):
    pass


async def read_body(request: Request, limit: int = MAX_BODY, deadline: float = BODY_DEADLINE) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks, size = [], 0
    async with asyncio.timeout(deadline):
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge
            chunks.append(chunk)
    return b"".join(chunks)


def _target(request: Request) -> str:
    raw = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string", b"")
    return raw.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")


async def inbox(request: Request) -> Response:
    services = services_of(request)
    handle = request.path_params.get("handle")
    if handle is not None and handle != services.settings.handle:
        return PlainTextResponse("There is no such inbox here.", status_code=404)
    try:
        body = await read_body(request, deadline=services.settings.body_timeout)
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

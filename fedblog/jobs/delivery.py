"""One delivery attempt: sign, POST, and classify the answer as an Outcome. No database here.

Every attempt is bounded: connect 5 s, a wall-clock deadline for the whole exchange (default
30 s, ``FEDBLOG_DELIVERY_TIMEOUT``), and at most 1 MiB of response body read (an inbox answer is
a status line; the body is read only so that the connection can be reused).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from fedblog.activitypub.context import ACTIVITY_JSON
from fedblog.jobs.retry import is_permanent_status, parse_retry_after
from fedblog.net.client import DELIVERY_DEADLINE, DELIVERY_RESPONSE_CAP, delivery_timeout
from fedblog.net.safety import BlockedURL
from fedblog.services import Services


@dataclass(frozen=True)
class Outcome:
    kind: str  # sent | retry | give_up | gone
    status: int | None = None
    error: str = ""
    retry_after: timedelta | None = None


async def _post(client: httpx.AsyncClient, auth: httpx.Auth, inbox: str, body: bytes,
                deadline: float, on_sent: Callable[[], None] | None) -> httpx.Response:
    headers = {"Content-Type": ACTIVITY_JSON, "Accept": ACTIVITY_JSON}

    async def trace(event: str, info: dict[str, Any]) -> None:  # httpcore's request tracing hook
        if event == "http11.receive_response_headers.started" and on_sent is not None:
            on_sent()  # the request is out: from here on we only wait for the peer

    request = client.build_request("POST", inbox, content=body, headers=headers, timeout=delivery_timeout(deadline),
                                   extensions={"trace": trace})
    response = await client.send(request, auth=auth, stream=True)
    try:
        read = 0
        async for chunk in response.aiter_raw():
            read += len(chunk)
            if read > DELIVERY_RESPONSE_CAP:
                break  # the status is all we need; closing drops the connection instead of reading on
    finally:
        await response.aclose()
    return response


async def deliver_one(
    services: Services, client: httpx.AsyncClient, auth: httpx.Auth, inbox: str, body: bytes,
    deadline: float = DELIVERY_DEADLINE, on_sent: Callable[[], None] | None = None,
) -> Outcome:
    """POST ``body`` to ``inbox``; ``on_sent`` is called once the request is out (real sockets only)."""
    try:
        async with asyncio.timeout(deadline):
            response = await _post(client, auth, inbox, body, deadline, on_sent)
    except BlockedURL as exc:
        return Outcome("give_up", error=f"blocked: {exc}")
    except (TimeoutError, httpx.TimeoutException):
        return Outcome("retry", error=f"timed out (deadline {deadline:g} s)")
    except httpx.HTTPError as exc:
        return Outcome("retry", error=f"{type(exc).__name__}: {exc}"[:500])
    return outcome_of(response, services.clock.now())


def outcome_of(response: httpx.Response, now: datetime) -> Outcome:
    """Classify an answer with the delivery retry policy: 2xx sent; 410 gone; other permanent
    statuses give up; anything else is retried, honouring ``Retry-After``. Job handlers use it too."""
    status = response.status_code
    if 200 <= status < 300:
        return Outcome("sent", status=status)
    if status == 410:
        return Outcome("gone", status=status, error="410 Gone")
    if is_permanent_status(status):
        return Outcome("give_up", status=status, error=f"HTTP {status}")
    retry_after = parse_retry_after(response.headers.get("retry-after"), now)
    return Outcome("retry", status=status, error=f"HTTP {status}", retry_after=retry_after)

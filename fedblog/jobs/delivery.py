"""One delivery attempt: sign, POST, and classify the answer as an Outcome. No database here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import httpx

from fedblog.activitypub.context import ACTIVITY_JSON
from fedblog.jobs.retry import is_permanent_status, parse_retry_after
from fedblog.net.safety import BlockedURL
from fedblog.services import Services

POST_TIMEOUT = httpx.Timeout(30.0, connect=5.0)


@dataclass(frozen=True)
class Outcome:
    kind: str  # sent | retry | give_up | gone
    status: int | None = None
    error: str = ""
    retry_after: timedelta | None = None


async def deliver_one(
    services: Services, client: httpx.AsyncClient, auth: httpx.Auth, inbox: str, body: bytes
) -> Outcome:
    headers = {"Content-Type": ACTIVITY_JSON, "Accept": ACTIVITY_JSON}
    try:
        response = await client.post(inbox, content=body, headers=headers, auth=auth, timeout=POST_TIMEOUT)
        await response.aclose()
    except BlockedURL as exc:
        return Outcome("give_up", error=f"blocked: {exc}")
    except httpx.TimeoutException:
        return Outcome("retry", error="timed out")
    except httpx.HTTPError as exc:
        return Outcome("retry", error=f"{type(exc).__name__}: {exc}"[:500])
    status = response.status_code
    if 200 <= status < 300:
        return Outcome("sent", status=status)
    if status == 410:
        return Outcome("gone", status=status, error="410 Gone")
    if is_permanent_status(status):
        return Outcome("give_up", status=status, error=f"HTTP {status}")
    retry_after = parse_retry_after(response.headers.get("retry-after"), services.clock.now())
    return Outcome("retry", status=status, error=f"HTTP {status}", retry_after=retry_after)

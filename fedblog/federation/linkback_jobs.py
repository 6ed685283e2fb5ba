"""The background jobs of linkbacks, as queued: their kinds and typed arguments.

* ``linkback.verify``: fetch a received Webmention's or pingback's source and check that it links
  to the target (W3C Webmention §3.2.2 "Webmention Verification"; Pingback 1.0 "the server
  should [...] retrieve the source URI and check it links to the target"). Done in the background,
  at most once at a time per source host (the queue's per-host lanes), never while the sender waits.
* ``linkback.send``: tell a page we linked to about our post (Webmention §3.1 "Sending
  Webmentions", or a pingback ``pingback.ping`` call where the target only advertises that).

Both run on the delivery queue (``outbox.enqueue_job``): claimed fairly per host, leased,
renewed, and retried with the delivery retry policy. Their handlers are registered with the
worker (``fedblog.jobs.handlers``); a kind without a handler is never claimed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session

from fedblog.federation.outbox import enqueue_job
from fedblog.store.tables import Delivery

VERIFY_LINKBACK = "linkback.verify"
SEND_LINKBACK = "linkback.send"
VIAS = ("webmention", "pingback")


def _url(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value.startswith(("http://", "https://")) or len(value) > 2000:
        raise ValueError(f"job payload: {name} must be an http(s) URL of at most 2000 characters")
    return value


def _via(payload: dict[str, Any]) -> str:
    via = payload.get("via")
    if via not in VIAS:
        raise ValueError(f"job payload: via must be one of {', '.join(VIAS)}")
    return str(via)


@dataclass(frozen=True)
class VerifyLinkback:
    """Check that ``source`` links to our ``target`` (received as a ``via``)."""

    source: str
    target: str
    via: str  # webmention | pingback
    request: int | None = None  # the ``linkback_request`` row it verifies (its status page)

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> VerifyLinkback:
        """Raises ValueError for a payload this version cannot run."""
        request = payload.get("request")
        if request is not None and (not isinstance(request, int) or isinstance(request, bool) or request < 1):
            raise ValueError("job payload: request must be a row id")
        return cls(_url(payload, "source"), _url(payload, "target"), _via(payload), request)

    def queue(self, session: Session, *, now: datetime) -> Delivery:
        """Queue the check in the caller's transaction (scheduled by the source's host)."""
        VerifyLinkback.from_payload(asdict(self))  # never queue what no worker could run
        return enqueue_job(session, VERIFY_LINKBACK, self.source, asdict(self), now=now)


@dataclass(frozen=True)
class SendLinkback:
    """Tell ``target`` that our ``source`` (a post) links to it."""

    source: str
    target: str

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> SendLinkback:
        return cls(_url(payload, "source"), _url(payload, "target"))

    def queue(self, session: Session, *, now: datetime) -> Delivery:
        """Queue the notification in the caller's transaction (scheduled by the target's host)."""
        SendLinkback.from_payload(asdict(self))
        return enqueue_job(session, SEND_LINKBACK, self.target, asdict(self), now=now)

"""POST /xmlrpc (Pingback 1.0), POST /webmention (W3C Webmention), GET /linkbacks/{token} (status).

Both endpoints answer once the request is durably queued (``linkback_receive.receive``: the request
row and its ``linkback.verify`` job in one transaction); the source is fetched later by the worker.
Before anything is parsed: the client's IP must be under its budget (``LinkbackLimits``), the body
must be of the expected type, not compressed, and no larger than its cap, checked on the declared
Content-Length and again while it streams in. After parsing, the source's host must be under its
own budget: however many addresses a sender uses, we fetch from one site only so often (the
reflection attack of Pingback, W3C Webmention §4.2).

Pingback answers are XML-RPC (HTTP 200, a string or a fault with the Pingback 1.0 codes); a
Webmention gets 202 Accepted (it is processed asynchronously, W3C Webmention §3.2) with its status
page in ``Location`` and in the body, or 400 with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import parse_qs

from sqlmodel import Session
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from fedblog.activitypub import pingback
from fedblog.activitypub.linkcheck import check_webmention_request
from fedblog.activitypub.origin import host_of
from fedblog.clock import utc
from fedblog.federation import linkback_receive
from fedblog.federation.linkback_receive import Accepted, Protocol, Refused, RequestStatus
from fedblog.services import Services
from fedblog.store.db import database_unavailable, request_write_limits, session_scope
from fedblog.web.common import renderer_of, services_of
from fedblog.web.inbox import BodyTooLarge, read_body
from fedblog.web.middleware import SlidingWindow

log = logging.getLogger("fedblog.linkbacks")
MAX_FORM_BYTES = 8 * 1024  # two URLs of at most 2048 characters, percent-encoded
XML_TYPES = ("text/xml", "application/xml")
FORM_TYPE = "application/x-www-form-urlencoded"
PINGBACK_FAULTS = {
    "not_ours": pingback.TARGET_CANNOT_BE_USED, "not_a_post": pingback.TARGET_CANNOT_BE_USED,
    "no_such_post": pingback.TARGET_NOT_FOUND, "already_registered": pingback.ALREADY_REGISTERED,
    "busy": pingback.ACCESS_DENIED,
}


class LinkbackLimits:
    """Sliding-window budgets (``fedblog.web.middleware.SlidingWindow``): POSTs per client IP, and
    requests naming a source host (each is a fetch we will make there)."""

    def __init__(self, *, per_ip: int, per_host: int, window: float, now: Callable[[], float]) -> None:
        self.ips = SlidingWindow(per_ip, window, now) if per_ip else None
        self.hosts = SlidingWindow(per_host, window, now) if per_host else None

    def ip(self, request: Request) -> int | None:
        client = request.scope.get("client")
        return self.ips.hit(client[0] if client else "unknown") if self.ips is not None else None

    def host(self, source: str) -> int | None:
        return self.hosts.hit(host_of(source)) if self.hosts is not None else None


def build_limits(services: Services) -> LinkbackLimits:
    s = services.settings
    return LinkbackLimits(per_ip=s.linkback_rate_limit, per_host=s.linkback_rate_limit_host, window=s.rate_window,
                          now=lambda: services.clock.now().timestamp())


def _limits(request: Request) -> LinkbackLimits:
    return request.app.state.linkback_limits  # type: ignore[no-any-return]


def _too_many(wait: int, what: str) -> Response:
    return PlainTextResponse(f"{what}; retry in {wait} s.", status_code=429, headers={"Retry-After": str(wait)})


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _encoded(request: Request) -> bool:
    return request.headers.get("content-encoding", "identity").strip().lower() not in ("", "identity")


async def _body(request: Request, limit: int) -> bytes | Response:
    services = services_of(request)
    try:
        return await read_body(request, limit=limit, deadline=services.settings.body_timeout)
    except BodyTooLarge:
        return PlainTextResponse(f"The body is larger than {limit} bytes.", status_code=413)
    except TimeoutError:
        return PlainTextResponse("The body took too long to arrive.", status_code=408)
    except ClientDisconnect:
        return PlainTextResponse("Client disconnected.", status_code=400)


async def _receive(services: Services, protocol: Protocol, source: str, target: str) -> Accepted | Refused | Response:
    """Store and queue, or refuse; a database that cannot take the write gets 503 + Retry-After (the
    sender tries again: nothing was stored, so a 2xx never hides a loss)."""
    def run() -> Accepted | Refused:
        with session_scope(services.engine) as session, \
                request_write_limits(session.connection(), services.settings.db_write_timeout):
            return linkback_receive.receive(session, services, protocol=protocol, source=source, target=target,
                                            now=services.clock.now())

    try:
        return await services.run_db(run)
    except Exception as exc:
        if not database_unavailable(exc):
            raise
        log.warning("could not store a %s request; answered 503", protocol, exc_info=True)
        return PlainTextResponse("The server is busy; nothing was stored. Please retry later.", status_code=503,
                                 headers={"Retry-After": "60"})


# -- Pingback 1.0 --------------------------------------------------------------------------------
def _xml(body: bytes) -> Response:
    return Response(body, media_type=pingback.CONTENT_TYPE)


def _fault(code: int, detail: str = "") -> Response:
    return _xml(pingback.fault_response(pingback.PingbackFault.of(code, detail)))


async def xmlrpc(request: Request) -> Response:
    """The pingback server: ``pingback.ping`` only, answered once the ping is queued for verification."""
    if request.method != "POST":
        return PlainTextResponse("XML-RPC server accepts POST requests only.", status_code=405,
                                 headers={"Allow": "POST"})
    if (wait := _limits(request).ip(request)) is not None:
        return _too_many(wait, "Too many pingbacks from your address")
    if _encoded(request):
        return PlainTextResponse("Compressed request bodies are refused; send the call as plain text/xml.",
                                 status_code=415)
    if _media_type(request) not in XML_TYPES:
        return PlainTextResponse("An XML-RPC call is sent as text/xml.", status_code=415)
    body = await _body(request, pingback.MAX_BODY_BYTES)
    if isinstance(body, Response):
        return body
    call = pingback.parse_ping(body)
    if isinstance(call, pingback.PingbackFault):
        return _xml(pingback.fault_response(call))
    if (wait := _limits(request).host(call.source)) is not None:
        return _fault(pingback.ACCESS_DENIED, f"Too many pingbacks from {host_of(call.source)[:100]}; "
                                              f"retry in {wait} s.")
    services = services_of(request)
    result = await _receive(services, "pingback", call.source, call.target)
    if isinstance(result, Response):
        return result
    if isinstance(result, Refused):
        return _fault(PINGBACK_FAULTS[result.code], result.reason[:1].upper() + result.reason[1:] + ".")
    return _xml(pingback.success_response(
        f"Pingback queued for verification; status: {services.urls.linkback_status(result.token)}"))


# -- Webmention --------------------------------------------------------------------------------
def _bad(reason: str) -> Response:
    return PlainTextResponse(f"Webmention refused: {reason}.", status_code=400)


def _form(body: bytes) -> dict[str, list[str]] | str:
    try:
        text = body.decode("utf-8")
        return parse_qs(text, keep_blank_values=True, strict_parsing=bool(text), max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return "the body is not a form (application/x-www-form-urlencoded, UTF-8)"


async def webmention(request: Request) -> Response:
    """The Webmention endpoint: 202 Accepted + Location (the status page, also in the body), or 400 with the reason."""
    if request.method != "POST":
        return PlainTextResponse("This is a Webmention endpoint (https://www.w3.org/TR/webmention/): POST source "
                                 "and target as a form.", status_code=405, headers={"Allow": "POST"})
    if (wait := _limits(request).ip(request)) is not None:
        return _too_many(wait, "Too many Webmentions from your address")
    if _encoded(request):
        return PlainTextResponse("Compressed request bodies are refused.", status_code=415)
    if _media_type(request) != FORM_TYPE:
        return PlainTextResponse(f"A Webmention is sent as {FORM_TYPE}.", status_code=415)
    body = await _body(request, MAX_FORM_BYTES)
    if isinstance(body, Response):
        return body
    form = _form(body)
    if isinstance(form, str):
        return _bad(form)
    if any(len(form.get(name, [])) > 1 for name in ("source", "target")):
        return _bad("source and target must be given once each")
    checked = check_webmention_request(form.get("source", [None])[0], form.get("target", [None])[0])
    if isinstance(checked, str):
        return _bad(checked)
    source, target = checked
    if (wait := _limits(request).host(source)) is not None:
        return _too_many(wait, f"Too many Webmentions naming {host_of(source)[:100]}")
    services = services_of(request)
    result = await _receive(services, "webmention", source, target)
    if isinstance(result, Response):
        return result
    if isinstance(result, Refused):
        return _too_many(60, result.reason) if result.code == "busy" else _bad(result.reason)
    status_url = services.urls.linkback_status(result.token)
    message = "Already queued for verification" if result.again else "Queued for verification"
    if "json" in request.headers.get("accept", ""):
        return JSONResponse({"status": "pending", "location": status_url}, status_code=202,
                            headers={"Location": status_url})
    return PlainTextResponse(f"{message}: {status_url}\n", status_code=202, headers={"Location": status_url})


# -- status pages --------------------------------------------------------------------------------
def _status_json(services: Services, st: RequestStatus) -> dict[str, object]:
    return {
        "protocol": st.protocol, "source": st.source, "target": st.target, "status": st.state,
        "reason": st.reason, "received": utc(st.received_at).isoformat(), "updated": utc(st.updated_at).isoformat(),
        "comment": services.urls.comment(st.comment_id) if st.comment_id else None,
    }


async def linkback_status(request: Request) -> Response:
    """What became of a received Webmention or pingback: pending, accepted, refused (with the reason)
    or deleted. HTML for people, JSON when asked for."""
    services = services_of(request)
    token = request.path_params["token"]

    def load() -> RequestStatus | None:
        with Session(services.engine) as session:
            return linkback_receive.request_status(session, token)

    st = await services.run_db(load)
    if st is None:
        raise HTTPException(404, "There is no linkback request with this status URL.")
    headers = {"Cache-Control": "no-store"}
    if "json" in request.headers.get("accept", "") and "text/html" not in request.headers.get("accept", ""):
        return JSONResponse(_status_json(services, st), headers=headers)
    return renderer_of(request).page("linkback_status.html", {"st": st}, headers=headers)

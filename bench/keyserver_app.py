"""The remote actors of ``bench_inbox_burst.py``: their actor documents (with ``publicKey``) and WebFinger.

A bare Starlette app on a loopback address (127.0.0.3 by default), plain http: fedblog fetches
``http://`` actor ids as they are, and reaches a non-global host only when it is listed in
``FEDBLOG_ALLOW_PRIVATE_HOSTS`` (the bench sets it). ``GET /users/{name}`` answers the actor
(``application/activity+json``); ``GET /.well-known/webfinger?resource=acct:name@host`` the JRD
(RFC 7033) naming it; ``GET /stats`` how many of each it served, so the bench can show that the
key of each actor was fetched once (concurrent first POSTs share one fetch). No fedblog code.

Configuration (environment): ``BENCH_KEYS_ACTORS``, the actors JSON written by the bench.

Run: ``uvicorn --app-dir bench --factory keyserver_app:create_app --host 127.0.0.3 --port P``.
"""

from __future__ import annotations

import collections
import json
import os
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

AS = "https://www.w3.org/ns/activitystreams"
SEC = "https://w3id.org/security/v1"


def actor_document(a: dict[str, Any]) -> dict[str, Any]:
    return {
        "@context": [AS, SEC],
        "id": a["ap_id"],
        "type": "Person",
        "preferredUsername": a["username"],
        "name": a["name"],
        "url": a["url"],
        "inbox": a["inbox"],
        "outbox": a["ap_id"] + "/outbox",
        "followers": a["ap_id"] + "/followers",
        "endpoints": {"sharedInbox": a["shared_inbox"]},
        "publicKey": {"id": a["key_id"], "owner": a["ap_id"], "publicKeyPem": a["public_key_pem"]},
    }


def create_app() -> Starlette:
    with open(os.environ["BENCH_KEYS_ACTORS"], encoding="utf-8") as f:
        actors = json.load(f)
    by_name = {a["username"]: a for a in actors}
    by_acct = {f"acct:{a['handle']}": a for a in actors}
    served: collections.Counter[str] = collections.Counter()

    async def actor(request: Request) -> Response:
        a = by_name.get(request.path_params["name"])
        if a is None:
            return PlainTextResponse("no such actor", status_code=404)
        served["actor"] += 1
        return JSONResponse(actor_document(a), media_type="application/activity+json")

    async def webfinger(request: Request) -> Response:
        a = by_acct.get(request.query_params.get("resource", ""))
        if a is None:
            return PlainTextResponse("no such account", status_code=404)
        served["webfinger"] += 1
        return JSONResponse(
            {"subject": f"acct:{a['handle']}",
             "links": [{"rel": "self", "type": "application/activity+json", "href": a["ap_id"]}]},
            media_type="application/jrd+json",
        )

    async def stats(request: Request) -> Response:
        return JSONResponse(dict(served))

    return Starlette(routes=[
        Route("/users/{name}", actor),
        Route("/.well-known/webfinger", webfinger),
        Route("/stats", stats),
    ])

"""The synthetic ceiling for ``bench_comment_form.py``: parse the comment form, insert one row.

A bare Starlette app with ``POST /comments`` that does the protocol work every comment form must
do and nothing of fedblog's logic: read the urlencoded body (the same 256 KiB cap), parse it, insert
one ``interaction`` row (through the same database thread pool, ``Services.run_db``, into the same
database, so the post-version trigger fires as for fedblog), answer 303. No token, no rate limit,
no guest actor, no moderation rules, no HTML rendering of the text beyond escaping it.

Run by bench_comment_form.py as:
    python -m uvicorn --app-dir bench --factory ceiling_comment_app:create_app \\
        --loop uvloop --http httptools --no-access-log --log-level warning
with the same FEDBLOG_* settings as the fedblog server.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from html import escape
from urllib.parse import parse_qsl

import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from fedblog.services import build_services
from fedblog.settings import load_settings
from fedblog.store.db import session_scope
from fedblog.store.tables import Interaction

MAX_BODY = 256 * 1024
_INSERT = sa.insert(Interaction.__table__).returning(Interaction.__table__.c.id)  # type: ignore[attr-defined]


def create_app() -> Starlette:
    services = build_services(load_settings(os.environ))

    def insert(fields: dict[str, str]) -> int:
        with session_scope(services.engine) as session:
            row = {"post_id": int(fields["post"]), "kind": "comment", "via": "form", "status": "visible",
                   "author_name": fields.get("name", "")[:100], "author_email": fields.get("email") or None,
                   "content_html": "<p>" + escape(fields.get("text", "")) + "</p>",
                   "published_at": datetime.now(UTC), "federated": fields.get("federate") == "on"}
            return int(session.execute(_INSERT, row).scalar_one())

    async def comments(request: Request) -> Response:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return PlainTextResponse("too large", status_code=413)
        fields = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20))
        comment_id = await services.run_db(insert, fields)
        return RedirectResponse(f"/comments/{comment_id}", status_code=303)

    async def ready(request: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/comments", comments, methods=["POST"]), Route("/ready", ready)])

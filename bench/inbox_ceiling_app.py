"""Synthetic inbox ceiling: a bare Starlette endpoint doing the inbox's protocol work without fedblog's logic.

The inbox benches run it in the same run as fedblog and judge fedblog by the ratio of the two (the
machine is noisy: absolute figures move between runs, same-run ratios do not).

``POST /inbox`` (and ``/users/{handle}/inbox``): read the body, check the Digest (SHA-256), the Host,
the Date window (65 min back / 60 min ahead, as fedblog), parse the ``Signature`` header, verify
RSA-2048 PKCS1v15-SHA256 over ``(request-target) host date digest`` with the actor's key cached as a
parsed object (loaded once at start-up), ``json.loads``, check actor == key owner, insert one SQLModel
row (unique ``ap_id``) in SQLite WAL (``synchronous=NORMAL``, ``busy_timeout``), a Session per
request, inline in the async handler, answer 202. ``GET /health`` answers 200.

No fedblog code is used. Configuration (environment):

* ``BENCH_INBOX_ACTORS``: actors.json from bench/gen_inbox_requests.py (key_id, ap_id, public PEM);
* ``BENCH_INBOX_DB``: the SQLite file to create;
* ``BENCH_INBOX_HOST``: the Host the requests were signed for (fedblog's base URL host:port).

Run: ``uvicorn --app-dir bench --factory inbox_ceiling_app:create_app --loop uvloop --http httptools``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, create_engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

MAX_AGE = timedelta(minutes=65)
MAX_FUTURE = timedelta(minutes=60)
REQUIRED = ("(request-target)", "host", "date", "digest")


class InboxRow(SQLModel, table=True):
    __tablename__ = "inbox_row"
    id: int | None = Field(default=None, primary_key=True)
    ap_id: str = Field(max_length=2000, sa_column_kwargs={"unique": True})
    type: str = Field(max_length=40)
    actor: str = Field(max_length=2000)
    key_id: str = Field(max_length=2000)
    raw: str
    received_at: datetime


def _pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _parse_signature(value: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in value.split(","):
        k, sep, v = item.partition("=")
        if sep:
            params[k.strip()] = v.strip().strip('"')
    return params


def create_app() -> Starlette:
    actors = json.loads(open(os.environ["BENCH_INBOX_ACTORS"], encoding="utf-8").read())
    keys = {
        a["key_id"]: (a["ap_id"], serialization.load_pem_public_key(a["public_key_pem"].encode()))
        for a in actors
    }
    expected_host = os.environ["BENCH_INBOX_HOST"]
    engine = create_engine(
        f"sqlite:///{os.environ['BENCH_INBOX_DB']}",
        connect_args={"check_same_thread": False, "timeout": 30},
    )
    event.listen(engine, "connect", _pragmas)
    SQLModel.metadata.create_all(engine)

    def refuse(status: int, why: str) -> Response:
        return PlainTextResponse(why, status_code=status)

    async def inbox(request: Request) -> Response:
        body = await request.body()
        h = request.headers
        digest = h.get("digest", "")
        if digest != "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode():
            return refuse(400, "digest mismatch")
        host = h.get("host", "")
        if host != expected_host:
            return refuse(400, "wrong host")
        try:
            date = parsedate_to_datetime(h.get("date", ""))
        except (TypeError, ValueError):
            return refuse(401, "bad date")
        now = datetime.now(UTC)
        if date - now > MAX_FUTURE or now - date > MAX_AGE:
            return refuse(401, "date out of window")
        sig = _parse_signature(h.get("signature", ""))
        names = sig.get("headers", "date").split()
        if any(n not in names for n in REQUIRED) or sig.get("algorithm", "rsa-sha256") not in (
            "rsa-sha256",
            "hs2019",
        ):
            return refuse(401, "signature does not cover the required headers")
        owner_key = keys.get(sig.get("keyId", ""))
        if owner_key is None:
            return refuse(401, "unknown key")
        target = request.scope["raw_path"].decode("latin-1")
        lines = [
            f"(request-target): post {target}"
            if n == "(request-target)"
            else f"{n}: {h.get(n, '')}"
            for n in names
        ]
        try:
            owner_key[1].verify(
                base64.b64decode(sig.get("signature", "")),
                "\n".join(lines).encode(),  # type: ignore[union-attr,call-arg]
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except (InvalidSignature, ValueError):
            return refuse(401, "bad signature")
        try:
            doc = json.loads(body)
        except ValueError:
            return refuse(400, "bad json")
        if (
            not isinstance(doc, dict)
            or not isinstance(doc.get("id"), str)
            or doc.get("actor") != owner_key[0]
        ):
            return refuse(401, "actor is not the key owner")
        row = InboxRow(
            ap_id=doc["id"],
            type=str(doc.get("type")),
            actor=doc["actor"],
            key_id=sig["keyId"],
            raw=body.decode("utf-8", "replace"),
            received_at=now,
        )
        try:
            with Session(engine) as session:
                session.add(row)
                session.commit()
        except IntegrityError:
            return PlainTextResponse("Already received.", status_code=202)
        return PlainTextResponse("Accepted.", status_code=202)

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(
        routes=[
            Route("/inbox", inbox, methods=["POST"]),
            Route("/users/{handle}/inbox", inbox, methods=["POST"]),
            Route("/health", health),
        ]
    )

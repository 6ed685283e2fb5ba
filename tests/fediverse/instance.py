"""FakeInstance: a tiny fediverse server with actors, objects, WebFinger and a recording inbox.

It signs with its own code (``tests.fediverse.signing``) and verifies what we deliver with it,
fetching our actor's key over the fake network, as a real server would.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fediverse import signing

AS = "https://www.w3.org/ns/activitystreams"
PUBLIC = AS + "#Public"
_KEYS: list[Any] = []


def _key() -> Any:
    # RSA generation is slow; reuse a small pool across fake actors (still distinct per actor)
    if len(_KEYS) < 8:
        _KEYS.append(signing.new_key())
        return _KEYS[-1]
    _KEYS.append(_KEYS.pop(0))
    return _KEYS[-1]


@dataclass
class FakeActor:
    host: str
    username: str
    name: str
    key: Any = field(default_factory=_key)
    flavour: str = "mastodon"

    @property
    def id(self) -> str:
        if self.flavour == "misskey":
            return f"https://{self.host}/users/{self.username}9x"
        return f"https://{self.host}/users/{self.username}"

    @property
    def key_id(self) -> str:
        return self.id + "#main-key"

    @property
    def inbox(self) -> str:
        return self.id + "/inbox"

    @property
    def shared_inbox(self) -> str:
        return f"https://{self.host}/inbox"

    def document(self) -> dict[str, Any]:
        return {
            "@context": [AS, "https://w3id.org/security/v1"],
            "id": self.id,
            "type": "Person",
            "preferredUsername": self.username,
            "name": self.name,
            "url": f"https://{self.host}/@{self.username}",
            "icon": {"type": "Image", "url": f"https://{self.host}/avatars/{self.username}.png"},
            "inbox": self.inbox,
            "endpoints": {"sharedInbox": self.shared_inbox},
            "publicKey": {"id": self.key_id, "owner": self.id, "publicKeyPem": signing.public_pem(self.key)},
        }


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    signature_ok: bool
    why: str

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


class FakeInstance:
    """A fake server at ``host``. ``respond_with`` scripts the inbox's answers."""

    def __init__(self, host: str, network: Any, flavour: str = "mastodon") -> None:
        self.host = host
        self.network = network
        self.flavour = flavour
        self.actors: dict[str, FakeActor] = {}
        self.objects: dict[str, dict[str, Any]] = {}
        self.received: list[Received] = []
        self.status_script: list[tuple[int, dict[str, str]]] = []
        self.gone = False
        # actor documents this fake knows without fetching them (actors we do not serve yet):
        # actor id -> a function giving the document at verification time
        self.known_actors: dict[str, Callable[[], dict[str, Any]]] = {}
        self.app = Starlette(routes=[
            Route("/.well-known/webfinger", self._webfinger),
            Route("/users/{name}", self._actor),
            Route("/users/{name}/inbox", self._inbox, methods=["POST"]),
            Route("/inbox", self._inbox, methods=["POST"]),
            Route("/{path:path}", self._object),
        ])
        network.add(host, self.app)

    # -- setup ---------------------------------------------------------------------------------
    def actor(self, username: str, name: str | None = None) -> FakeActor:
        a = FakeActor(self.host, username, name or username.title(), flavour=self.flavour)
        self.actors[a.id] = a
        return a

    def respond_with(self, status: int, headers: dict[str, str] | None = None, times: int = 1) -> None:
        self.status_script.extend([(status, headers or {})] * times)

    def new_id(self, kind: str = "activities") -> str:
        return f"https://{self.host}/{kind}/{uuid.uuid4().hex}"

    # -- sending -------------------------------------------------------------------------------
    async def post(self, actor: FakeActor, inbox_url: str, activity: dict[str, Any], *, key: Any = None,
                   key_id: str | None = None, body: bytes | None = None) -> httpx.Response:
        body = body if body is not None else json.dumps(activity).encode()
        headers = signing.sign("POST", inbox_url, body, key or actor.key, key_id or actor.key_id, now=self._now(),
                               algorithm=self.algorithm)
        async with httpx.AsyncClient(transport=self.network.transport()) as c:
            return await c.post(inbox_url, content=body, headers=headers)

    async def get_signed(self, actor: FakeActor, url: str, accept: str = "application/activity+json") -> httpx.Response:
        headers = signing.sign("GET", url, None, actor.key, actor.key_id, now=self._now(), extra={"Accept": accept},
                               algorithm=self.algorithm)
        async with httpx.AsyncClient(transport=self.network.transport()) as c:
            return await c.get(url, headers=headers)

    @property
    def algorithm(self) -> str:
        """GoToSocial signs with ``hs2019`` (its docs, federation/http_signatures.md); the others ``rsa-sha256``."""
        return "hs2019" if self.flavour == "gotosocial" else "rsa-sha256"

    def _now(self) -> Any:
        return self.network.clock.now() if self.network.clock else None

    # -- serving -------------------------------------------------------------------------------
    async def _webfinger(self, request: Request) -> Response:
        resource = request.query_params.get("resource", "")
        user = resource.removeprefix("acct:").split("@")[0]
        for a in self.actors.values():
            if a.username == user:
                return JSONResponse({"subject": f"acct:{user}@{self.host}",
                                     "links": [{"rel": "self", "type": "application/activity+json", "href": a.id}]},
                                    media_type="application/jrd+json")
        return JSONResponse({}, status_code=404)

    async def _actor(self, request: Request) -> Response:
        url = f"https://{self.host}{request.url.path}"
        actor = self.actors.get(url)
        if self.gone:
            return Response(status_code=410)
        if actor is None:
            return Response(status_code=404)
        return JSONResponse(actor.document(), media_type="application/activity+json")

    async def _object(self, request: Request) -> Response:
        url = f"https://{self.host}{request.url.path}"
        if url in self.objects:
            return JSONResponse({"@context": AS, **self.objects[url]}, media_type="application/activity+json")
        return Response(status_code=404)

    async def _inbox(self, request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        path_qs = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        ok, why = await self._verify(request.method, path_qs, headers, body)
        self.received.append(Received(request.method, request.url.path, headers, body, ok, why))
        if self.status_script:
            status, extra = self.status_script.pop(0)
            return Response(status_code=status, headers=extra)
        return Response(status_code=202 if ok else 401)

    async def _verify(self, method: str, path_qs: str, headers: dict[str, str], body: bytes) -> tuple[bool, str]:
        """Fetch the signer's key over the network, then check with our own verifier."""
        raw = headers.get("signature", "")
        key_id = next((p.split("=", 1)[1].strip('"') for p in raw.split(",") if p.strip().startswith("keyId=")), None)
        if not key_id:
            return False, "no keyId"
        known = self.known_actors.get(key_id.split("#")[0])
        if known is not None:
            doc = known()
        else:
            async with httpx.AsyncClient(transport=self.network.transport()) as c:
                r = await c.get(key_id.split("#")[0], headers={"Accept": "application/activity+json"})
            if r.status_code != 200:
                return False, f"key fetch {r.status_code}"
            doc = r.json()
        pk = doc.get("publicKey", {})
        if pk.get("id") != key_id or pk.get("owner") != doc.get("id"):
            return False, "key owner mismatch"
        ok, why = signing.verify(method, path_qs, headers, body, pk["publicKeyPem"])
        if ok:
            actor = json.loads(body).get("actor")
            if actor != doc.get("id"):
                return False, "actor is not the signer"
        return ok, why

    # -- reading -------------------------------------------------------------------------------
    def activities(self, type_: str | None = None) -> list[dict[str, Any]]:
        out = [r.json for r in self.received if r.signature_ok]
        return [a for a in out if type_ is None or a.get("type") == type_]


def follow(actor: FakeActor, target: str) -> dict[str, Any]:
    return {"@context": AS, "id": f"{actor.id}#follows/{uuid.uuid4().hex[:8]}", "type": "Follow",
            "actor": actor.id, "object": target}
